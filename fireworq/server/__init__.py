"""
The server process: the service tree (L{tree}) and its parts, one module
each: process tuning, the store service, the API listener, this node and
the parts of its queues, and the ordering of starts and stops.
"""

from fireworq.server.stores import Stores, StoreService, open_stores
from fireworq.server.tree import FireworqService, StartupFailed

__all__ = ["FireworqService", "StartupFailed", "Stores", "StoreService", "open_stores"]
