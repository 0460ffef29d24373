"""
Where hook definitions are kept: L{IHookStore}, the in-memory store, and
L{open_hook_store}, which picks the store beside the server's repository
(the same sqlite file, the same MySQL pool, or memory), as the signing keys
do.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, succeed
from zope.interface import Interface, implementer

from fireworq.hooks.model import HookDefinition
from fireworq.store.common import driver_of
from fireworq.store.small_tables import MemoryTable


class IHookStore(Interface):
    """The hook definitions shared by every node."""

    def start() -> "Deferred[None]":
        """Take the connection (pool) the store needs."""

    def prepare() -> "Deferred[None]":
        """Create the table when missing."""

    def stop() -> "Deferred[None]":
        """Give the connection back."""

    def load_all() -> "Deferred[List[HookDefinition]]":
        """Every hook, by name."""

    def find(name: str) -> "Deferred[Optional[HookDefinition]]":
        """One hook, or None."""

    def put(hook: HookDefinition) -> "Deferred[None]":
        """Create or replace a hook."""

    def delete(name: str) -> "Deferred[Optional[HookDefinition]]":
        """Delete a hook; fire with it as it was, or None."""


@implementer(IHookStore)
class MemoryHookStore(MemoryTable):
    """L{IHookStore} in memory (the in-memory driver: one node only)."""

    def __init__(self) -> None:
        self._hooks: Dict[str, HookDefinition] = {}

    def load_all(self) -> Deferred:
        return succeed([self._hooks[name] for name in sorted(self._hooks)])

    def find(self, name: str) -> Deferred:
        return succeed(self._hooks.get(name))

    def put(self, hook: HookDefinition) -> Deferred:
        self._hooks[hook.name] = hook
        return succeed(None)

    def delete(self, name: str) -> Deferred:
        return succeed(self._hooks.pop(name, None))


def open_hook_store(repository: Any) -> IHookStore:
    """The hook store beside ``repository`` (the definitions)."""
    repository = getattr(repository, "observed", repository)
    driver = driver_of(repository)
    if driver == "sqlite":
        from fireworq.hooks.sqlite import SqliteHookStore

        return SqliteHookStore(repository.db)
    if driver == "mysql":
        from fireworq.hooks.mysql import MySQLHookStore

        return MySQLHookStore(repository.pool)
    return MemoryHookStore()
