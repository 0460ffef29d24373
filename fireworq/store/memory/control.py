"""
Queue-level operations of the in-memory job store (L{MemoryQueueControl}):
purge a queue, cancel a job and read the cancel marks, retry a
failure-log entry, forget expired idempotency keys.

A mixin of L{MemoryJobStore <fireworq.store.memory.jobs.MemoryJobStore>}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed

from fireworq.model import PushEntry
from fireworq.store.common import check_storable
from fireworq.store.memory.queue import GRABBED
from fireworq.store.memory.state import MemoryStoreState
from fireworq.store.priority import DueJobs


class MemoryQueueControl(MemoryStoreState):
    """Purges, cancels, retries of failed jobs and the idempotency keys' cleanup."""

    def purge(self, queue_name: str) -> Deferred:
        """Delete the queue's waiting and deferred jobs; fire with how many."""
        queue = self._queues.get(self.storage_key(queue_name))
        if queue is None:
            return succeed(0)
        claimed = [queue.jobs[key[1]] for key in queue.claimed]
        for job in claimed:
            del queue.jobs[job.id]
        queue.claimed = []
        queue.due = DueJobs()
        return succeed(len(claimed))

    def cancel_job(self, queue_name: str, job_id: int) -> Deferred:
        """
        Delete a claimed job, or mark a grabbed one canceled (its holder
        aborts the delivery); fire with the job as it was, or None.
        """
        queue = self._existing(queue_name)
        job = queue.jobs.get(job_id)
        if job is not None:
            if job.status == GRABBED:
                queue.canceling.add(job.id)
            else:
                queue.remove(job)
                hooks = self.event_hooks
                if hooks is not None:
                    now = self._clock()
                    self._add_hook_jobs(hooks, hooks.canceled(queue_name, job, now), now)
        return succeed(job)

    def canceling_jobs(self, queue_name: str, grabber_id: int) -> Deferred:
        """Ids of the jobs grabbed by ``grabber_id`` that are marked canceled."""
        queue = self._queues.get(self.storage_key(queue_name))
        if queue is None or not queue.canceling:
            return succeed([])
        return succeed(
            sorted(
                job_id
                for job_id in queue.canceling
                if (job := queue.jobs.get(job_id)) is not None and job.grabber_id == grabber_id
            )
        )

    def retry_failed(self, queue_name: str, failure_id: int) -> Deferred:
        queue = self._existing(queue_name)
        failed = queue.failures.get(failure_id)
        if failed is None:
            return succeed(None)
        entry = PushEntry(queue_name, failed.as_new_job())
        try:
            check_storable(entry)
        except ValueError:
            return fail()
        queue.remove_failure(failed)
        d = self.push([entry])
        d.addCallback(lambda stored: (failed, stored[0]))
        return d

    def delete_expired_keys(self, queue_name: str) -> Deferred:
        """Forget the queue's idempotency keys whose window ended; fire with how many."""
        queue = self._queues.get(self.storage_key(queue_name))
        deleted = 0
        if queue is not None:
            now = self._clock()
            while True:
                count = queue.keys.delete_expired(now)
                deleted += count
                if count < 1000:
                    break
        return succeed(deleted)
