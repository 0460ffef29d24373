"""
L{SigningService}: this node's signing keys (protocol B11).

The dispatchers ask L{SigningService.signer} for a queue's L{Signer} before
each delivery: one dict look-up, None for a queue without signing, so
unsigned queues pay nothing more.  The signers (keys decoded once) are
rebuilt from the store when the service starts and every
``config_refresh_interval`` after, so a change made on another node (signing
turned on or off, a rotation) is followed within that interval; a change
made through this node's API applies here at once.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Set

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.readiness import ReadyWaiters
from fireworq.signing.interface import ISigningKeyStore
from fireworq.signing.keys import SigningKeys
from fireworq.signing.signer import Signer
from fireworq.store.common import driver_of
from fireworq.store.reloading import ReloadingService

#: Seconds a call made before the keys were first loaded waits for them.
READY_TIMEOUT = 5.0


def wall_ms() -> int:
    """Milliseconds since the epoch (the times of key expiry)."""
    return int(time.time() * 1000)


class SigningService(ReloadingService):
    """
    The signers of the queues whose signing is on, and the key changes the
    API makes.

    @param store: where the keys are kept (shared by every node).
    @param refresh_interval: seconds between reloads of the keys.
    @param overlap: seconds a rotated-out secret keeps signing.
    """

    name = "signing"
    stored_what = "the signing keys"
    loaded_what = "the signing keys"
    _log = Logger()

    def __init__(
        self,
        store: ISigningKeyStore,
        clock: IReactorTime,
        refresh_interval: float,
        overlap: float,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        super().__init__(store, clock, refresh_interval)
        self.overlap_ms = int(overlap * 1000)
        self._now_ms = now_ms
        self._signers: Dict[str, Signer] = {}
        self._failing = False
        self._waiters = ReadyWaiters(clock, READY_TIMEOUT, "the server is starting")

    # -- the hot path --------------------------------------------------------------

    def signer(self, queue_name: str) -> Optional[Signer]:
        """The signer of ``queue_name``, or None when its signing is off."""
        return self._signers.get(queue_name)

    @property
    def waiting(self) -> bool:
        """
        Whether deliveries must wait for the keys: the service runs and has
        not loaded them yet (a service that was never started -- a
        dispatcher used on its own -- signs nothing).
        """
        return self.running and not self._loaded

    # when_loaded (ReloadingService) fires once the keys are first loaded, so
    # that no delivery of a signed queue leaves unsigned while the server starts.

    # -- lifecycle (L{ReloadingService}'s: load when started, then periodically) -----

    def _stopping(self) -> None:
        self._waiters.fail("the server is stopping")

    def _apply_loaded(self, all_keys: List[SigningKeys]) -> None:
        if self._failing:
            self._log.info("Signing keys loaded again")
            self._failing = False
        signers = {}
        for keys in all_keys:
            old = self._signers.get(keys.queue_name)
            signers[keys.queue_name] = old if old is not None and old.keys == keys else Signer(keys)
        self._signers = signers
        if not self._loaded:
            self._waiters.ready()
        self._set_loaded()

    def _load_failed(self, failure: Any) -> None:
        if not self._failing:
            self._failing = True
            self._log.warn(
                "Cannot load signing keys: {error}; the keys last loaded stay in use",
                error=failure.getErrorMessage(),
            )

    def _apply(self, keys: Optional[SigningKeys], queue_name: str) -> None:
        if keys is not None and keys.enabled:
            self._signers[queue_name] = Signer(keys)
        else:
            self._signers.pop(queue_name, None)

    def _when_ready(self) -> "Deferred[None]":
        if self._loaded:
            return succeed(None)
        return self._waiters.wait()

    # -- what the API asks ---------------------------------------------------------------

    def signed_queues(self) -> "Deferred[Set[str]]":
        """The names of the queues whose signing is on (read from the store)."""
        d = self._when_ready()
        d.addCallback(lambda _: self.store.load_all())
        d.addCallback(lambda all_keys: {k.queue_name for k in all_keys})
        return d

    def set_signing(self, queue_name: str, enabled: bool) -> "Deferred[bool]":
        """Turn signing of ``queue_name`` on or off; fire with whether it is on."""
        d = self._when_ready()
        d.addCallback(lambda _: self.store.enable(queue_name, enabled))

        def done(keys: Optional[SigningKeys]) -> bool:
            self._apply(keys, queue_name)
            return keys is not None and keys.enabled

        d.addCallback(done)
        return d

    def keys(self, queue_name: str) -> "Deferred[Optional[SigningKeys]]":
        """The keys of ``queue_name`` as the API shows them, None when its signing is off."""
        d = self._when_ready()
        d.addCallback(lambda _: self.store.find(queue_name))
        d.addCallback(self._shown)
        return d

    def rotate(self, queue_name: str) -> "Deferred[Optional[SigningKeys]]":
        """
        Make a new current secret for ``queue_name``; the old one signs too
        for L{overlap_ms}.  None when its signing is off.
        """
        d = self._when_ready()
        d.addCallback(lambda _: self.store.rotate(queue_name, self._now_ms(), self.overlap_ms))

        def rotated(keys: Optional[SigningKeys]) -> Optional[SigningKeys]:
            if keys is not None:
                self._apply(keys, queue_name)
                self._log.info("Rotated the signing key of queue {queue}", queue=queue_name)
            return self._shown(keys)

        d.addCallback(rotated)
        return d

    def forget(self, queue_name: str) -> "Deferred[None]":
        """Delete the keys of a deleted queue."""
        d = self._when_ready()
        d.addCallback(lambda _: self.store.forget(queue_name))
        d.addCallback(lambda _: self._apply(None, queue_name))
        return d

    def _shown(self, keys: Optional[SigningKeys]) -> Optional[SigningKeys]:
        if keys is None or not keys.enabled:
            return None
        return keys.shown(self._now_ms())


def open_signing_keys(repository: Any) -> ISigningKeyStore:
    """
    The signing key store beside ``repository`` (the definitions): the same
    sqlite file, the same MySQL pool, or memory.
    """
    driver = driver_of(repository)
    if driver == "sqlite":
        from fireworq.signing.sqlite import SqliteSigningKeys

        return SqliteSigningKeys(repository.db)
    if driver == "mysql":
        from fireworq.signing.mysql import MySQLSigningKeys

        return MySQLSigningKeys(repository.pool)
    from fireworq.signing.memory import MemorySigningKeys

    return MemorySigningKeys()
