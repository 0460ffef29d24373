"""
The in-memory driver: jobs, failure logs, queue definitions and routings in
plain Python data structures.  Nothing survives a restart.

Every method answers with an already-fired L{Deferred}.  A queue's jobs are
kept under its exact name (L{MemoryJobStore.storage_key}), so queues whose
names differ only in case or punctuation never mix; jobs stay when a queue's
definition is deleted.

Each queue keeps its claimed and its grabbed jobs as sorted lists of
``(next_try, id)`` keys: a grab takes a prefix of the claimed list, counts
are two bisections, and an inspection page is a slice; only L{recover}
looks at every grabbed job.

The helpers it shares with the other drivers (refusing unstorable text,
the failure-log column, normalized definitions, the clock) are in
L{fireworq.store.common}.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import attr
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from fireworq.model import (
    Completion,
    CompletionKind,
    FailedJob,
    FailureOrder,
    Job,
    JobCounts,
    JobState,
    JobStatus,
    Page,
    PageKey,
    PushEntry,
    QueueDefinition,
    Routing,
    decode_failure_options,
    decode_failure_result,
)
from fireworq.store.common import (
    Clock,
    check_storable,
    failure_result_text,
    normalize_definition,
    system_clock,
)
from fireworq.store.idempotency import DEFAULT_WINDOW_MS, MemoryKeys, keys_by_queue, plan_push, push_results
from fireworq.history.memory import MemoryHistory
from fireworq.store.interface import IJobStore, IRepository
from fireworq.store.priority import DueJobs

_INFINITY = float("inf")
_CLAIMED = JobStatus.CLAIMED.value
_GRABBED = JobStatus.GRABBED.value


def _remove(keys: List[Tuple[int, int]], key: Tuple[int, int]) -> None:
    index = bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        del keys[index]


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


@attr.s(slots=True, auto_attribs=True)
class _QueueJobs:
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
        if job.status == _CLAIMED:
            insort(self.claimed, key)
            self.due.add(job.options.effective_priority, key)
        else:
            insort(self.grabbed, key)

    def remove(self, job: Job) -> None:
        del self.jobs[job.id]
        if self.canceling:
            self.canceling.discard(job.id)
        key = (job.next_try, job.id)
        if job.status == _CLAIMED:
            _remove(self.claimed, key)
            self.due.remove(job.options.effective_priority, key)
        else:
            _remove(self.grabbed, key)

    def replace(self, old: Job, new: Job) -> None:
        self.remove(old)
        self.add(new)

    def owned(self, job_id: int, grabber_id: int) -> Optional[Job]:
        job = self.jobs.get(job_id)
        if job is None or job.status != _GRABBED or job.grabber_id != grabber_id:
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
        _remove(self.failures_by_created, (failed.created_at, failed.id))


@implementer(IJobStore)
class MemoryJobStore(MemoryHistory):
    """
    L{IJobStore} in memory.

    @param clock: returns the time in milliseconds since the epoch; it stamps
        ``created_at``, ``next_try`` and ``failed_at``.
    """

    name = "in-memory"

    def __init__(self, clock: Optional[Clock] = None, idempotency_window_ms: int = DEFAULT_WINDOW_MS) -> None:
        self._clock: Clock = clock or system_clock
        self._queues: Dict[str, _QueueJobs] = {}
        #: How long an idempotency key is remembered (ms).
        self.idempotency_window_ms = idempotency_window_ms
        #: The hook matcher (B12, L{fireworq.hooks.matcher.HookMatcher}) while
        #: a hook is defined, else None: events' hook jobs are stored with
        #: the change they report.
        self.event_hooks: Any = None

    def storage_key(self, queue_name: str) -> str:
        """The exact name: every queue has storage of its own."""
        return queue_name

    # Lifecycle

    def start(self) -> Deferred:
        return succeed(None)

    def stop(self) -> Deferred:
        return succeed(None)

    def ping(self) -> Deferred:
        return succeed(None)

    def prepare_queue(self, queue_name: str) -> Deferred:
        self._queue(queue_name)
        return succeed(None)

    def _queue(self, queue_name: str) -> _QueueJobs:
        key = self.storage_key(queue_name)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _QueueJobs()
        return queue

    def _existing(self, queue_name: str) -> _QueueJobs:
        # Reads never create storage; an unknown queue looks empty.
        return self._queues.get(self.storage_key(queue_name)) or _QueueJobs()

    # Pushing and dispatching

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
                _remove(queue.claimed, key)
            job = queue.jobs[key[1]]
            job = attr.evolve(
                job,
                status=_GRABBED,
                grabber_id=grabber_id,
                # common.attempts_at_grab, inlined: this is the grab loop.
                attempts=max(job.attempts, job.fail_count) + 1,
            )
            queue.jobs[job.id] = job
            insort(queue.grabbed, key)
            grabbed.append(job)
        return succeed(grabbed)

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
                        status=_CLAIMED,
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
                        queue.replace(job, attr.evolve(job, status=_CLAIMED, grabber_id=None))
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
                        queue.replace(job, attr.evolve(job, status=_CLAIMED, grabber_id=None))
                    recovered += 1
        return succeed(recovered)

    # Queue control (B9)

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
            if job.status == _GRABBED:
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

    # Inspection

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


@implementer(IRepository)
class MemoryRepository:
    """L{IRepository} in memory; the revision is a change counter."""

    def __init__(self) -> None:
        self._queues: Dict[str, QueueDefinition] = {}
        self._routings: Dict[str, Routing] = {}
        self._revision = 0

    def _changed(self) -> None:
        self._revision += 1

    def list_queues(self) -> Deferred:
        return succeed([self._queues[name] for name in sorted(self._queues)])

    def find_queue(self, name: str) -> Deferred:
        return succeed(self._queues.get(name))

    def put_queue(self, definition: QueueDefinition) -> Deferred:
        definition = normalize_definition(definition)
        if self._queues.get(definition.name) == definition:
            return succeed(False)
        self._queues[definition.name] = definition
        self._changed()
        return succeed(True)

    def delete_queue(self, name: str) -> Deferred:
        definition = self._queues.pop(name, None)
        if definition is not None:
            self._changed()
        return succeed(definition)

    def list_routings(self) -> Deferred:
        return succeed([self._routings[c] for c in sorted(self._routings)])

    def find_routing(self, category: str) -> Deferred:
        return succeed(self._routings.get(category))

    def put_routing(self, routing: Routing) -> Deferred:
        if self._routings.get(routing.job_category) == routing:
            return succeed(False)
        self._routings[routing.job_category] = routing
        self._changed()
        return succeed(True)

    def delete_routing(self, category: str) -> Deferred:
        routing = self._routings.pop(category, None)
        if routing is not None:
            self._changed()
        return succeed(routing)

    def revision(self) -> Deferred:
        return succeed(str(self._revision))
