"""
The server process: the service tree (L{tree}) and its parts, one module
each: process tuning, the store service, the API listener, this node and
the parts of its queues, and the ordering of starts and stops.

The names below are imported on first use, so that the supervisor of
``--workers N``, which needs only L{workers}, does not load the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fireworq.lazy import lazy_attributes

if TYPE_CHECKING:
    from fireworq.server.stores import Stores, StoreService, open_stores
    from fireworq.server.tree import FireworqService, StartupFailed

__all__ = ["FireworqService", "StartupFailed", "Stores", "StoreService", "open_stores"]

#: Where each name of L{__all__} lives.
_LAZY = {
    "FireworqService": "fireworq.server.tree",
    "StartupFailed": "fireworq.server.tree",
    "Stores": "fireworq.server.stores",
    "StoreService": "fireworq.server.stores",
    "open_stores": "fireworq.server.stores",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
