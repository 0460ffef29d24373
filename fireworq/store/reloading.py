"""
L{ReloadingService}: the base of a node-wide service that follows
definitions kept in a store every node shares (hooks, signing keys).

It opens the store when it starts, creates the table on the first load,
loads everything when it starts and every ``refresh_interval`` seconds
after (so a change made through another node is followed within that
interval), lets callers wait for the first load (L{when_loaded}) and gives
the store back when it stops.  A subclass says what to do with what was
loaded (L{_apply_loaded}) and with a failed load (L{_load_failed}).
"""

from __future__ import annotations

from typing import Any, List

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.readiness import NotReady
from fireworq.timers import Periodic


class ReloadingService(MultiService):
    """
    Loads C{store.load_all()} when started and periodically; see the module.

    @param store: has C{start}, C{prepare}, C{stop} and C{load_all}
        (all returning Deferreds).
    @param clock: the reactor's clock (the reload timer).
    @param refresh_interval: seconds between reloads.
    """

    #: What the store holds, in the log line when it cannot be opened.
    stored_what = "the definitions"
    #: What is loaded, in the L{NotReady} of waiters when the service stops first.
    loaded_what = "the definitions"
    _log = Logger()

    def __init__(self, store: Any, clock: IReactorTime, refresh_interval: float) -> None:
        super().__init__()
        self.store = store
        self._loaded = False
        #: Callers of L{when_loaded} waiting for the first load.
        self._loading: List[Deferred] = []
        self._prepared = False
        self._holding = False
        self._refresher = Periodic(refresh_interval, self.refresh, clock=clock, name="refresh")

    @property
    def loaded(self) -> bool:
        """Whether everything has been loaded once."""
        return self._loaded

    def when_loaded(self) -> "Deferred[None]":
        """Fires once everything is first loaded; fails with L{NotReady} if the service stops first."""
        if self._loaded:
            return succeed(None)
        d: Deferred = Deferred()
        self._loading.append(d)
        return d

    def _set_loaded(self) -> None:
        """Mark the first load done and wake the callers of L{when_loaded}."""
        if not self._loaded:
            self._loaded = True
            loading, self._loading = self._loading, []
            for waiter in loading:
                waiter.callback(None)

    # -- lifecycle -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._holding = False
        d = self.store.start()

        def holding(_: object) -> None:
            self._holding = True
            if self.running:
                self._refresher.setServiceParent(self)

        def failed(failure: Any) -> None:
            self._log.error(
                "Cannot open {what}: {error}", what=self.stored_what, error=failure.getErrorMessage()
            )

        d.addCallbacks(holding, failed)

    def stopService(self) -> "Deferred[Any]":
        d = super().stopService()
        self._stopping()
        loading, self._loading = self._loading, []
        for waiter in loading:
            waiter.errback(NotReady(f"the server stopped before {self.loaded_what} were loaded"))
        if self._holding:
            self._holding = False
            d.addBoth(lambda _: self.store.stop())
        return d

    def _stopping(self) -> None:
        """Called as the service stops, before the L{when_loaded} waiters fail."""

    def refresh(self) -> "Deferred[None]":
        """Reload everything from the store (creating its table first, once) and apply it."""
        d = succeed(None) if self._prepared else self.store.prepare()

        def prepared(_: object) -> Deferred:
            self._prepared = True
            return self.store.load_all()

        d.addCallback(prepared)
        d.addCallbacks(self._apply_loaded, self._load_failed)
        return d

    def _apply_loaded(self, items: List[Any]) -> Any:
        """Apply what L{refresh} loaded (a subclass's job)."""
        raise NotImplementedError

    def _load_failed(self, failure: Any) -> None:
        """A load failed: log it (what was loaded before stays in use)."""
        self._log.warn("Cannot load {what}: {error}", what=self.loaded_what, error=failure.getErrorMessage())
