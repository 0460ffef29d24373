"""
The delivery side of a queue's dispatcher: each grabbed job is delivered
on a worker of its own, once its lease is proven (fenced: otherwise it is
returned unsent) and its deadline has not passed; the outcome goes to the
completion batcher, shaped by L{Outcomes}, and to the events.  A delivery
whose job was canceled is aborted (B9).
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import fail
from twisted.python.failure import Failure

from fireworq.dispatch.deadline import expired_at_grab
from fireworq.dispatch.state import DispatcherState
from fireworq.joboptions.values import NO_OPTIONS
from fireworq.model import Completion, CompletionKind, Job, Result, ResultStatus, completion_for


class Delivering(DispatcherState):
    """Part of L{QueueDispatcher}: starts deliveries and handles their outcomes."""

    def _start(self, job: Job, grabber_id: int) -> None:
        """Deliver ``job`` on a worker of its own (taken from L{free_workers})."""
        if not self.lease.proven(grabber_id):
            # Fenced: this node cannot prove its lease of ``grabber_id`` now
            # (paused past its deadline, lost, taken over), so another node
            # may deliver the job: not sent, returned (the next holder
            # recovers it if it has taken the queue).
            self._returns.unsent([job.id], grabber_id)
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
        if self._cancels.idle:
            self._cancels.watch()
        # One pair of callbacks per delivery: its outcome, or its crash.
        args = (job, grabber_id, started)
        d.addCallbacks(self._delivered, self._delivery_crashed, args, None, args)
        d.addErrback(self._finish_failed, job.id)

    def _delivery_crashed(self, failure: Failure, job: Job, grabber_id: int, started: float) -> None:
        """The deliverer failed (it should not): the job's outcome is an internal failure."""
        if job.id not in self._inflight:
            return None  # abandoned at shutdown; the job was released
        if job.id in self._canceled:
            result = Result(ResultStatus.INTERNAL_FAILURE.value, 0, "Request aborted: the job was canceled")
        else:
            self._log.failure("Delivery of job {id} crashed", failure, id=job.id)
            result = Result(
                ResultStatus.INTERNAL_FAILURE.value, 0, f"Internal error: {failure.getErrorMessage()}"
            )
        return self._delivered(result, job, grabber_id, started)

    def _finish_failed(self, failure: Failure, job_id: int) -> None:
        self._log.failure("Cannot finish delivery of job {id}", failure, id=job_id)

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
            written = self._outcomes.retry(completion)
        # Fenced by grabber_id in the store; a kept job (B8) with its times.
        self.completions.add(self._timed(written, started), grabber_id)
        if self.lease.proven(grabber_id):
            if written is not completion and written.kind is CompletionKind.FAIL:
                # Expired instead of retried: the delivery failed for good.
                completion = Completion(job, CompletionKind.FAIL, result)
                self._events.finished(self.name, completion, self._clock.seconds() - started)
                self._outcomes.tell_expired([job])
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

    def _expire(self, job: Job, grabber_id: int, tries: int) -> None:
        """Write ``job``, grabbed past its deadline, to the failure log undelivered (B7)."""
        outcomes = self._outcomes
        self.completions.add(outcomes.expire(job, tries), grabber_id)
        outcomes.tell_expired([job])

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

    def _delivering(self) -> bool:
        """Whether deliveries run while dispatching (the cancel watcher looks only then)."""
        return bool(self._inflight) and self._dispatching
