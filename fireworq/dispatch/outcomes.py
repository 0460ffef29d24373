"""
What one queue's delivery outcomes are written as, beyond the plain
L{completion_for}: the retry wait of a job with options or of an answer
with C{Retry-After}, the expiry of a job past its deadline (job options,
B7), and the finished job kept with its attempt's times (history, B8) or
the attempt's times a hook event shows (B12).  The Part A path adds
nothing: L{Outcomes.timed} returns the completion as it is.
"""

from __future__ import annotations

from typing import Any, List, Optional

import attr
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.dispatch.deadline import expired_result, expires_before_retry
from fireworq.dispatch.retry import RetryPolicy
from fireworq.events import IQueueEvents
from fireworq.history.record import finished_state
from fireworq.model import AttemptTimes, Completion, CompletionKind, Job, Result


class Outcomes:
    """
    Shapes the completions of one queue's deliveries and tells the
    optional observers (C{kept}, C{expired}, C{history_deleted} of
    ``events``, when it has them).

    @param store: the job store; its C{event_hooks} says whether hooks
        want the attempt's times.
    """

    _log = Logger()

    def __init__(self, queue_name: str, store: Any, events: IQueueEvents, clock: IReactorTime) -> None:
        self.queue_name = queue_name
        self._store = store
        self._events = events
        self._clock = clock
        #: How long this queue keeps a finished job (ms; 0: not kept, B8).
        self.keep_ms = 0

    def retry(self, completion: Completion) -> Completion:
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

    def expire(self, job: Job, tries: int) -> Completion:
        """
        The completion of ``job``, grabbed past its deadline: to the failure
        log undelivered (the caller tells L{tell_expired} once it is added).
        """
        self._log.info(
            "Queue {queue}: job {id} expired (deadline passed) before its attempt",
            queue=self.queue_name, id=job.id,
        )
        result = self._expired_result(job, None, tries)
        expired = Completion(job, CompletionKind.FAIL, result)
        if self.keep_ms:
            expired = self.kept(expired, self._clock.seconds(), tries)
        return expired

    def timed(self, completion: Completion, started: float) -> Completion:
        """
        ``completion`` with its attempt's times where something shows them: a
        kept job (B8), or the ``result`` of a hook event (B12) while the store
        has hooks -- otherwise as it is (nothing added on the hot path).
        """
        if self.keep_ms and completion.kind is not CompletionKind.RETRY:
            return self.kept(completion, started)
        if getattr(self._store, "event_hooks", None) is None:
            return completion
        times = AttemptTimes(int(started * 1000), int(self._clock.seconds() * 1000))
        return attr.evolve(completion, attempt=times)

    def kept(self, completion: Completion, started: float, attempts: Optional[int] = None) -> Completion:
        """``completion`` of a queue that keeps finished jobs (B8): kept, with its attempt's times."""
        if completion.kind is CompletionKind.RETRY:
            return completion
        times = AttemptTimes(int(started * 1000), int(self._clock.seconds() * 1000), attempts)
        kept = getattr(self._events, "kept", None)
        if kept is not None:
            kept(self.queue_name, finished_state(completion))
        return attr.evolve(completion, keep_ms=self.keep_ms, attempt=times)

    def tell_expired(self, jobs: List[Job]) -> None:
        """Tell the observers that ``jobs`` expired."""
        expired = getattr(self._events, "expired", None)
        if expired is not None:
            expired(self.queue_name, jobs)

    def history_deleted(self, queue_name: str, count: int) -> None:
        """Tell the observers that the history cleaner deleted ``count`` kept jobs."""
        deleted = getattr(self._events, "history_deleted", None)
        if deleted is not None:
            deleted(queue_name, count)
