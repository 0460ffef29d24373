"""
Completing grabbed jobs in the in-memory job store (L{MemoryCompletion}):
done, retried later, or failed into the failure log; kept finished jobs
and the events' hook jobs are written with the change.

A mixin of L{MemoryJobStore <fireworq.store.memory.jobs.MemoryJobStore>}.
"""

from __future__ import annotations

from typing import Sequence

import attr
from twisted.internet.defer import Deferred, fail, succeed

from fireworq.model import Completion, CompletionKind, FailedJob
from fireworq.store.common import failure_result_text
from fireworq.store.failure_log import decode_failure_options, decode_failure_result
from fireworq.store.memory.queue import CLAIMED
from fireworq.store.memory.state import MemoryStoreState


class MemoryCompletion(MemoryStoreState):
    """Writing the outcomes of deliveries."""

    def complete(
        self, queue_name: str, completions: Sequence[Completion], grabber_id: int
    ) -> Deferred:
        queue = self._queues.get(self.storage_key(queue_name))
        if queue is None:
            return succeed(None)
        now = self._clock()
        hooks = self.event_hooks
        if hooks is not None:
            # B12: the hook jobs of the completions that apply, made before
            # any change (a failing matcher changes nothing) and stored with them.
            extra = []
            try:
                for completion in completions:
                    job = queue.owned(completion.job.id, grabber_id)
                    if job is not None:
                        extra += hooks.finished(queue_name, completion, now, job.id in queue.canceling)
            except Exception:
                return fail()
            self._add_hook_jobs(hooks, extra, now)
        for completion in completions:
            job = queue.owned(completion.job.id, grabber_id)
            if job is None:
                continue
            if completion.keep_ms and completion.kind != CompletionKind.RETRY:
                # B8: the queue keeps finished jobs.
                self.keep_finished(queue_name, completion, job, now, job.id in queue.canceling)
            if completion.kind == CompletionKind.CANCEL or job.id in queue.canceling:
                # Canceled (B9): gone, neither retried nor in the failure log.
                queue.remove(job)
                continue
            if completion.kind == CompletionKind.RETRY:
                wait = completion.retry_wait_ms
                queue.replace(
                    job,
                    attr.evolve(
                        job,
                        status=CLAIMED,
                        grabber_id=None,
                        next_try=now + (job.retry_delay * 1000 if wait is None else wait),
                        retry_count=max(job.retry_count - 1, 0),
                        fail_count=job.fail_count + 1,
                    ),
                )
                continue
            queue.remove(job)
            if completion.kind == CompletionKind.FAIL:
                # Round-trip through the column text, as the SQL drivers do.
                text = failure_result_text(job, completion.result)
                result, max_retries, retry_delay, timeout = decode_failure_result(text)
                options = decode_failure_options(text)
                queue.add_failure(
                    FailedJob(
                        id=queue.next_failure_id,
                        job_id=job.id,
                        category=job.category,
                        url=job.url,
                        payload=job.payload,
                        result=result,
                        fail_count=job.fail_count + 1,
                        failed_at=now,
                        created_at=job.created_at,
                        max_retries=max_retries,
                        retry_delay=retry_delay,
                        timeout=timeout,
                        options=options,
                    )
                )
                queue.next_failure_id += 1
        return succeed(None)
