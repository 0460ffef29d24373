"""
Dispatching from the in-memory job store (L{MemoryGrab}): grab due jobs,
give grabbed jobs back (released by their holder, recovered from another
grabber).

A mixin of L{MemoryJobStore <fireworq.store.memory.jobs.MemoryJobStore>}.
"""

from __future__ import annotations

from bisect import insort
from typing import Sequence

import attr
from twisted.internet.defer import Deferred, succeed

from fireworq.store.memory.queue import CLAIMED, GRABBED, remove_key
from fireworq.store.memory.state import MemoryStoreState


class MemoryGrab(MemoryStoreState):
    """Grabbing due jobs, and returning grabbed ones to the queue."""

    def grab(self, queue_name: str, limit: int, grabber_id: int) -> Deferred:
        queue = self._queues.get(self.storage_key(queue_name))
        if queue is None or limit <= 0:
            return succeed([])
        single = len(queue.due.priorities()) <= 1
        taken = queue.due.take_due(self._clock(), limit)
        if single:
            # One priority (every queue without priorities): the jobs taken
            # are the claimed list's due prefix, as before priorities.
            del queue.claimed[: len(taken)]
        grabbed = []
        for _, key in taken:
            if not single:
                remove_key(queue.claimed, key)
            job = queue.jobs[key[1]]
            job = attr.evolve(
                job,
                status=GRABBED,
                grabber_id=grabber_id,
                # common.attempts_at_grab, inlined: this is the grab loop.
                attempts=max(job.attempts, job.fail_count) + 1,
            )
            queue.jobs[job.id] = job
            insort(queue.grabbed, key)
            grabbed.append(job)
        return succeed(grabbed)

    def release(self, queue_name: str, job_ids: Sequence[int], grabber_id: int) -> Deferred:
        queue = self._queues.get(self.storage_key(queue_name))
        released = 0
        if queue is not None:
            for job_id in set(job_ids):
                job = queue.owned(job_id, grabber_id)
                if job is not None:
                    if job.id in queue.canceling:
                        queue.remove(job)  # canceled before it was sent (B9)
                    else:
                        queue.replace(job, attr.evolve(job, status=CLAIMED, grabber_id=None))
                    released += 1
        return succeed(released)

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        queue = self._queues.get(self.storage_key(queue_name))
        recovered = 0
        if queue is not None:
            for key in list(queue.grabbed):
                job = queue.jobs[key[1]]
                if job.grabber_id != grabber_id:
                    if job.id in queue.canceling:
                        queue.remove(job)  # canceled while its holder died (B9)
                    else:
                        queue.replace(job, attr.evolve(job, status=CLAIMED, grabber_id=None))
                    recovered += 1
        return succeed(recovered)
