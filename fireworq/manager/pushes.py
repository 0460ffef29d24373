"""
The path of a push through the queue manager: category -> routing (cached,
else the repository, else the default queue) -> queue -> L{PushBatcher} ->
committed jobs.  When this node dispatches the queue and has free workers,
due jobs are stored already grabbed and handed to its dispatcher once
committed (no poll, no grab round trip); otherwise the dispatcher -- this
process's, or with ``--workers`` the sibling's that holds the lease -- is
kicked.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.manager.state import ManagerState
from fireworq.model import FailedJob, Job, NewJob, PushEntry, QueueDefinition, Routing
from fireworq.queue_errors import UndefinedQueue, UnknownCategory

#: Finishes a routed push (L{QueueManager.push}): (the queue's definition,
#: the jobs) -> (the jobs to store, the answer text of each keyed job or None).
FinishPush = Callable[
    [Optional[QueueDefinition], Sequence[NewJob]], Tuple[Sequence[NewJob], Optional[Sequence[Optional[str]]]]
]


class Pushes(ManagerState):
    """Part of L{QueueManager}: routing and storing pushes, waking the dispatcher of due jobs."""

    def push(
        self, category: str, jobs: Sequence[NewJob], finish: Optional[FinishPush] = None
    ) -> "Deferred[Tuple[str, List[Job]]]":
        """
        Route ``jobs`` (all of ``category``) to their queue and store them
        atomically.  Fires with the queue name and the stored jobs once
        committed -- for a job whose idempotency key was used already
        (B7), the store's L{fireworq.store.idempotency.Replay} instead.

        @param finish: called once the queue is known with its definition
            and ``jobs``; returns the jobs to store (the queue's job
            defaults merged in) and the answer text of each keyed job.
        """
        if not self.ready:
            return self._after_ready(self.push, category, jobs, finish)
        queue_name = self._routings.get(category)
        if queue_name is None and self.default_queue is not None:
            queue_name = self.default_queue.name
        if queue_name is not None and queue_name in self._definitions:
            return self._push_to(queue_name, jobs, finish)
        d = self._resolve(category, queue_name)
        d.addCallback(self._push_to, jobs, finish)
        return d

    def push_to_queue(self, queue_name: str, jobs: Sequence[NewJob]) -> "Deferred[List[Job]]":
        """Store ``jobs`` in the defined queue ``queue_name``, bypassing routing."""
        d = self.ensure_queue(queue_name)
        d.addCallback(lambda _: self._push_to(queue_name, jobs))
        d.addCallback(lambda result: result[1])
        return d

    def push_guarded(
        self, category: str, job: NewJob, guard: Any, finish: Optional[FinishPush] = None
    ) -> "Deferred[Tuple[str, Optional[Job]]]":
        """
        Route one job like L{push} and store it only if ``guard`` claims its
        reason in the same transaction (a schedule's time, B10; see
        L{IJobStore.push_guarded}).  Not batched with other pushes, since
        the claim may refuse.  Fires with the queue name and the job, or
        None when the guard refused.
        """
        if not self.ready:
            return self._after_ready(self.push_guarded, category, job, guard, finish)
        queue_name = self._routings.get(category)
        if queue_name is None and self.default_queue is not None:
            queue_name = self.default_queue.name
        if queue_name is not None and queue_name in self._definitions:
            return self._push_guarded_to(queue_name, job, guard, finish)
        d = self._resolve(category, queue_name)
        d.addCallback(self._push_guarded_to, job, guard, finish)
        return d

    def _push_guarded_to(
        self, queue_name: str, job: NewJob, guard: Any, finish: Optional[FinishPush]
    ) -> Deferred:
        if finish is not None:
            [job], _ = finish(self._definitions.get(queue_name), [job])
        d = self.store.push_guarded(PushEntry(queue_name, job), guard)

        def pushed(stored: Optional[Job]) -> Tuple[str, Optional[Job]]:
            if stored is not None:
                self._events.pushed(queue_name, [stored])
                if job.run_after == 0:
                    self._due(queue_name, self._dispatchers.get(queue_name))
            return queue_name, stored

        d.addCallback(pushed)
        return d

    def _resolve(self, category: str, queue_name: Optional[str]) -> "Deferred[str]":
        if queue_name is not None:
            d = self.ensure_queue(queue_name)
        else:
            # A routing may have been added through another node.
            d = self.repository.find_routing(category)

            def routed(routing: Optional[Routing]) -> Deferred:
                if routing is None:
                    raise UnknownCategory(category)
                self._routings[category] = routing.queue_name
                return self.ensure_queue(routing.queue_name)

            d.addCallback(routed)

        def undefined(failure: Failure) -> None:
            failure.trap(UndefinedQueue)
            raise UndefinedQueue(failure.value.queue_name, category)

        d.addErrback(undefined)
        d.addCallback(lambda definition: definition.name)
        return d

    def _push_to(self, queue_name: str, jobs: Sequence[NewJob], finish: Optional[FinishPush] = None) -> Deferred:
        """
        Store ``jobs``.  When this node dispatches the queue and has idle
        workers, due jobs are stored already grabbed and handed to the
        dispatcher once committed (B4: no poll, no grab round trip).
        """
        answers: Optional[Sequence[Optional[str]]] = None
        if finish is not None:
            jobs, answers = finish(self._definitions.get(queue_name), jobs)
        dispatcher = self._dispatchers.get(queue_name)
        due = sum(1 for job in jobs if job.run_after == 0)
        grabber_id, reserved = dispatcher.reserve(due) if dispatcher is not None else (None, 0)
        entries = []
        direct = reserved
        for index, job in enumerate(jobs):
            answer = None if answers is None else answers[index]
            if direct and job.run_after == 0:
                entries.append(PushEntry(queue_name, job, grabber_id, answer))
                direct -= 1
            else:
                entries.append(PushEntry(queue_name, job, answer=answer))
        d = self._pusher.push(entries)
        if reserved:
            d.addErrback(self._push_failed, dispatcher, reserved)
        d.addCallback(self._pushed, queue_name, dispatcher, grabber_id, reserved, due)
        return d

    @staticmethod
    def _push_failed(failure: Failure, dispatcher: QueueDispatcher, reserved: int) -> Failure:
        dispatcher.unreserve(reserved)
        return failure

    def _pushed(
        self,
        stored: List[Job],
        queue_name: str,
        dispatcher: Optional[QueueDispatcher],
        grabber_id: Optional[int],
        reserved: int,
        due: int,
    ) -> Tuple[str, List[Job]]:
        jobs = stored
        if any(type(job) is not Job for job in stored):
            # Replays of idempotency keys (B7) stored nothing.
            jobs = [job for job in stored if type(job) is Job]
        self._events.pushed(queue_name, jobs)
        if dispatcher is not None and reserved:
            dispatcher.pushed(jobs, grabber_id, reserved)
        if due > reserved:
            self._due(queue_name, dispatcher)
        return queue_name, stored

    def _due(self, queue_name: str, dispatcher: Optional[QueueDispatcher]) -> None:
        """
        Due jobs of ``queue_name`` were stored waiting: its dispatcher polls
        now -- this process's when it holds the lease, else (``--workers``)
        the sibling process's that does, woken through L{siblings}.
        """
        if dispatcher is not None:
            dispatcher.kick()
        if self.siblings is not None and (dispatcher is None or not dispatcher.lease.held()):
            self.siblings.wake(queue_name)

    def wake(self, queue_name: str) -> None:
        """A sibling process stored due jobs of ``queue_name``: poll it if this process dispatches it."""
        dispatcher = self._dispatchers.get(queue_name)
        if dispatcher is not None:
            dispatcher.kick()

    def retry_failed(self, queue_name: str, failure_id: int) -> "Deferred[Optional[Job]]":
        """
        Push the job of a failure-log entry again and remove the entry, in
        one transaction (L{IJobStore.retry_failed}); fire with the new job,
        or None when the entry does not exist (any more).
        """
        d = self.ensure_queue(queue_name)
        d.addCallback(lambda _: self.store.retry_failed(queue_name, failure_id))

        def retried(result: Optional[Tuple[FailedJob, Job]]) -> Optional[Job]:
            if result is None:
                return None
            job = result[1]
            self._pushed([job], queue_name, self._dispatchers.get(queue_name), None, 0, 1)
            return job

        d.addCallback(retried)
        return d
