"""
The ``twistd fireworq`` plugin.

Nothing here imports the reactor or the server: L{ServiceMaker} loads
L{fireworq.tap} only when twistd asks for the options or the service.
"""

from twisted.application.service import ServiceMaker

fireworq = ServiceMaker(
    "Fireworq",
    "fireworq.tap",
    "A lightweight, language-independent job queue server.",
    "fireworq",
)
