"""L{MemorySigningKeys}: signing keys of the in-memory driver (one process)."""

from __future__ import annotations

from typing import Dict

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from fireworq.signing.interface import ISigningKeyStore
from fireworq.signing.keys import SigningKeys, switched
from fireworq.store.small_tables import MemoryTable


@implementer(ISigningKeyStore)
class MemorySigningKeys(MemoryTable):
    """Keys in a dict; gone with the process, like the driver's jobs."""

    def __init__(self) -> None:
        self._keys: Dict[str, SigningKeys] = {}

    def load_all(self) -> Deferred:
        return succeed([k for k in self._keys.values() if k.enabled])

    def find(self, queue_name: str) -> Deferred:
        return succeed(self._keys.get(queue_name))

    def enable(self, queue_name: str, enabled: bool) -> Deferred:
        keys, changed = switched(self._keys.get(queue_name), queue_name, enabled)
        if changed:
            self._keys[queue_name] = keys
        return succeed(keys)

    def rotate(self, queue_name: str, now_ms: int, overlap_ms: int) -> Deferred:
        keys = self._keys.get(queue_name)
        if keys is None or not keys.enabled:
            return succeed(None)
        keys = self._keys[queue_name] = keys.rotated(now_ms, overlap_ms)
        return succeed(keys)

    def forget(self, queue_name: str) -> Deferred:
        self._keys.pop(queue_name, None)
        return succeed(None)
