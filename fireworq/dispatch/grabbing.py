"""
The grab side of a queue's dispatcher: polls (L{Grabbing.poll}, kicked or
periodic) grab at most the free workers' worth of due jobs (and the
throttle's tokens) under the lease's grabber id; local pushes reserve free
workers so that their due jobs are stored already grabbed and delivered
without a poll (B4, L{Grabbing.reserve}).  A failed grab pauses polling
for a L{Backoff} delay and marks the queue for a reconcile.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from fireworq.dispatch.state import DispatcherState
from fireworq.model import Job, JobStatus


class Grabbing(DispatcherState):
    """Part of L{QueueDispatcher}: polls, grabs and reservations of local pushes."""

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
            self._returns.unsent([job.id for job in jobs], grabber_id)
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
        self._returns.needs_reconcile = True

    def _reconcile(self) -> "Deferred[None]":
        """Return grabbed jobs that a lost grab answer left (L{JobReturns.reconcile}), then poll."""
        return self._returns.reconcile(
            self.lease.grabber_id,
            lambda: set(self._inflight) | self.completions.job_ids(),
            lambda: self._grabbing,
            self.kick,
        )

    def _grab_done(self, _: object) -> None:
        self._grabbing = False
        waiters, self._grab_waiters = self._grab_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        if self._grab_succeeded and self._returns.needs_reconcile:
            self._reconcile()
        self._grab_succeeded = False
        if self._again:
            self._again = False
            if self.free_workers > 0:
                self.kick()

    # -- immediate dispatch of local pushes (B4) ----------------------------

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
                self._returns.unsent([job.id for job in mine], grabber_id)
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
