"""
One queue's dispatcher: polls the store for due jobs while this node holds
the queue's lease and delivers them to their workers, at most
``max_workers`` at a time and, when throttled, at most
``max_dispatches_per_second``.

L{QueueDispatcher} (this module: construction, configuration, statistics,
start and stop) is put together from two parts, classes it inherits so that
the per-job path pays no extra call: L{fireworq.dispatch.grabbing} (polls,
grabs, reservations of local pushes) and L{fireworq.dispatch.delivering}
(deliveries and their outcomes); L{fireworq.dispatch.state} declares what
they share.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from fireworq.backoff import Backoff
from fireworq.dispatch.cancels import CancelWatcher
from fireworq.dispatch.completion import CompletionBatcher
from fireworq.dispatch.delivering import Delivering
from fireworq.dispatch.grabbing import Grabbing
from fireworq.dispatch.outcomes import Outcomes
from fireworq.dispatch.returns import JobReturns
from fireworq.dispatch.state import Deliverer
from fireworq.dispatch.throttle import TokenBucket
from fireworq.dispatch.upkeep import KeyCleaner
from fireworq.events import IQueueEvents
from fireworq.history.cleaner import HistoryCleaner
from fireworq.history.record import retention_seconds
from fireworq.lease.interface import IQueueLease
from fireworq.logging import log_failure
from fireworq.model import THROTTLED_POLLING_INTERVAL, QueueDefinition
from fireworq.store.interface import IJobStore
from fireworq.timers import Periodic


__all__ = ["Deliverer", "QueueDispatcher"]


class QueueDispatcher(Grabbing, Delivering, Service):
    """
    Dispatches one queue.

    A L{Periodic} polls every ``polling_interval``; L{kick} polls at once
    (a local push, a freed worker with more jobs due).

    One counter owns capacity: C{_claimed} workers of ``max_workers`` are
    taken -- one per running delivery, the whole limit of a grab in flight
    (until its answer says how many jobs it brought), and those reserved for
    a push being stored grabbed (L{reserve}).  A poll grabs at most the rest
    (and the throttle's tokens), so a node never holds more grabbed jobs
    than free workers and no job waits in memory for one.  Outcomes go to a
    L{CompletionBatcher}, shaped by L{Outcomes} (job options, history).
    Jobs it must not deliver go back through L{JobReturns}; running
    deliveries whose jobs were canceled are found by a L{CancelWatcher}.

    Stopping (L{stopService}) stops grabbing at once, waits for in-flight
    deliveries up to ``shutdown_timeout`` seconds, returns the jobs still
    grabbed to the queue, writes pending completions and gives the lease up.
    In the server, the queue's L{fireworq.queues.QueueService} does the last
    steps (L{hand_over_parts}): its children stop one after the other.
    """

    _log = Logger()

    def __init__(
        self,
        definition: QueueDefinition,
        store: IJobStore,
        lease: IQueueLease,
        deliverer: Deliverer,
        events: IQueueEvents,
        clock: IReactorTime,
        shutdown_timeout: float = 30.0,
        completions: Optional[CompletionBatcher] = None,
        grab_retry_delay: float = 1.0,
        job_lifetime: int = 0,
    ) -> None:
        self.name = definition.name
        self.definition = definition
        self._store = store
        self.lease = lease
        self.deliverer = deliverer
        self._events = events
        self._clock = clock
        self._shutdown_timeout = shutdown_timeout
        #: After a failed grab, polls wait (growing delays, from
        #: ``grab_retry_delay`` up to 5 s) while the store is down.
        self._grab_retry = Backoff(
            clock, initial=grab_retry_delay, maximum=max(grab_retry_delay, 5.0)
        )
        self.completions = completions or CompletionBatcher(store, definition.name, clock)
        self._bucket = self._make_bucket(definition)
        self._poller: Optional[Periodic] = None
        self._inflight: Dict[int, Deferred] = {}
        self._grabbing = False
        #: Fire when the grab in flight (if any) and its handling are over.
        self._grab_waiters: List[Deferred] = []
        #: Returns of jobs that are not ours to deliver; orphans to reconcile.
        self._returns = JobReturns(store, definition.name)
        self._again = False
        self._backlog = False
        self._kick_call: Optional[IDelayedCall] = None
        self._dispatching = False
        self._grab_succeeded = False
        self._idle_waiters: List[Deferred] = []
        #: Workers taken: running deliveries + a grab in flight's limit +
        #: reservations of pushes (see the class docstring).
        self._claimed = 0
        #: Looks for cancel marks while deliveries run (B9).
        self._cancels = CancelWatcher(store, definition.name, lease, clock, self.cancel, self._delivering)
        #: Ids of in-flight deliveries being aborted by a cancel (B9).
        self._canceled: Set[int] = self._cancels.canceled
        #: Retry waits, expiry and kept jobs (B7, B8).
        self._outcomes = Outcomes(definition.name, store, events, clock)
        #: A completion with its attempt's times where something shows them.
        self._timed = self._outcomes.timed
        #: The server's default retention of finished jobs in seconds (B8).
        self.job_lifetime = job_lifetime
        self._apply_retention()
        lease.subscribe(self._lease_changed)
        #: Whether this dispatcher starts and stops its lease, batcher,
        #: cleaners and deliverer itself (used on its own), or a parent
        #: service does (L{hand_over_parts}).
        self.owns_parts = True
        #: While the lease is held: forget expired idempotency keys (B7).
        self.key_cleaner = KeyCleaner(store, definition.name, lease, clock)
        #: While the lease is held: delete kept jobs past their retention (B8).
        self.history_cleaner = HistoryCleaner(
            store, definition.name, lease, clock, on_deleted=self._outcomes.history_deleted
        )

    # -- configuration -----------------------------------------------------

    def _make_bucket(self, definition: QueueDefinition) -> Optional[TokenBucket]:
        if not definition.throttled:
            return None
        return TokenBucket(
            definition.max_dispatches_per_second, definition.max_burst_size, self._clock
        )

    def _apply_retention(self) -> None:
        """Follow the queue's retention (B8): keep finished jobs, capture answers."""
        keep_ms = self._outcomes.keep_ms = retention_seconds(self.definition, self.job_lifetime) * 1000
        if hasattr(self.deliverer, "keep_output"):
            self.deliverer.keep_output = keep_ms > 0

    @staticmethod
    def polling_seconds(definition: QueueDefinition) -> float:
        """How often ``definition``'s queue is polled, in seconds."""
        interval = (
            THROTTLED_POLLING_INTERVAL if definition.throttled else definition.polling_interval
        )
        return max(1, interval) / 1000.0

    def reconfigure(self, definition: QueueDefinition) -> None:
        """
        Apply a changed definition without stopping: new limits apply to
        deliveries started from now on; running ones finish as they are.
        """
        old = self.definition
        self.definition = definition
        if definition.defaults.retention != old.defaults.retention:
            self._apply_retention()
        if definition.max_workers != old.max_workers:
            # Running deliveries keep their workers: after a shrink, new ones
            # start only once fewer than the new limit run.
            resize = getattr(self.deliverer, "resize", None)
            if resize is not None:
                resize(definition.max_workers)
        if (definition.max_dispatches_per_second, definition.max_burst_size) != (
            old.max_dispatches_per_second,
            old.max_burst_size,
        ):
            self._bucket = self._make_bucket(definition)
        if self.polling_seconds(definition) != self.polling_seconds(old) and self._poller:
            self._stop_loop()
            self._start_loop()
        self.kick()

    # -- statistics ----------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Deliveries running now."""
        return len(self._inflight)

    @property
    def free_workers(self) -> int:
        """Workers neither delivering nor promised to a grab or push in flight."""
        return self.definition.max_workers - self._claimed

    @property
    def max_workers(self) -> int:
        """The current concurrency limit."""
        return self.definition.max_workers

    @property
    def min_grab(self) -> int:
        """
        While due jobs wait, the fewest free workers worth a grab: a quarter
        of max_workers (one store round trip per many jobs, while at least
        three quarters of the workers stay busy).
        """
        return max(1, self.definition.max_workers // 4)

    def worker_stats(self) -> Dict[str, int]:
        """``outstanding_jobs``, ``total_workers`` and ``idle_workers`` (A3)."""
        return {
            "outstanding_jobs": 0,
            "total_workers": self.max_workers,
            "idle_workers": max(0, self.max_workers - self.in_flight),
        }

    # -- service -------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._dispatching = True
        self._start_loop()
        if self.owns_parts:
            self.lease.start()
            self.key_cleaner.startService()
            self.history_cleaner.startService()

    def hand_over_parts(self) -> None:
        """
        From now on the lease, the completion batcher, the cleaners and the
        deliverer are started and stopped by a parent service (the queue's
        L{fireworq.queues.QueueService}), not by this dispatcher: its stop
        only stops grabbing and drains the deliveries.
        """
        self.owns_parts = False

    def _start_loop(self) -> None:
        self._poller = Periodic(
            self.polling_seconds(self.definition),
            self.poll,
            clock=self._clock,
            name=f"poll queue {self.name}",
        )
        self._poller.startService()

    def _stop_loop(self) -> None:
        # poll() is synchronous: nothing to wait for once it stops.
        if self._poller is not None and self._poller.running:
            self._poller.stopService()
        self._poller = None

    def stopService(self) -> "Deferred[None]":
        Service.stopService(self)
        self._dispatching = False
        self._stop_loop()
        if self.owns_parts:
            self.key_cleaner.stopService()
            self.history_cleaner.stopService()
        self._grab_retry.cancel()
        if self._kick_call is not None and self._kick_call.active():
            self._kick_call.cancel()
        self._cancels.stop()
        # A grab answered from now on puts its jobs back (not ours to deliver
        # any more): wait for it, and for such returns, before the lease and
        # the store go.
        d = self._grab_over()
        d.addCallback(lambda _: self._returns.written())
        d.addCallback(lambda _: self._drain_deliveries())
        if self.owns_parts:
            d.addCallback(lambda _: self.completions.drain())
            d.addCallback(lambda _: self.lease.stop())
            d.addCallback(lambda _: self.close_deliverer())
        d.addErrback(log_failure(self._log, "Error while stopping queue {queue}", queue=self.name))
        return d

    def when_idle(self) -> "Deferred[None]":
        """
        Fire once no delivery is in flight and every completion is written
        (used before giving the queue's lease to another node).
        """
        if not self._inflight:
            return self.completions.drain()
        d: Deferred = Deferred()
        self._idle_waiters.append(d)
        d.addCallback(lambda _: self.completions.drain())
        return d

    def close_deliverer(self) -> Optional[Deferred]:
        """Close the deliverer's connections (when it has a ``close``)."""
        close = getattr(self.deliverer, "close", None)
        return close() if close is not None else None

    def _drain_deliveries(self) -> "Deferred[None]":
        """
        Fire when every in-flight delivery has ended, or after the shutdown
        timeout, when the rest are abandoned and their jobs released.
        """
        if not self._inflight:
            return succeed(None)
        done: Deferred = Deferred()
        expired = []

        def finished(_: object) -> None:
            if not expired:
                timer.cancel()
                done.callback(None)

        def expire() -> None:
            expired.append(True)
            abandoned, self._inflight = self._inflight, {}
            self._claimed -= len(abandoned)
            self._log.warn(
                "Queue {queue}: {count} delivery(ies) still running after {timeout}s; "
                "returning their jobs to the queue",
                queue=self.name,
                count=len(abandoned),
                timeout=self._shutdown_timeout,
            )
            for d in abandoned.values():
                d.cancel()
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            released = self._returns.abandoned(list(abandoned), self.lease.grabber_id)
            released.addBoth(lambda _: done.callback(None))

        timer = self._clock.callLater(self._shutdown_timeout, expire)
        DeferredList(list(self._inflight.values()), consumeErrors=True).addBoth(finished)
        return done

    # -- the lease --------------------------------------------------------------

    def _lease_changed(self, held: bool) -> None:
        if held:
            self._log.info("This node is now active for queue {queue}", queue=self.name)
            self.kick()
        else:
            self._log.info("This node is no longer active for queue {queue}", queue=self.name)
