"""
Kept finished jobs (protocol B8) of the in-memory store: per queue a dict
by job id, the completed ones as a sorted list of ``(finished_at, id)``
(the ``/completed`` order) and every one as a sorted list of
``(expires_at, id)`` (the clean-up order).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Dict, List, Optional, Tuple

import attr
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from fireworq.history.interface import IJobHistory
from fireworq.history.record import FinishedState, KeptJob, kept_job
from fireworq.model import Completion, Job, Page, PageKey

_COMPLETED = FinishedState.COMPLETED.value


def _drop(keys: List[Tuple[int, int]], key: Tuple[int, int]) -> None:
    index = bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]


@attr.s(slots=True, auto_attribs=True)
class _Kept:
    jobs: Dict[int, KeptJob] = attr.ib(factory=dict)
    completed: List[Tuple[int, int]] = attr.ib(factory=list)
    expiry: List[Tuple[int, int]] = attr.ib(factory=list)

    def add(self, kept: KeptJob) -> None:
        old = self.jobs.get(kept.id)
        if old is not None:
            self.remove(old)
        self.jobs[kept.id] = kept
        if kept.state == _COMPLETED:
            insort(self.completed, (kept.finished_at, kept.id))
        insort(self.expiry, (kept.expires_at, kept.id))

    def remove(self, kept: KeptJob) -> None:
        del self.jobs[kept.id]
        if kept.state == _COMPLETED:
            _drop(self.completed, (kept.finished_at, kept.id))
        _drop(self.expiry, (kept.expires_at, kept.id))


@implementer(IJobHistory)
class MemoryHistory:
    """
    The kept-job methods of L{fireworq.store.memory.MemoryJobStore} (a
    mixin: it uses the store's C{_clock} and C{storage_key}).
    """

    def _kept_of(self, queue_name: str, create: bool = False) -> Optional[_Kept]:
        queues = self.__dict__.setdefault("_kept_queues", {})
        key = self.storage_key(queue_name)  # type: ignore[attr-defined]
        kept = queues.get(key)
        if kept is None and create:
            kept = queues[key] = _Kept()
        return kept

    def keep_finished(self, queue_name: str, completion: Completion, job: Job, now: int, canceled: bool) -> None:
        """Keep the job a completion finished (called by C{complete})."""
        self._kept_of(queue_name, True).add(kept_job(attr.evolve(completion, job=job), now, canceled))  # type: ignore[union-attr]

    def find_kept(self, queue_name: str, job_id: int) -> "Deferred[Optional[KeptJob]]":
        """The kept finished job ``job_id``, or None."""
        kept = self._kept_of(queue_name)
        return succeed(None if kept is None else kept.jobs.get(job_id))

    def list_kept(self, queue_name: str, limit: int, start: Optional[PageKey]) -> "Deferred[Page[KeptJob]]":
        """
        One page of the kept completed jobs, newest first by (finished_at,
        job id); keys are (finished_at, job id).
        """
        if limit <= 0:
            return fail(ValueError("limit must be positive"))
        kept = self._kept_of(queue_name)
        if kept is None:
            return succeed(Page([], None))
        keys = kept.completed
        hi = len(keys) if start is None else bisect_right(keys, (start[0], start[1]))
        chosen = keys[max(0, hi - limit - 1):hi][::-1]
        next_key = chosen[limit] if len(chosen) > limit else None
        return succeed(Page([kept.jobs[key[1]] for key in chosen[:limit]], next_key))

    def delete_expired_history(self, queue_name: str, limit: int) -> "Deferred[int]":
        """Delete up to ``limit`` kept jobs whose retention ended; fire with how many."""
        kept = self._kept_of(queue_name)
        if kept is None:
            return succeed(0)
        due = bisect_right(kept.expiry, (self._clock(), float("inf")))  # type: ignore[attr-defined]
        gone = kept.expiry[:min(due, limit)]
        for _, job_id in gone:
            kept.remove(kept.jobs[job_id])
        return succeed(len(gone))

    def count_kept(self, queue_name: str) -> "Deferred[Dict[str, int]]":
        """How many kept jobs the queue has, by state."""
        kept = self._kept_of(queue_name)
        counts = {state.value: 0 for state in FinishedState}
        if kept is not None:
            for job in kept.jobs.values():
                counts[job.state] = counts.get(job.state, 0) + 1
        return succeed(counts)
