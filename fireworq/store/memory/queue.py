"""
L{QueueJobs}: the jobs and the failure log of one queue of the in-memory
job store, kept in sorted lists of ``(next_try, id)`` keys.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Dict, List, Optional, Set, Tuple

import attr

from fireworq.model import FailedJob, Job, JobStatus
from fireworq.store.idempotency import MemoryKeys
from fireworq.store.priority import DueJobs

CLAIMED = JobStatus.CLAIMED.value
GRABBED = JobStatus.GRABBED.value


def remove_key(keys: List[Tuple[int, int]], key: Tuple[int, int]) -> None:
    """Remove ``key`` from the sorted ``keys``, if there."""
    index = bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]


@attr.s(slots=True, auto_attribs=True)
class QueueJobs:
    """The jobs and failure log of one queue."""

    next_id: int = 1
    jobs: Dict[int, Job] = attr.ib(factory=dict)
    claimed: List[Tuple[int, int]] = attr.ib(factory=list)
    grabbed: List[Tuple[int, int]] = attr.ib(factory=list)
    next_failure_id: int = 1
    failures: Dict[int, FailedJob] = attr.ib(factory=dict)
    failure_ids: List[int] = attr.ib(factory=list)
    failures_by_created: List[Tuple[int, int]] = attr.ib(factory=list)
    #: The claimed jobs again, by priority: the grab order (B7).
    due: DueJobs = attr.ib(factory=DueJobs)
    #: The idempotency keys of the queue's pushes (B7).
    keys: MemoryKeys = attr.ib(factory=MemoryKeys)
    #: Ids of grabbed jobs being canceled (B9).
    canceling: Set[int] = attr.ib(factory=set)

    def add(self, job: Job) -> None:
        self.jobs[job.id] = job
        key = (job.next_try, job.id)
        if job.status == CLAIMED:
            insort(self.claimed, key)
            self.due.add(job.options.effective_priority, key)
        else:
            insort(self.grabbed, key)

    def remove(self, job: Job) -> None:
        del self.jobs[job.id]
        if self.canceling:
            self.canceling.discard(job.id)
        key = (job.next_try, job.id)
        if job.status == CLAIMED:
            remove_key(self.claimed, key)
            self.due.remove(job.options.effective_priority, key)
        else:
            remove_key(self.grabbed, key)

    def replace(self, old: Job, new: Job) -> None:
        self.remove(old)
        self.add(new)

    def owned(self, job_id: int, grabber_id: int) -> Optional[Job]:
        job = self.jobs.get(job_id)
        if job is None or job.status != GRABBED or job.grabber_id != grabber_id:
            return None
        return job

    def add_failure(self, failed: FailedJob) -> None:
        self.failures[failed.id] = failed
        self.failure_ids.append(failed.id)
        insort(self.failures_by_created, (failed.created_at, failed.id))

    def remove_failure(self, failed: FailedJob) -> None:
        del self.failures[failed.id]
        index = bisect_left(self.failure_ids, failed.id)
        del self.failure_ids[index]
        remove_key(self.failures_by_created, (failed.created_at, failed.id))
