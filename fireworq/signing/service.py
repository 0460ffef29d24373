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

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.readiness import NotReady, ReadyWaiters
from fireworq.signing.interface import ISigningKeyStore
from fireworq.signing.keys import SigningKeys
from fireworq.signing.signer import Signer
from fireworq.timers import Periodic

#: Seconds a call made before the keys were first loaded waits for them.
READY_TIMEOUT = 5.0


def wall_ms() -> int:
    """Milliseconds since the epoch (the times of key expiry)."""
    return int(time.time() * 1000)


class SigningService(MultiService):
    """
    The signers of the queues whose signing is on, and the key changes the
    API makes.

    @param store: where the keys are kept (shared by every node).
    @param refresh_interval: seconds between reloads of the keys.
    @param overlap: seconds a rotated-out secret keeps signing.
    """

    name = "signing"
    _log = Logger()

    def __init__(
        self,
        store: ISigningKeyStore,
        clock: IReactorTime,
        refresh_interval: float,
        overlap: float,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        super().__init__()
        self.store = store
        self.overlap_ms = int(overlap * 1000)
        self._now_ms = now_ms
        self._signers: Dict[str, Signer] = {}
        self._loaded = False
        #: Deliveries waiting for the first load of the keys.
        self._loading: List[Deferred] = []
        self._failing = False
        self._waiters = ReadyWaiters(clock, READY_TIMEOUT, "the server is starting")
        self._refresher = Periodic(refresh_interval, self.refresh, clock=clock, name="refresh")
        self._prepared = False
        self._holding = False

    # -- the hot path --------------------------------------------------------------

    def signer(self, queue_name: str) -> Optional[Signer]:
        """The signer of ``queue_name``, or None when its signing is off."""
        return self._signers.get(queue_name)

    @property
    def loaded(self) -> bool:
        """Whether the keys have been loaded (deliveries wait for that, see L{when_loaded})."""
        return self._loaded

    @property
    def waiting(self) -> bool:
        """
        Whether deliveries must wait for the keys: the service runs and has
        not loaded them yet (a service that was never started -- a
        dispatcher used on its own -- signs nothing).
        """
        return self.running and not self._loaded

    def when_loaded(self) -> "Deferred[None]":
        """
        Fires once the keys are first loaded, so that no delivery of a
        signed queue leaves unsigned while the server starts; fails with
        L{NotReady} if the service stops first.
        """
        if self._loaded:
            return succeed(None)
        d: Deferred = Deferred()
        self._loading.append(d)
        return d

    # -- lifecycle -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._holding = False
        d = self.store.start()

        def holding(_: object) -> None:
            self._holding = True
            if self.running:
                self._refresher.setServiceParent(self)

        def failed(failure: Any) -> None:
            self._log.error("Cannot open the signing keys: {error}", error=failure.getErrorMessage())

        d.addCallbacks(holding, failed)

    def stopService(self) -> "Deferred[Any]":
        d = super().stopService()
        self._waiters.fail("the server is stopping")
        loading, self._loading = self._loading, []
        for waiter in loading:
            waiter.errback(NotReady("the server stopped before the signing keys were loaded"))
        if self._holding:
            self._holding = False
            d.addBoth(lambda _: self.store.stop())
        return d

    def refresh(self) -> "Deferred[None]":
        """Reload every queue's keys from the store."""
        d = succeed(None) if self._prepared else self.store.prepare()

        def prepared(_: object) -> Deferred:
            self._prepared = True
            return self.store.load_all()

        d.addCallback(prepared)
        d.addCallbacks(self._loaded_keys, self._load_failed)
        return d

    def _loaded_keys(self, all_keys: List[SigningKeys]) -> None:
        if self._failing:
            self._log.info("Signing keys loaded again")
            self._failing = False
        signers = {}
        for keys in all_keys:
            old = self._signers.get(keys.queue_name)
            signers[keys.queue_name] = old if old is not None and old.keys == keys else Signer(keys)
        self._signers = signers
        if not self._loaded:
            self._loaded = True
            self._waiters.ready()
            loading, self._loading = self._loading, []
            for waiter in loading:
                waiter.callback(None)

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
    module = type(repository).__module__
    if module.startswith("fireworq.store.sqlite"):
        from fireworq.signing.sqlite import SqliteSigningKeys

        return SqliteSigningKeys(repository.db)
    if module.startswith("fireworq.store.mysql"):
        from fireworq.signing.mysql import MySQLSigningKeys

        return MySQLSigningKeys(repository.pool)
    from fireworq.signing.memory import MemorySigningKeys

    return MemorySigningKeys()
