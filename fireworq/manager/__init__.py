"""
The queue manager: the queues of this node, their definitions and
routings (cached from the repository), one L{QueueService} per defined
queue (each runs the queue's lease, dispatcher, completion batcher and
upkeep), and the path of a push from category to committed job.

L{QueueManager} is put together from one part per job:

  - L{fireworq.manager.reload}: polls the repository's revision every
    ``config_refresh_interval`` and reloads definitions and routings when
    it moved;
  - L{fireworq.manager.running}: the L{QueueService} of each queue,
    started, reconfigured or stopped to match;
  - L{fireworq.manager.changes}: definition and routing changes, purge and
    cancel, from this node's API;
  - L{fireworq.manager.pushes}: routing and storing pushes;
  - L{fireworq.manager.state}: the attributes they share.

Readiness (bug 4 of issue 11): the API listens before the store has opened
and the definitions are loaded.  Until the first load, definition changes
and pushes wait for it (L{QueueManager.when_ready}) for up to
L{READY_TIMEOUT} seconds and only then fail with L{NotReady} (a 503), so a
client that starts the server and configures it at once never sees an
error, while ``/health`` still answers 503 ``starting`` at once.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IReactorTime

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import IQueueEvents
from fireworq.manager.changes import DefinitionChanges
from fireworq.manager.pushes import FinishPush, Pushes
from fireworq.manager.reload import DefinitionReload
from fireworq.manager.running import RunningQueues
from fireworq.model import QueueDefinition
from fireworq.pushing import PushBatcher
from fireworq.queue_errors import QueueConflict, UndefinedQueue, UnknownCategory
from fireworq.queues import QueueService
from fireworq.readiness import NotReady, ReadyWaiters
from fireworq.stats import QueueStats
from fireworq.store.interface import IJobStore, IRepository, NodeInfo
from fireworq.timers import Periodic

#: Seconds a definition change or push made before the first load of the
#: definitions waits for it before it fails with L{NotReady}.
READY_TIMEOUT = 5.0

STARTING = "the server is starting: queue definitions are not loaded yet"

__all__ = [
    "FinishPush",
    "NotReady",
    "QueueConflict",
    "QueueManager",
    "READY_TIMEOUT",
    "UndefinedQueue",
    "UnknownCategory",
]

#: Makes the dispatcher of a queue definition.
DispatcherFactory = Callable[[QueueDefinition], QueueDispatcher]


class QueueManager(DefinitionReload, RunningQueues, DefinitionChanges, Pushes, MultiService):
    """Definitions, routings, dispatchers and pushes of this node."""

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

    # -- look-ups --------------------------------------------------------------

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
