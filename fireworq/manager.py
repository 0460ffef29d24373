"""
The queues of this node: their definitions and routings (cached from the
repository), one L{QueueService} per defined queue (children of a
L{MultiService}: each runs the queue's lease, dispatcher, completion batcher
and upkeep), and the path of a push from category to committed job.

A L{Periodic} child polls the repository's revision every
``config_refresh_interval``; when it moved (a change made here or on another
node) definitions and routings are reloaded and dispatchers are added,
reconfigured or removed to match.  The default queue is re-created by that
reload when it is missing.

Readiness (bug 4 of issue 11): the API listens before the store has opened
and the definitions are loaded.  Until the first load, definition changes
and pushes wait for it (L{QueueManager.when_ready}) for up to
L{READY_TIMEOUT} seconds and only then fail with L{NotReady} (a 503), so a
client that starts the server and configures it at once never sees an
error, while ``/health`` still answers 503 ``starting`` at once.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attr
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import IQueueEvents
from fireworq.logging import log_failure
from fireworq.model import FailedJob, Job, NewJob, PushEntry, QueueDefinition, Routing
from fireworq.pushing import PushBatcher
from fireworq.queues import QueueService
from fireworq.queue_errors import QueueConflict, UndefinedQueue, UnknownCategory
from fireworq.readiness import NotReady, ReadyWaiters
from fireworq.stats import QueueStats
from fireworq.store.interface import IJobStore, IRepository, NodeInfo
from fireworq.timers import Periodic

#: Finishes a routed push (L{QueueManager.push}): (the queue's definition,
#: the jobs) -> (the jobs to store, the answer text of each keyed job or None).
FinishPush = Callable[
    [Optional[QueueDefinition], Sequence[NewJob]], Tuple[Sequence[NewJob], Optional[Sequence[Optional[str]]]]
]

#: Seconds a definition change or push made before the first load of the
#: definitions waits for it before it fails with L{NotReady}.
READY_TIMEOUT = 5.0

STARTING = "the server is starting: queue definitions are not loaded yet"

__all__ = [
    "NotReady",
    "QueueConflict",
    "QueueManager",
    "READY_TIMEOUT",
    "UndefinedQueue",
    "UnknownCategory",
]

#: Makes the dispatcher of a queue definition.
DispatcherFactory = Callable[[QueueDefinition], QueueDispatcher]


class QueueManager(MultiService):
    """Definitions, routings, dispatchers and pushes of this node."""

    _log = Logger()

    def __init__(
        self,
        store: IJobStore,
        repository: IRepository,
        pusher: PushBatcher,
        make_dispatcher: DispatcherFactory,
        events: IQueueEvents,
        stats: QueueStats,
        clock: IReactorTime,
        default_queue: Optional[QueueDefinition] = None,
        refresh_interval: float = 1.0,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        super().__init__()
        self.store = store
        self.repository = repository
        self.stats = stats
        self._pusher = pusher
        self._make_dispatcher = make_dispatcher
        self._events = events
        self._clock = clock
        self.default_queue = default_queue
        self._refresh_interval = refresh_interval
        self._definitions: Dict[str, QueueDefinition] = {}
        self._routings: Dict[str, str] = {}
        #: The dispatcher of each queue (the hot path: push, kick, reserve).
        self._dispatchers: Dict[str, QueueDispatcher] = {}
        #: The service of each queue (the dispatcher's parent).
        self._queues: Dict[str, QueueService] = {}
        self._stopping: Dict[str, List[Deferred]] = {}
        self._revision: Optional[str] = None
        self._lock = DeferredLock()
        self._watcher = Periodic(
            refresh_interval, lambda: self.refresh(), clock=clock, name="the configuration watcher"
        )
        self._refreshing = False
        self.ready = False
        self._ready_waiters = ReadyWaiters(clock, ready_timeout, STARTING)
        #: The other server processes of this host (L{fireworq.server.workers.Siblings}), or None.
        self.siblings: Optional[Any] = None

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._watcher.startService()

    def stopService(self) -> Deferred:
        """Stop watching (after a reload in progress), then the dispatchers."""
        self._ready_waiters.fail("the server is stopping")
        watched = self._watcher.stopService() if self._watcher.running else succeed(None)
        d = super().stopService()
        return watched.addCallback(lambda _: d)

    # -- readiness -----------------------------------------------------------

    def when_ready(self) -> "Deferred[None]":
        """
        Fire once the definitions are loaded: at once when they are; while
        the server boots (never loaded yet), when the first load finishes
        or, after L{READY_TIMEOUT} seconds, with L{NotReady}.
        """
        if self.ready:
            return succeed(None)
        if self._revision is not None:  # loaded once: not a boot; do not wait
            return fail(NotReady(STARTING))
        return self._ready_waiters.wait()

    def _became_ready(self) -> None:
        self.ready = True
        self._ready_waiters.ready()

    def _after_ready(self, f: Callable[..., Deferred], *args: Any) -> Deferred:
        """Call ``f(*args)`` now when ready, else once ready (bounded)."""
        if self.ready:
            return f(*args)
        d = self.when_ready()
        d.addCallback(lambda _: f(*args))
        return d

    def refresh(self) -> "Deferred[None]":
        """Reload definitions and routings if the repository's revision moved."""
        if self._refreshing:
            return succeed(None)
        self._refreshing = True
        d = self.repository.revision()

        def compare(revision: str) -> Optional[Deferred]:
            if revision == self._revision and self.ready and self._default_present():
                return None
            return self._lock.run(self._reload, revision)

        def done(result: object) -> None:
            self._refreshing = False
            if isinstance(result, Failure):
                self._log.warn(
                    "Cannot load queue definitions: {error}", error=result.getErrorMessage()
                )

        d.addCallback(compare)
        d.addBoth(done)
        return d

    def _default_present(self) -> bool:
        return self.default_queue is None or self.default_queue.name in self._definitions

    def _reload(self, revision: str) -> "Deferred[None]":
        d = self.repository.list_queues()

        def got_queues(definitions: List[QueueDefinition]) -> Deferred:
            if self.default_queue is not None and self.default_queue.name not in {
                q.name for q in definitions
            }:
                definitions = definitions + [self.default_queue]
                created = self.repository.put_queue(self.default_queue)
                created.addCallback(lambda _: definitions)
                return created
            return succeed(definitions)

        def apply(definitions: List[QueueDefinition]) -> Deferred:
            wanted = {q.name: q for q in definitions}
            steps = succeed(None)
            for name in list(self._dispatchers):
                if name not in wanted:
                    self._remove(name)
            for definition in definitions:
                steps.addCallback(lambda _, q=definition: self._apply(q))
            steps.addCallback(lambda _: self.repository.list_routings())
            steps.addCallback(self._set_routings)
            return steps

        def loaded(_: object) -> None:
            if self._revision is not None and self._revision != revision:
                self._log.info("Reloaded queue definitions and routings")
            self._revision = revision
            self._became_ready()

        d.addCallback(got_queues)
        d.addCallback(apply)
        d.addCallback(loaded)
        return d

    def _set_routings(self, routings: List[Routing]) -> None:
        self._routings = {r.job_category: r.queue_name for r in routings}

    # -- dispatchers -------------------------------------------------------

    def _apply(self, definition: QueueDefinition) -> "Deferred[None]":
        """Make the queue's dispatcher match ``definition`` (under the lock)."""
        name = definition.name
        current = self._dispatchers.get(name)
        if current is not None:
            if current.definition != definition:
                self._log.info("Reconfiguring queue {queue}", queue=name)
                current.reconfigure(definition)
            self._definitions[name] = definition
            return succeed(None)
        d = self._stopped(name)
        d.addCallback(lambda _: self.store.prepare_queue(name))

        def start(_: object) -> None:
            dispatcher = self._make_dispatcher(definition)
            queue = QueueService(dispatcher)
            self._dispatchers[name] = dispatcher
            self._queues[name] = queue
            self._definitions[name] = definition
            queue.setServiceParent(self)
            self._log.info("Started the dispatcher of queue {queue}", queue=name)

        d.addCallback(start)
        return d

    def _remove(self, name: str) -> None:
        """Stop the queue's dispatcher (it drains in the background)."""
        self._definitions.pop(name, None)
        self._dispatchers.pop(name, None)
        queue = self._queues.pop(name, None)
        if queue is None:
            return
        stopped = queue.disownServiceParent() or succeed(None)
        waiters = self._stopping.setdefault(name, [])

        def done(_: object) -> None:
            if self._stopping.get(name) is waiters:
                del self._stopping[name]
            self._log.info("Stopped the dispatcher of queue {queue}", queue=name)
            for waiter in waiters:
                waiter.callback(None)

        stopped.addBoth(done)

    def _stopped(self, name: str) -> "Deferred[None]":
        """Fires once an earlier dispatcher of ``name`` has fully stopped."""
        waiters = self._stopping.get(name)
        if waiters is None:
            return succeed(None)
        d: Deferred = Deferred()
        waiters.append(d)
        return d

    def dispatcher(self, name: str) -> Optional[QueueDispatcher]:
        """The dispatcher of a defined queue, or None."""
        return self._dispatchers.get(name)

    @property
    def clock(self) -> IReactorTime:
        """The clock the manager runs on (the reactor; a Clock in tests)."""
        return self._clock

    def defined(self, name: str) -> Optional[QueueDefinition]:
        """The cached definition of ``name``, or None."""
        return self._definitions.get(name)

    def definitions(self) -> List[QueueDefinition]:
        """The cached definitions, by name."""
        return [self._definitions[name] for name in sorted(self._definitions)]

    def ensure_queue(self, name: str) -> "Deferred[QueueDefinition]":
        """
        The definition of ``name``: from the cache, else from the repository
        (a queue defined through another node is started here at once).

        @raise UndefinedQueue: (as a failure) when it is defined nowhere.
        """
        if not self.ready:
            return self._after_ready(self.ensure_queue, name)
        cached = self._definitions.get(name)
        if cached is not None:
            return succeed(cached)

        def look_up() -> Deferred:
            if name in self._definitions:
                return succeed(self._definitions[name])
            d = self.repository.find_queue(name)

            def found(definition: Optional[QueueDefinition]) -> Deferred:
                if definition is None:
                    raise UndefinedQueue(name)
                applied = self._apply(definition)
                applied.addCallback(lambda _: definition)
                return applied

            d.addCallback(found)
            return d

        return self._lock.run(look_up)

    # -- definitions ---------------------------------------------------------

    def put_queue(
        self, definition: QueueDefinition, keep_paused: bool = False
    ) -> "Deferred[QueueDefinition]":
        """
        Create or replace a queue definition and apply it here.  With
        ``keep_paused`` an existing queue stays paused or not as it is (B9:
        a PUT body without ``paused``).
        """
        if not self.ready:
            return self._after_ready(self.put_queue, definition, keep_paused)

        def put() -> Deferred:
            d = self.repository.list_queues()

            def check(existing: List[QueueDefinition]) -> Deferred:
                nonlocal definition
                if keep_paused:
                    for same in existing:
                        if same.name == definition.name and same.paused != definition.paused:
                            definition = attr.evolve(definition, paused=same.paused)
                # Only where names map to the original's tables (MySQL, A9)
                # can two names share storage.
                key = self.store.storage_key(definition.name)
                for other in existing:
                    if other.name != definition.name and self.store.storage_key(other.name) == key:
                        raise QueueConflict(
                            f"queue name {definition.name!r} would share job storage with "
                            f"the existing queue {other.name!r} (both map to {key!r}); "
                            "choose another name"
                        )
                return self.repository.put_queue(definition)

            d.addCallback(check)
            d.addCallback(lambda _: self._apply(definition))
            d.addCallback(lambda _: definition)
            return d

        return self._lock.run(put)

    # -- queue control (B9) ----------------------------------------------------

    def set_paused(self, name: str, paused: bool) -> "Deferred[QueueDefinition]":
        """
        Pause or resume a queue: store the state in its definition and
        apply it here at once (other nodes see it within the refresh
        interval); fire with the definition.

        @raise UndefinedQueue: (as a failure) when the queue is not defined.
        """
        if not self.ready:
            return self._after_ready(self.set_paused, name, paused)

        def change() -> Deferred:
            d = self.repository.find_queue(name)

            def found(definition: Optional[QueueDefinition]) -> Deferred:
                if definition is None:
                    raise UndefinedQueue(name)
                changed = attr.evolve(definition, paused=paused)
                stored = succeed(False) if changed == definition else self.repository.put_queue(changed)
                stored.addCallback(lambda _: self._apply(changed))
                stored.addCallback(lambda _: changed)
                return stored

            d.addCallback(found)
            return d

        return self._lock.run(change)

    def purge_queue(self, name: str) -> "Deferred[int]":
        """Delete the queue's waiting and deferred jobs; fire with how many."""
        d = self.ensure_queue(name)
        d.addCallback(lambda _: self.store.purge(name))
        return d

    def cancel_job(self, name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """
        Cancel a job (L{IJobStore.cancel_job}): a waiting or deferred job is
        deleted; a grabbed one is marked, and its delivery aborted at once
        when it runs here (else by its node's next look at the marks).
        Fire with the job as it was, or None.
        """
        d = self.ensure_queue(name)
        d.addCallback(lambda _: self.store.cancel_job(name, job_id))

        def canceled(job: Optional[Job]) -> Optional[Job]:
            if job is not None and job.status != "grabbed":
                # Deleted at once; a grabbed one is told when its delivery is aborted.
                told = getattr(self._events, "canceled", None)
                if told is not None:
                    told(name, [job])
            if job is not None and job.status == "grabbed":
                dispatcher = self._dispatchers.get(name)
                if dispatcher is not None:
                    dispatcher.cancel(job.id)
            return job

        d.addCallback(canceled)
        return d

    def delete_queue(self, name: str) -> "Deferred[Optional[QueueDefinition]]":
        """Delete a queue definition (not its jobs); fire with it or None."""
        if not self.ready:
            return self._after_ready(self.delete_queue, name)

        def delete() -> Deferred:
            d = self.repository.delete_queue(name)

            def deleted(definition: Optional[QueueDefinition]) -> Optional[QueueDefinition]:
                if definition is not None or name in self._dispatchers:
                    self._remove(name)
                return definition

            d.addCallback(deleted)
            return d

        return self._lock.run(delete)

    def put_routing(self, category: str, queue_name: str) -> "Deferred[Routing]":
        """Route ``category`` to a defined queue."""
        d = self.ensure_queue(queue_name)
        routing = Routing(job_category=category, queue_name=queue_name)
        d.addCallback(lambda _: self.repository.put_routing(routing))

        def stored(_: object) -> Routing:
            self._routings[category] = queue_name
            return routing

        d.addCallback(stored)
        return d

    def delete_routing(self, category: str) -> "Deferred[Optional[Routing]]":
        """Delete the routing of ``category``; fire with it or None."""
        if not self.ready:
            return self._after_ready(self.delete_routing, category)
        d = self.repository.delete_routing(category)

        def deleted(routing: Optional[Routing]) -> Optional[Routing]:
            self._routings.pop(category, None)
            return routing

        d.addCallback(deleted)
        return d

    # -- pushing -------------------------------------------------------------

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

    # -- inspection ------------------------------------------------------------

    def queue_stats(self, name: str) -> dict:
        """The stats object of a queue (A3)."""
        counters = self.stats.counters(name).to_json()
        definition = self._definitions.get(name)
        if definition is not None and definition.paused:
            counters["paused"] = True
        dispatcher = self._dispatchers.get(name)
        if dispatcher is not None:
            counters.update(dispatcher.worker_stats())
            counters["active_nodes"] = 1 if dispatcher.lease.held() else 0
        else:
            counters.update({"outstanding_jobs": 0, "total_workers": 0, "idle_workers": 0})
            counters["active_nodes"] = 0
        return counters

    def node(self, name: str) -> "Deferred[Optional[NodeInfo]]":
        """The node active for the queue, or None."""
        dispatcher = self._dispatchers.get(name)
        if dispatcher is None:
            return succeed(None)
        return dispatcher.lease.holder()
