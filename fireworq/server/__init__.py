"""
The server process: the service tree (L{tree}) and its parts, one module
each: process tuning, the store service, the API listener, this node and
the parts of its queues, and the ordering of starts and stops.

The names below are imported on first use, so that the supervisor of
``--workers N``, which needs only L{workers}, does not load the server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """The names of L{__all__}: imported (once) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
