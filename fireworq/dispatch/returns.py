"""
Returning grabbed jobs of one queue to the store undelivered (released:
``claimed`` again, for the queue's holder to grab), in the three cases
where this node holds jobs it must not deliver:

  - jobs grabbed or pushed grabbed under a lease that is no longer ours
    (L{JobReturns.unsent}); the writes are waited for at stop
    (L{JobReturns.written});
  - orphans: jobs left grabbed under our grabber id by a grab whose answer
    was lost (L{JobReturns.reconcile}, once the store answers again);
  - deliveries still running at the end of the shutdown timeout
    (L{JobReturns.abandoned}).

Releases are fenced by the grabber id: a job another node has recovered
meanwhile is left alone.
"""

from __future__ import annotations

from typing import Callable, List, Set

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq.logging import log_failure
from fireworq.model import JobState, Page
from fireworq.store.interface import IJobStore


class JobReturns:
    """The returns of one queue's grabbed jobs that this node does not deliver."""

    _log = Logger()

    def __init__(self, store: IJobStore, queue_name: str) -> None:
        self._store = store
        self.queue_name = queue_name
        #: Whether jobs may be left grabbed under our grabber id with no
        #: delivery (a lost grab answer, a failed return): L{reconcile} them.
        self.needs_reconcile = False
        #: Returns still being written.
        self._writing: Set[Deferred] = set()

    def unsent(self, job_ids: List[int], grabber_id: int) -> None:
        """Return jobs that are no longer ours to deliver (a failure is left to L{reconcile})."""
        self._log.info(
            "Queue {queue}: returning {count} job(s) undelivered (no longer ours to deliver)",
            queue=self.queue_name,
            count=len(job_ids),
        )
        released = self._store.release(self.queue_name, job_ids, grabber_id)
        self._writing.add(released)

        def failed(failure: Failure) -> None:
            # Left grabbed under our epoch: released by the next reconcile
            # (or recovered by the next holder, or by this node's next start).
            self._log.warn(
                "Queue {queue}: cannot return {count} job(s) now ({error}); "
                "they are recovered by the queue's next holder",
                queue=self.queue_name,
                count=len(job_ids),
                error=failure.getErrorMessage(),
            )
            self.needs_reconcile = True

        released.addErrback(failed)
        released.addBoth(lambda _: self._writing.discard(released))

    def written(self) -> Deferred:
        """Fire once every return started by L{unsent} is written (or failed)."""
        return DeferredList(list(self._writing), consumeErrors=True)

    def abandoned(self, job_ids: List[int], grabber_id: int) -> "Deferred[None]":
        """Return the jobs of deliveries abandoned at stop; fire when written (a failure is logged)."""
        released = self._store.release(self.queue_name, job_ids, grabber_id)
        released.addErrback(
            log_failure(
                self._log, "Cannot return abandoned jobs of queue {queue}", queue=self.queue_name
            )
        )
        released.addCallback(lambda _: None)
        return released

    def reconcile(
        self,
        grabber_id: int,
        accounted: Callable[[], Set[int]],
        grabbing: Callable[[], bool],
        then: Callable[[], None],
    ) -> "Deferred[None]":
        """
        Release jobs grabbed under ``grabber_id`` that no delivery or pending
        completion accounts for (left by a grab whose answer was lost).

        @param accounted: the ids of jobs being delivered or completed,
            asked when the store has answered.
        @param grabbing: whether a grab is in flight then (nothing is
            released: its jobs would look orphaned).
        @param then: called once orphans were released (to poll again).
        """
        self.needs_reconcile = False
        d = self._store.list_jobs(self.queue_name, JobState.GRABBED, 10000, None, False)

        def release(page: Page) -> "Deferred[int]":
            known = accounted()
            orphans = [
                job.id
                for job in page.items
                if job.grabber_id == grabber_id and job.id not in known
            ]
            if not orphans or grabbing():
                return succeed(0)
            self._log.info(
                "Queue {queue}: returning {count} orphaned grabbed job(s)",
                queue=self.queue_name,
                count=len(orphans),
            )
            released = self._store.release(self.queue_name, orphans, grabber_id)
            released.addCallback(lambda _: then())
            return released

        d.addCallback(release)
        d.addErrback(lambda f: setattr(self, "needs_reconcile", True))
        d.addCallback(lambda _: None)
        return d
