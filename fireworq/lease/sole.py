"""
L{SoleLease}: the lease of a single-node store (in-memory, sqlite).

This process is the only dispatcher, so the lease is held from start to
stop; the MySQL store uses L{fireworq.lease.keeper.LeaseKeeper} instead,
which competes with other nodes through lease rows.
"""

from __future__ import annotations

from typing import List

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.lease.interface import IQueueLease, LeaseListener
from fireworq.store.interface import IJobStore, NodeInfo


@implementer(IQueueLease)
class SoleLease:
    """
    The lease of a single-node store: this process is the only dispatcher,
    so the lease is held from start to stop.  On start, jobs left grabbed by
    an earlier process (killed before it could finish them) are recovered.
    """

    _log = Logger()

    #: Seconds between attempts when recovery fails (store unavailable).
    retryDelay = 1.0

    def __init__(
        self,
        queue_name: str,
        store: IJobStore,
        node: NodeInfo,
        grabber_id: int,
        clock: IReactorTime,
    ) -> None:
        self.queue_name = queue_name
        self._clock = clock
        self.grabber_id = grabber_id
        self._store = store
        self._node = node
        self._held = False
        self._running = False
        self._listeners: List[LeaseListener] = []

    def held(self) -> bool:
        return self._held

    def proven(self, grabber_id: int) -> bool:
        """Always true: no other node can take a single-node store's queue."""
        return True

    def subscribe(self, listener: LeaseListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._running = True
        d = self._store.recover(self.queue_name, self.grabber_id)
        d.addCallback(self._recovered)
        d.addErrback(self._recoveryFailed)

    def _recovered(self, count: int) -> None:
        if count:
            self._log.info(
                "Recovered {count} grabbed job(s) of queue {queue}",
                count=count,
                queue=self.queue_name,
            )
        if self._running:
            self._set(True)

    def _recoveryFailed(self, failure) -> None:
        self._log.failure(
            "Cannot recover grabbed jobs of queue {queue}; retrying",
            failure,
            queue=self.queue_name,
        )
        if self._running:
            self._clock.callLater(self.retryDelay, self.start)

    def _set(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        for listener in list(self._listeners):
            listener(held)

    def stop(self) -> Deferred:
        self._running = False
        self._set(False)
        return succeed(None)

    def holder(self) -> Deferred:
        return succeed(self._node if self._held else None)
