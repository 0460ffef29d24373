"""
Pushing to the in-memory job store (L{MemoryPush}): new jobs, scheduled
pushes, idempotency keys and the events' hook jobs, all in the reactor
thread, so a push never interleaves with another.

A mixin of L{MemoryJobStore <fireworq.store.memory.jobs.MemoryJobStore>}.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from twisted.internet.defer import Deferred, fail, succeed

from fireworq.model import Job, PushEntry
from fireworq.store.common import check_storable
from fireworq.store.idempotency import keys_by_queue, plan_push, push_results
from fireworq.store.memory.state import MemoryStoreState


class MemoryPush(MemoryStoreState):
    """Storing new jobs (pushes, scheduled pushes, hook jobs)."""

    def push(self, entries: Sequence[PushEntry]) -> Deferred:
        try:
            for entry in entries:
                check_storable(entry)
        except ValueError:
            return fail()
        now = self._clock()
        keyed = keys_by_queue(entries)
        if keyed:
            stored = self._push_keyed(entries, keyed, now)
        else:
            stored = []
            for entry in entries:
                queue = self._queue(entry.queue_name)
                job = entry.job.stored(queue.next_id, now, entry.grabber_id)
                queue.next_id += 1
                queue.add(job)
                stored.append(job)
        hooks = self.event_hooks
        if hooks is not None:
            # B12: the pushes' hook jobs, stored with them (same reactor
            # turn); a matcher that fails undoes the push.
            extra = []
            try:
                for entry, job in zip(entries, stored):
                    if isinstance(job, Job):
                        extra += hooks.pushed(entry.queue_name, job, now)
            except Exception:
                failure = fail()
                for entry, job in zip(entries, stored):
                    if isinstance(job, Job):
                        self._queue(entry.queue_name).remove(job)
                return failure
            self._add_hook_jobs(hooks, extra, now)
        return succeed(stored)

    def _add_hook_jobs(self, hooks: Any, jobs: Sequence[Any], now: int) -> None:
        if not jobs:
            return
        queue = self._queue(hooks.queue_name)
        for new_job in jobs:
            queue.add(new_job.stored(queue.next_id, now, None))
            queue.next_id += 1

    def push_guarded(self, entry: PushEntry, guard: Any) -> Deferred:
        """
        Store one job only if ``guard.claim`` agrees (a schedule's time, B10),
        then ``guard.record`` it; fire with the job or None.  In the reactor
        thread, so the claim and the push cannot interleave with another.
        """
        try:
            check_storable(entry)
        except ValueError:
            return fail()
        if not guard.claim(None):
            return succeed(None)
        queue = self._queue(entry.queue_name)
        job = entry.job.stored(queue.next_id, self._clock(), entry.grabber_id)
        queue.next_id += 1
        queue.add(job)
        guard.record(None, entry.queue_name, job.id)
        hooks = self.event_hooks
        if hooks is not None:
            self._add_hook_jobs(hooks, hooks.pushed(entry.queue_name, job, job.created_at), job.created_at)
        return succeed(job)

    def _push_keyed(self, entries: Sequence[PushEntry], keyed: Dict[str, List[str]], now: int) -> list:
        # In the reactor thread: claims and records cannot interleave with
        # another push.
        replays = {}
        for queue_name, keys in keyed.items():
            claimed = self._queue(queue_name).keys.claim(keys, now, self.idempotency_window_ms)
            replays.update(((queue_name, key), replay) for key, replay in claimed.items())
        plan = plan_push(entries, replays)
        stored = {}
        for index, (entry, step) in enumerate(zip(entries, plan)):
            if step is None:
                queue = self._queue(entry.queue_name)
                job = entry.job.stored(queue.next_id, now, entry.grabber_id)
                queue.next_id += 1
                queue.add(job)
                stored[index] = job
        results, records = push_results(entries, plan, stored)
        for queue_name, rows in records.items():
            self._queue(queue_name).keys.record(rows)
        return results
