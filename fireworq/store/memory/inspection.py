"""
Inspection of the in-memory job store (L{MemoryInspection}): find, list
and delete jobs and failure-log entries, and count a queue's jobs by
state; a page is a slice of a sorted key list, a count two bisections.

A mixin of L{MemoryJobStore <fireworq.store.memory.jobs.MemoryJobStore>}.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Optional

from twisted.internet.defer import Deferred, fail, succeed

from fireworq.model import FailureOrder, JobCounts, JobState, Page, PageKey
from fireworq.store.memory.state import MemoryStoreState

_INFINITY = float("inf")


def _page(keys: list, lo: int, hi: int, start, limit: int, descending: bool):
    """
    The keys of one page of the sorted ``keys[lo:hi]`` beginning at ``start``
    (inclusive), plus the key of the next page, if any.
    """
    if descending:
        if start is not None:
            hi = min(hi, bisect_right(keys, start))
        first = max(lo, hi - limit - 1)
        chosen = keys[first:hi][::-1]
    else:
        if start is not None:
            lo = max(lo, bisect_left(keys, start))
        chosen = keys[lo : min(hi, lo + limit + 1)]
    if len(chosen) > limit:
        return chosen[:limit], chosen[limit]
    return chosen, None


class MemoryInspection(MemoryStoreState):
    """Look-ups, listings, deletions and counts."""

    def find_job(self, queue_name: str, job_id: int) -> Deferred:
        return succeed(self._existing(queue_name).jobs.get(job_id))

    def delete_job(self, queue_name: str, job_id: int) -> Deferred:
        queue = self._existing(queue_name)
        job = queue.jobs.get(job_id)
        if job is not None:
            queue.remove(job)
        return succeed(job)

    def list_jobs(
        self,
        queue_name: str,
        state: JobState,
        limit: int,
        start: Optional[PageKey],
        descending: bool,
    ) -> Deferred:
        if limit <= 0:
            return fail(ValueError("limit must be positive"))
        queue = self._existing(queue_name)
        start = None if start is None else (start[0], start[1])
        if state == JobState.GRABBED:
            keys = queue.grabbed
            lo, hi = 0, len(keys)
        else:
            keys = queue.claimed
            due = bisect_right(keys, (self._clock(), _INFINITY))
            lo, hi = (0, due) if state == JobState.WAITING else (due, len(keys))
        chosen, next_key = _page(keys, lo, hi, start, limit, descending)
        return succeed(Page([queue.jobs[key[1]] for key in chosen], next_key))

    def find_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return succeed(self._existing(queue_name).failures.get(failure_id))

    def delete_failed(self, queue_name: str, failure_id: int) -> Deferred:
        queue = self._existing(queue_name)
        failed = queue.failures.get(failure_id)
        if failed is not None:
            queue.remove_failure(failed)
        return succeed(failed)

    def list_failed(
        self, queue_name: str, order: FailureOrder, limit: int, start: Optional[PageKey]
    ) -> Deferred:
        if limit <= 0:
            return fail(ValueError("limit must be positive"))
        queue = self._existing(queue_name)
        start = None if start is None else (start[0], start[1])
        if order == FailureOrder.FAILED:
            ids = queue.failure_ids
            chosen_ids, next_id = _page(
                ids, 0, len(ids), None if start is None else start[1], limit, True
            )
            items = [queue.failures[i] for i in chosen_ids]
            next_key = None
            if next_id is not None:
                next_key = (queue.failures[next_id].created_at, next_id)
        else:
            keys = queue.failures_by_created
            chosen, next_key = _page(keys, 0, len(keys), start, limit, True)
            items = [queue.failures[key[1]] for key in chosen]
        return succeed(Page(items, next_key))

    def count_jobs(self, queue_name: str) -> Deferred:
        queue = self._existing(queue_name)
        due = bisect_right(queue.claimed, (self._clock(), _INFINITY))
        return succeed(
            JobCounts(
                waiting=due,
                deferred=len(queue.claimed) - due,
                grabbed=len(queue.grabbed),
            )
        )
