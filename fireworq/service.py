"""
Compatibility names: the server process now lives in L{fireworq.server}
(the service tree in L{fireworq.server.tree}).  Import from there.
"""

from fireworq.server import FireworqService, StartupFailed, Stores, open_stores

__all__ = ["FireworqService", "StartupFailed", "Stores", "open_stores"]
