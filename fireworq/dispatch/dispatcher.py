"""
One queue's dispatcher: polls the store for due jobs while this node holds
the queue's lease and delivers them to their workers, at most
``max_workers`` at a time and, when throttled, at most
``max_dispatches_per_second``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, Set, Tuple

import attr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq.backoff import Backoff
from fireworq.dispatch.completion import CompletionBatcher
from fireworq.dispatch.deadline import expired_at_grab, expired_result, expires_before_retry
from fireworq.dispatch.retry import RetryPolicy
from fireworq.dispatch.upkeep import KeyCleaner
from fireworq.lease.interface import IQueueLease
from fireworq.dispatch.throttle import TokenBucket
from fireworq.events import IQueueEvents
from fireworq.joboptions.values import NO_OPTIONS
from fireworq.logging import log_failure
from fireworq.history.cleaner import HistoryCleaner
from fireworq.history.record import finished_state, retention_seconds
from fireworq.model import (
    AttemptTimes,
    Completion,
    CompletionKind,
    Job,
    JobState,
    JobStatus,
    Page,
    QueueDefinition,
    Result,
    ResultStatus,
    THROTTLED_POLLING_INTERVAL,
    completion_for,
)
from fireworq.store.interface import IJobStore
from fireworq.timers import Periodic


#: While deliveries run, the store is asked this often (s) which of them
#: were canceled through another node (B9: aborted within a second).
CANCEL_POLL_INTERVAL = 0.4


class Deliverer(Protocol):
    """Something that delivers a job and reports the L{Result}; never fails."""

    def deliver(self, queue_name: str, job: Job) -> "Deferred[Result]":
        ...


class QueueDispatcher(Service):
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
    L{CompletionBatcher}.

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
        #: Returns of jobs that are not ours to deliver, still being written.
        self._releasing: Set[Deferred] = set()
        self._again = False
        self._backlog = False
        self._kick_call: Optional[IDelayedCall] = None
        self._dispatching = False
        self._needs_reconcile = False
        self._grab_succeeded = False
        self._idle_waiters: List[Deferred] = []
        #: Workers taken: running deliveries + a grab in flight's limit +
        #: reservations of pushes (see the class docstring).
        self._claimed = 0
        #: Ids of in-flight deliveries being aborted by a cancel (B9).
        self._canceled: Set[int] = set()
        #: The next look for cancel marks (only while deliveries run).
        self._cancel_call: Optional[IDelayedCall] = None
        self._cancel_polling = False
        #: The server's default retention of finished jobs in seconds (B8).
        self.job_lifetime = job_lifetime
        #: How long this queue keeps a finished job (ms; 0: not kept, B8).
        self.keep_ms = 0
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
            store, definition.name, lease, clock, on_deleted=self._history_deleted
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
        self.keep_ms = retention_seconds(self.definition, self.job_lifetime) * 1000
        if hasattr(self.deliverer, "keep_output"):
            self.deliverer.keep_output = self.keep_ms > 0

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
        self._stop_cancel_poll()
        # A grab answered from now on puts its jobs back (not ours to deliver
        # any more): wait for it, and for such returns, before the lease and
        # the store go.
        d = self._grab_over()
        d.addCallback(lambda _: DeferredList(list(self._releasing), consumeErrors=True))
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
            released = self._store.release(self.name, list(abandoned), self.lease.grabber_id)
            released.addErrback(
                log_failure(
                    self._log, "Cannot return abandoned jobs of queue {queue}", queue=self.name
                )
            )
            released.addBoth(lambda _: done.callback(None))

        timer = self._clock.callLater(self._shutdown_timeout, expire)
        DeferredList(list(self._inflight.values()), consumeErrors=True).addBoth(finished)
        return done

    # -- grabbing --------------------------------------------------------------

    def _lease_changed(self, held: bool) -> None:
        if held:
            self._log.info("This node is now active for queue {queue}", queue=self.name)
            self.kick()
        else:
            self._log.info("This node is no longer active for queue {queue}", queue=self.name)

    def kick(self) -> None:
        """Poll as soon as the reactor is free (coalesces repeated kicks)."""
        if not self._dispatching:
            return
        if self._kick_call is None or not self._kick_call.active():
            self._kick_call = self._clock.callLater(0, self.poll)

    def poll(self) -> None:
        """Grab as many due jobs as there is room for and deliver them."""
        if self._grabbing:
            self._again = True
            return
        if not self._dispatching or not self.lease.held() or self.definition.paused:
            return
        if self._grab_retry.pending:
            return  # the store failed a grab; the retry kicks
        free = self.free_workers
        if free <= 0:
            self._backlog = True
            return
        if self._backlog and self._inflight and free < self.min_grab:
            # More jobs are due and most workers are busy: let a few more
            # finish so that one grab fetches a batch, not a job or two.
            return
        limit = free
        if self._bucket is not None:
            tokens = self._bucket.available()
            if tokens <= 0:
                self._kick_later(self._bucket.wait_time())
                return
            limit = min(limit, tokens)
        self._grabbing = True
        self._backlog = False
        # The grab holds ``limit`` workers until its answer (_grabbed,
        # _grab_failed) gives them back, to its jobs' deliveries or free.
        self._claimed += limit
        grabber_id = self.lease.grabber_id
        d = self._store.grab(self.name, limit, grabber_id)
        d.addCallbacks(
            self._grabbed,
            self._grab_failed,
            callbackArgs=(limit, grabber_id),
            errbackArgs=(limit,),
        )
        d.addBoth(self._grab_done)

    def _kick_later(self, delay: float) -> None:
        if self._kick_call is None or not self._kick_call.active():
            self._kick_call = self._clock.callLater(max(delay, 0.001), self.poll)

    def _grabbed(self, jobs: List[Job], limit: int, grabber_id: int) -> None:
        self._grab_succeeded = True
        self._grab_retry.reset()
        self._claimed -= limit  # each delivery started below takes one back
        if not jobs:
            return
        if not self._may_deliver(grabber_id):
            # The lease was lost (or is being given up) while the grab was
            # answered -- e.g. the process was paused: the next holder
            # recovers these jobs, so delivering them here would only
            # deliver them twice.  Put them back instead (a no-op for jobs
            # already recovered).
            self._release_unsent([job.id for job in jobs], grabber_id)
            return
        if self._bucket is not None:
            self._bucket.take(len(jobs))
        self._events.popped(self.name, jobs)
        for job in jobs:
            self._start(job, grabber_id)
        if len(jobs) >= limit:
            self._backlog = True
            self._again = True

    def _may_deliver(self, grabber_id: int) -> bool:
        """Whether jobs grabbed under ``grabber_id`` are still ours to deliver."""
        return self._dispatching and self.lease.held() and self.lease.grabber_id == grabber_id

    def _grab_over(self) -> "Deferred[None]":
        """Fire once no grab is in flight."""
        if not self._grabbing:
            return succeed(None)
        d: Deferred = Deferred()
        self._grab_waiters.append(d)
        return d

    def _release_unsent(self, job_ids: List[int], grabber_id: int) -> None:
        self._log.info(
            "Queue {queue}: returning {count} job(s) undelivered (no longer ours to deliver)",
            queue=self.name,
            count=len(job_ids),
        )
        released = self._store.release(self.name, job_ids, grabber_id)
        self._releasing.add(released)

        def failed(failure: Failure) -> None:
            # Left grabbed under our epoch: released by the next reconcile
            # (or recovered by the next holder, or by this node's next start).
            self._log.warn(
                "Queue {queue}: cannot return {count} job(s) now ({error}); "
                "they are recovered by the queue's next holder",
                queue=self.name,
                count=len(job_ids),
                error=failure.getErrorMessage(),
            )
            self._needs_reconcile = True

        released.addErrback(failed)
        released.addBoth(lambda _: self._releasing.discard(released))

    def _grab_failed(self, failure: Failure, limit: int) -> None:
        self._claimed -= limit
        delay = self._grab_retry.schedule(self.kick)
        self._log.warn(
            "Cannot grab jobs of queue {queue}: {error}; retrying in {delay:.1f}s",
            queue=self.name,
            error=failure.getErrorMessage(),
            delay=delay,
        )
        # The grab may have committed before the answer was lost: once the
        # store answers again, return such orphans to the queue.
        self._needs_reconcile = True

    def _reconcile(self) -> "Deferred[None]":
        """
        Release jobs grabbed under our grabber id that no delivery or pending
        completion accounts for (left by a grab whose answer was lost).
        """
        self._needs_reconcile = False
        grabber_id = self.lease.grabber_id
        d = self._store.list_jobs(self.name, JobState.GRABBED, 10000, None, False)

        def release(page: Page) -> "Deferred[int]":
            known = set(self._inflight) | self.completions.job_ids()
            orphans = [
                job.id
                for job in page.items
                if job.grabber_id == grabber_id and job.id not in known
            ]
            if not orphans or self._grabbing:
                return succeed(0)
            self._log.info(
                "Queue {queue}: returning {count} orphaned grabbed job(s)",
                queue=self.name,
                count=len(orphans),
            )
            released = self._store.release(self.name, orphans, grabber_id)
            released.addCallback(lambda _: self.kick())
            return released

        d.addCallback(release)
        d.addErrback(lambda f: setattr(self, "_needs_reconcile", True))
        d.addCallback(lambda _: None)
        return d

    def _grab_done(self, _: object) -> None:
        self._grabbing = False
        waiters, self._grab_waiters = self._grab_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if self._grab_succeeded and self._needs_reconcile:
            self._reconcile()
        self._grab_succeeded = False
        if self._again:
            self._again = False
            if self.free_workers > 0:
                self.kick()

    # -- immediate dispatch of local pushes (B4) ----------------------------------

    def reserve(self, wanted: int) -> Tuple[Optional[int], int]:
        """
        Reserve up to ``wanted`` workers for due jobs being pushed through
        this node, so that the push can store them already grabbed and they
        are delivered without a poll.  Only while this node holds the lease,
        the queue is not throttled and no older jobs wait (they go first).
        Returns the grabber id to store the jobs with and how many workers
        were reserved (0: push them as usual).
        """
        if (
            wanted <= 0
            or not self._dispatching
            or self.definition.paused
            or self._bucket is not None
            or self._backlog
            or not self.lease.held()
        ):
            return None, 0
        granted = min(wanted, self.free_workers)
        if granted <= 0:
            return None, 0
        self._claimed += granted
        return self.lease.grabber_id, granted

    def pushed(self, jobs: List[Job], grabber_id: int, reserved: int) -> None:
        """
        The push of a reservation is committed: deliver the jobs it stored
        grabbed by us (the store may have stored them claimed instead, if the
        lease moved meanwhile; a poll takes those) -- or, when they are not
        ours to deliver any more (stopping, or the lease was lost meanwhile),
        put them back.
        """
        self._claimed -= reserved  # each delivery started below takes one back
        mine = [
            job
            for job in jobs
            if job.status == JobStatus.GRABBED.value and job.grabber_id == grabber_id
        ]
        if not self._may_deliver(grabber_id):
            # Stopping, or the lease was lost while the push was committed
            # (the process was paused, say): the next holder recovers these
            # jobs, so delivering them here would deliver them twice.
            if mine:
                self._release_unsent([job.id for job in mine], grabber_id)
            return
        if mine:
            self._events.popped(self.name, mine)
            for job in mine:
                self._start(job, grabber_id)
        if len(mine) < reserved:
            self.kick()

    def unreserve(self, reserved: int) -> None:
        """The push of a reservation failed: free the workers again."""
        self._claimed -= reserved

    # -- delivering ------------------------------------------------------------

    def _start(self, job: Job, grabber_id: int) -> None:
        """Deliver ``job`` on a worker of its own (taken from L{free_workers})."""
        if not self.lease.proven(grabber_id):
            # Fenced: this node cannot prove its lease of ``grabber_id`` now
            # (paused past its deadline, lost, taken over), so another node
            # may deliver the job: not sent, returned (the next holder
            # recovers it if it has taken the queue).
            self._release_unsent([job.id], grabber_id)
            return
        started = self._clock.seconds()
        if job.options is not NO_OPTIONS and expired_at_grab(job.deadline_at, int(started * 1000)):
            # B7: no attempt starts after the job's deadline.
            self._expire(job, grabber_id, tries=job.attempt - 1)
            return
        self._claimed += 1  # given back in _delivered, or when abandoned at stop
        try:
            d = self.deliverer.deliver(self.name, job)
        except Exception:
            d = fail()
        self._inflight[job.id] = d
        if self._cancel_call is None and not self._cancel_polling:
            self._cancel_call = self._clock.callLater(CANCEL_POLL_INTERVAL, self._poll_cancels)
        d.addErrback(self._delivery_crashed, job)
        d.addCallback(self._delivered, job, grabber_id, started)
        d.addErrback(log_failure(self._log, "Cannot finish delivery of job {id}", id=job.id))

    def _delivery_crashed(self, failure: Failure, job: Job) -> Optional[Result]:
        if job.id not in self._inflight:
            return None  # abandoned at shutdown; the job was released
        if job.id in self._canceled:
            return Result(ResultStatus.INTERNAL_FAILURE.value, 0, "Request aborted: the job was canceled")
        self._log.failure("Delivery of job {id} crashed", failure, id=job.id)
        return Result(
            ResultStatus.INTERNAL_FAILURE.value, 0, f"Internal error: {failure.getErrorMessage()}"
        )

    def _delivered(
        self, result: Optional[Result], job: Job, grabber_id: int, started: float
    ) -> None:
        if result is None or self._inflight.pop(job.id, None) is None:
            return
        self._claimed -= 1
        if self._canceled and job.id in self._canceled:
            self._canceled.discard(job.id)
            self._log.info(
                "Queue {queue}: delivery of job {id} aborted: the job was canceled",
                queue=self.name, id=job.id,
            )
            canceled = Completion(job, CompletionKind.CANCEL, result)
            self.completions.add(self._timed(canceled, started), grabber_id)
            told = getattr(self._events, "canceled", None)
            if told is not None:
                told(self.name, [job])
            self._after_delivery()
            return
        completion = completion_for(job, result)
        written = completion
        if completion.kind is CompletionKind.RETRY and (
            job.options is not NO_OPTIONS or result.retry_after is not None
        ):
            written = self._retry_completion(completion)
        # Fenced by grabber_id in the store; a kept job (B8) with its times.
        self.completions.add(self._timed(written, started), grabber_id)
        if self.lease.proven(grabber_id):
            if written is not completion and written.kind is CompletionKind.FAIL:
                # Expired instead of retried: the delivery failed for good.
                completion = Completion(job, CompletionKind.FAIL, result)
                self._events.finished(self.name, completion, self._clock.seconds() - started)
                self._events_expired([job])
            else:
                self._events.finished(self.name, written, self._clock.seconds() - started)
        else:
            # The lease lapsed during the delivery: another node may have
            # recovered the job and finished it, so do not report it done.
            self._log.warn(
                "Queue {queue}: job {id} was delivered after this node's lease lapsed; "
                "its outcome is written only if no other node has taken the job over",
                queue=self.name, id=job.id,
            )
        self._after_delivery()

    def _after_delivery(self) -> None:
        if not self._inflight and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        if self._backlog or self._again:
            self.kick()

    # -- job options (B7): retry timing and deadlines ------------------------------

    def _retry_completion(self, completion: Completion) -> Completion:
        """
        ``completion`` (a RETRY) with the wait its job's retry policy and
        the answer's C{Retry-After} give -- or, when the next try would
        start after the job's deadline, the job's expiry instead.
        """
        job = completion.job
        policy = RetryPolicy.for_job(job.retry_delay, job.options)
        wait_ms = policy.wait_ms(job.fail_count + 1, completion.result.retry_after)
        deadline_at = job.deadline_at
        if expires_before_retry(deadline_at, int(self._clock.seconds() * 1000) + wait_ms):
            assert deadline_at is not None
            return Completion(job, CompletionKind.FAIL, self._expired_result(job, completion.result))
        return attr.evolve(completion, retry_wait_ms=wait_ms)

    @staticmethod
    def _expired_result(job: Job, last: Optional[Result], tries: Optional[int] = None) -> Result:
        assert job.deadline_at is not None
        result = expired_result(job.deadline_at, job.attempt if tries is None else tries)
        if last is not None and last.message:
            result = attr.evolve(result, message=f"{result.message}; last answer: {last.message}")
        return result

    def _expire(self, job: Job, grabber_id: int, tries: int) -> None:
        """Write ``job``, grabbed past its deadline, to the failure log undelivered."""
        self._log.info(
            "Queue {queue}: job {id} expired (deadline passed) before its attempt", queue=self.name, id=job.id
        )
        result = self._expired_result(job, None, tries)
        expired = Completion(job, CompletionKind.FAIL, result)
        if self.keep_ms:
            expired = self._kept(expired, self._clock.seconds(), tries)
        self.completions.add(expired, grabber_id)
        self._events_expired([job])

    def _timed(self, completion: Completion, started: float) -> Completion:
        """
        ``completion`` with its attempt's times where something shows them: a
        kept job (B8), or the ``result`` of a hook event (B12) while the store
        has hooks -- otherwise as it is (nothing added on the hot path).
        """
        if self.keep_ms and completion.kind is not CompletionKind.RETRY:
            return self._kept(completion, started)
        if getattr(self._store, "event_hooks", None) is None:
            return completion
        times = AttemptTimes(int(started * 1000), int(self._clock.seconds() * 1000))
        return attr.evolve(completion, attempt=times)

    def _kept(self, completion: Completion, started: float, attempts: Optional[int] = None) -> Completion:
        """``completion`` of a queue that keeps finished jobs (B8): kept, with its attempt's times."""
        if completion.kind is CompletionKind.RETRY:
            return completion
        times = AttemptTimes(int(started * 1000), int(self._clock.seconds() * 1000), attempts)
        kept = getattr(self._events, "kept", None)
        if kept is not None:
            kept(self.name, finished_state(completion))
        return attr.evolve(completion, keep_ms=self.keep_ms, attempt=times)

    def _history_deleted(self, queue_name: str, count: int) -> None:
        deleted = getattr(self._events, "history_deleted", None)
        if deleted is not None:
            deleted(queue_name, count)

    def _events_expired(self, jobs: List[Job]) -> None:
        expired = getattr(self._events, "expired", None)
        if expired is not None:
            expired(self.name, jobs)

    # -- cancellation (B9) -------------------------------------------------------

    def cancel(self, job_id: int) -> bool:
        """
        Abort the delivery of ``job_id`` if it runs here (its job was
        canceled): the connection to the worker is aborted and the job
        completes as CANCEL (deleted; not retried, not in the failure log).
        Returns whether a delivery was aborted.
        """
        d = self._inflight.get(job_id)
        if d is None or job_id in self._canceled:
            return False
        self._canceled.add(job_id)
        d.cancel()
        return True

    def _poll_cancels(self) -> None:
        """Ask the store which running deliveries were canceled (through any node)."""
        self._cancel_call = None
        if not self._inflight or not self._dispatching:
            return
        self._cancel_polling = True
        d = self._store.canceling_jobs(self.name, self.lease.grabber_id)

        def got(ids: List[int]) -> None:
            for job_id in ids:
                self.cancel(job_id)

        def failed(failure: Failure) -> None:
            self._log.warn(
                "Queue {queue}: cannot read cancel marks: {error}",
                queue=self.name, error=failure.getErrorMessage(),
            )

        def again(_: object) -> None:
            self._cancel_polling = False
            if self._inflight and self._dispatching and self._cancel_call is None:
                self._cancel_call = self._clock.callLater(CANCEL_POLL_INTERVAL, self._poll_cancels)

        d.addCallbacks(got, failed)
        d.addBoth(again)

    def _stop_cancel_poll(self) -> None:
        if self._cancel_call is not None and self._cancel_call.active():
            self._cancel_call.cancel()
        self._cancel_call = None
