"""
Fireworq for Python: a language-independent job queue server.

Clients push jobs over HTTP; for every queue one active node POSTs each
job's payload to the job's worker URL, retries failures, delays jobs and
keeps a failure log.  Run it with ``twistd -n fireworq``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
