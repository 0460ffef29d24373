"""
L{SoleLease}: the lease of a single-node store (in-memory, sqlite).

This process is the only dispatcher, so the lease is held from start to
stop; the MySQL store uses L{fireworq.lease.keeper.LeaseKeeper} instead,
which competes with other nodes through lease rows.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from fireworq.backoff import Backoff
from fireworq.lease.interface import IQueueLease, LeaseListener
from fireworq.store.interface import IJobStore, NodeInfo


@implementer(IQueueLease)
class SoleLease:
    """
    The lease of a single-node store: this process is the only dispatcher,
    so the lease is held from start to stop.  On start, jobs left grabbed by
    an earlier process (killed before it could finish them) are recovered;
    while the store cannot be reached, recovery is retried with the server's
    one retry policy (L{fireworq.backoff.Backoff}), and never after L{stop}.
    """

    _log = Logger()

    #: The first delay between attempts when recovery fails (store
    #: unavailable), in seconds; it doubles up to L{maxRetryDelay}.
    retryDelay = 1.0
    #: The longest delay between attempts, in seconds.
    maxRetryDelay = 30.0

    def __init__(
        self,
        queue_name: str,
        store: IJobStore,
        node: NodeInfo,
        grabber_id: int,
        clock: IReactorTime,
    ) -> None:
        self.queue_name = queue_name
        #: Always None: a single-node store is never shared with the original.
        self.original_holder: Optional[int] = None
        self._clock = clock
        self.grabber_id = grabber_id
        self._store = store
        self._node = node
        self._held = False
        self._running = False
        #: Bumped by every start and stop: an answer of an earlier run's
        #: recovery is ignored.
        self._generation = 0
        self._retry = Backoff(clock, initial=self.retryDelay, maximum=self.maxRetryDelay)
        self._listeners: List[LeaseListener] = []

    def held(self) -> bool:
        return self._held

    def proven(self, grabber_id: int) -> bool:
        """Always true: no other node can take a single-node store's queue."""
        return True

    def subscribe(self, listener: LeaseListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._generation += 1
        self._retry.reset()
        self._recover(self._generation)

    def _recover(self, generation: int) -> None:
        if not self._running or generation != self._generation:
            return
        d = self._store.recover(self.queue_name, self.grabber_id)
        d.addCallbacks(self._recovered, self._recovery_failed, (generation,), None, (generation,))

    def _recovered(self, count: int, generation: int) -> None:
        if not self._running or generation != self._generation:
            return
        self._retry.reset()
        if count:
            self._log.info(
                "Recovered {count} grabbed job(s) of queue {queue}",
                count=count,
                queue=self.queue_name,
            )
        self._set(True)

    def _recovery_failed(self, failure: Failure, generation: int) -> None:
        if not self._running or generation != self._generation:
            return
        delay = self._retry.schedule(self._recover, generation)
        self._log.warn(
            "Cannot recover grabbed jobs of queue {queue} ({why}); retrying in {delay:.1f}s",
            queue=self.queue_name,
            why=failure.getErrorMessage(),
            delay=delay,
        )

    def _set(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        for listener in list(self._listeners):
            listener(held)

    def stop(self) -> Deferred:
        """Give the lease up; a pending retry of the recovery is cancelled."""
        self._running = False
        self._generation += 1
        self._retry.cancel()
        self._set(False)
        return succeed(None)

    def holder(self) -> Deferred:
        return succeed(self._node if self._held else None)
