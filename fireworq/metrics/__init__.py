"""
Prometheus metrics (B5), in a registry of this server's own (never the
process-global one, so that several servers in one process do not clash).

Three kinds of source feed it (one module each):

  - job events (L{IQueueEvents}): counters of pushes, pops, deliveries by
    result status and by what happened to the job, retries, and histograms
    of delivery latency and of the delay from push to first delivery.  Each
    event costs O(1): the labelled children of a queue are looked up once and
    kept in a L{_QueueMetrics} (this module, with the registry and the
    exposition);
  - live objects, read at scrape time by L{fireworq.metrics.live.LiveCollector}: deliveries in
    flight, worker slots, idle workers and the lease of every queue, whether
    the definitions are loaded;
  - the job store: the number of waiting, deferred and grabbed jobs of each
    queue, counted with C{IJobStore.count_jobs} every
    L{QUEUE_COUNTS_INTERVAL} seconds in the background (one queue at a time)
    and served from that cache -- a scrape never queries the database
    (L{fireworq.metrics.counts}).

Failed store calls are counted by wrapping the service's stores in
L{fireworq.store.observed.ObservedStore} (see
L{fireworq.store.observed.observe_stores}).

Label values are bounded: queue names, the four result statuses, three job
outcomes, three job states, and store/operation names of the code.  Never a
category, a URL or a job id.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from fireworq.events import IQueueEvents
from fireworq.metrics.counts import QueueCounts
from fireworq.metrics.live import LiveCollector
from fireworq.model import Completion, CompletionKind, Job, JobCounts, ResultStatus
from fireworq.timers import Periodic

#: Seconds between two background counts of the jobs of every queue.
QUEUE_COUNTS_INTERVAL = 5.0

#: Buckets (seconds) of the delivery latency: a worker's answer time, up to
#: the longest job timeouts in common use.
DELIVERY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)

#: Buckets (seconds) of the delay from push to first delivery: from an
#: immediate dispatch to jobs pushed with a long ``run_after`` or stuck
#: behind a backlog.
FIRST_DELIVERY_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 21600.0, 86400.0,
)

#: Result statuses used as label values; any other status counts as
#: ``failure`` (as protocol A1 treats it), so the label stays bounded.
RESULT_STATUSES = frozenset(status.value for status in ResultStatus)

#: What a finished delivery did to its job, as the ``outcome`` label says it.
OUTCOMES = {
    CompletionKind.SUCCESS: "completed",
    CompletionKind.RETRY: "retried",
    CompletionKind.FAIL: "failed",
    CompletionKind.CANCEL: "canceled",
}

#: The (status, outcome) pairs the retry rule (A1) can produce; their series
#: are created (at 0) as soon as a queue is known, so rates work from the
#: first event.
DELIVERY_LABELS: Tuple[Tuple[str, str], ...] = (
    (ResultStatus.SUCCESS.value, "completed"),
    (ResultStatus.FAILURE.value, "retried"),
    (ResultStatus.FAILURE.value, "failed"),
    (ResultStatus.PERMANENT_FAILURE.value, "failed"),
    (ResultStatus.INTERNAL_FAILURE.value, "retried"),
    (ResultStatus.INTERNAL_FAILURE.value, "failed"),
)

#: The ``state`` label values of the job counts (A5's lists).
JOB_STATES = ("waiting", "deferred", "grabbed")

# -- metrics of job events -----------------------------------------------------


class _QueueMetrics:
    """The labelled children of one queue, looked up once."""

    __slots__ = ("pushed", "popped", "retries", "deliveries", "duration", "first_delay", "expired")

    def __init__(self, metrics: "Metrics", queue: str) -> None:
        self.pushed = metrics.pushed_total.labels(queue)
        self.popped = metrics.popped_total.labels(queue)
        self.retries = metrics.retries_total.labels(queue)
        self.deliveries = {
            (status, outcome): metrics.deliveries_total.labels(queue, status, outcome)
            for status, outcome in DELIVERY_LABELS
        }
        self.duration = metrics.delivery_duration.labels(queue)
        self.first_delay = metrics.first_delivery_delay.labels(queue)
        #: Created at 0 with the queue's other series, so increase() works from the first expiry.
        self.expired = metrics.expired_total.labels(queue)


@implementer(IQueueEvents)
class Metrics(Service):
    """
    The Prometheus metrics of one server process.

    It takes what it observes as arguments: the ``clock``, the queue
    ``manager`` whose queues it reports (or set L{manager} later: the
    manager is built after this object, which it sends events to), the
    ``inspection`` service it counts jobs through (or set L{inspection}
    later) and the store ``driver``'s name.  The service tree wraps the stores with
    L{observe_stores} and L{db_error}, and runs this service (its periodic
    job counts, a L{Periodic} child) once the store is open.

    @param refresh_interval: seconds between background job counts.
    @param process_metrics: also export the process, platform and garbage
        collector metrics of prometheus-client.
    """

    def __init__(
        self,
        clock: Optional[IReactorTime] = None,
        manager: Any = None,
        refresh_interval: float = QUEUE_COUNTS_INTERVAL,
        process_metrics: bool = True,
        driver: str = "",
        inspection: Any = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock: IReactorTime = clock
        self._manager = manager
        self._driver = driver
        #: Where the job counts come from (L{fireworq.inspection.IInspection}),
        #: or None for no counts.
        self.inspection = inspection
        self.refresh_interval = refresh_interval
        #: The background job counts of every queue.
        self._counts = QueueCounts(clock)
        #: Queue name -> (job counts, Unix time they were counted).
        self.queue_counts: Dict[str, Tuple[JobCounts, float]] = self._counts.latest
        self._queues: Dict[str, _QueueMetrics] = {}
        self._db_errors: Dict[Tuple[str, str], Any] = {}
        self._loop: Optional[Periodic] = None

        self.registry = CollectorRegistry()
        registry = self.registry
        self.pushed_total = Counter(
            "fireworq_jobs_pushed",
            "Jobs pushed to the queue through this node (committed).",
            ["queue"],
            registry=registry,
        )
        self.popped_total = Counter(
            "fireworq_jobs_popped",
            "Jobs of the queue grabbed for delivery by this node.",
            ["queue"],
            registry=registry,
        )
        self.deliveries_total = Counter(
            "fireworq_deliveries",
            "Finished deliveries by the worker's result status (success, failure, "
            "permanent-failure, internal-failure) and what happened to the job "
            "(completed, retried, failed = written to the failure log).",
            ["queue", "status", "outcome"],
            registry=registry,
        )
        self.retries_total = Counter(
            "fireworq_job_retries",
            "Failed deliveries after which the job was scheduled to be tried again.",
            ["queue"],
            registry=registry,
        )
        self.delivery_duration = Histogram(
            "fireworq_delivery_duration_seconds",
            "Time from the start of a delivery to the worker's answer (or its failure).",
            ["queue"],
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self.first_delivery_delay = Histogram(
            "fireworq_job_first_delivery_delay_seconds",
            "Time from the push of a job to the start of its first delivery "
            "(includes run_after).",
            ["queue"],
            buckets=FIRST_DELIVERY_BUCKETS,
            registry=registry,
        )
        self.expired_total = Counter(
            "fireworq_jobs_expired",
            "Jobs of the queue written to the failure log because their deadline "
            "passed before their next attempt could start.",
            ["queue"],
            registry=registry,
        )
        self.kept_total = Counter(
            "fireworq_jobs_kept",
            "Finished jobs this node wrote to the queue's job history (queues with a "
            "retention), by how they finished (completed, failed, expired, canceled).",
            ["queue", "state"],
            registry=registry,
        )
        self.history_deleted_total = Counter(
            "fireworq_history_deleted",
            "Kept finished jobs this node deleted because their retention ended.",
            ["queue"],
            registry=registry,
        )
        self.db_errors_total = Counter(
            "fireworq_db_errors",
            "Failed calls of this node to its stores, by store (jobs, repository, lease) "
            "and operation.",
            ["store", "operation"],
            registry=registry,
        )
        registry.register(LiveCollector(self))
        if process_metrics:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)


    # -- sources -------------------------------------------------------------

    @property
    def manager(self) -> Any:
        """The queue manager whose queues are reported, or None."""
        return self._manager

    @manager.setter
    def manager(self, manager: Any) -> None:
        self._manager = manager

    def driver(self) -> str:
        """The store driver's name (``""`` when unknown)."""
        if self._driver:
            return self._driver
        manager = self.manager
        store = getattr(manager, "store", None)
        return str(getattr(store, "name", ""))

    def _queue(self, queue_name: str) -> _QueueMetrics:
        children = self._queues.get(queue_name)
        if children is None:
            children = self._queues[queue_name] = _QueueMetrics(self, queue_name)
        return children

    def _now_ms(self) -> float:
        return self._clock.seconds() * 1000.0

    # -- IQueueEvents ----------------------------------------------------------

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        self._queue(queue_name).pushed.inc(len(jobs))

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        children = self._queue(queue_name)
        children.popped.inc(len(jobs))
        now_ms = self._now_ms()
        for job in jobs:
            if job.attempt == 1:  # not a retry, nor a redelivery after a failover
                children.first_delay.observe(max(0.0, now_ms - job.created_at) / 1000.0)

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        children = self._queue(queue_name)
        # Under the "2xx" success rule (B7) what happened to the job labels
        # the delivery, not the status its body stated.
        status = completion.result.outcome or completion.result.status
        if status not in RESULT_STATUSES:
            status = ResultStatus.FAILURE.value
        key = (status, OUTCOMES[completion.kind])
        counter = children.deliveries.get(key)
        if counter is None:  # a pair the retry rule does not produce today
            counter = children.deliveries[key] = self.deliveries_total.labels(queue_name, *key)
        counter.inc()
        children.duration.observe(max(0.0, duration))
        if completion.kind is CompletionKind.RETRY:
            children.retries.inc()

    def expired(self, queue_name: str, jobs: Sequence[Job]) -> None:
        """Count jobs that went to the failure log past their deadline (B7)."""
        self._queue(queue_name).expired.inc(len(jobs))

    def kept(self, queue_name: str, state: str) -> None:
        """Count a finished job kept in the queue's history (B8)."""
        self.kept_total.labels(queue_name, state).inc()

    def history_deleted(self, queue_name: str, count: int) -> None:
        """Count kept jobs deleted past their retention (B8)."""
        self.history_deleted_total.labels(queue_name).inc(count)

    def db_error(self, store: str, operation: str) -> None:
        """Count one failed store call (the L{ObservedStore} callback)."""
        key = (store, operation)
        child = self._db_errors.get(key)
        if child is None:
            child = self._db_errors[key] = self.db_errors_total.labels(store, operation)
        child.inc()

    def forget(self, queue_name: str) -> None:
        """Drop every series of a queue that is no longer defined."""
        self.queue_counts.pop(queue_name, None)
        children = self._queues.pop(queue_name, None)
        if children is None:
            return
        for metric in (
            self.pushed_total,
            self.popped_total,
            self.retries_total,
            self.delivery_duration,
            self.first_delivery_delay,
            self.expired_total,
            self.history_deleted_total,
        ):
            _remove(metric, queue_name)
        for state in ("completed", "failed", "expired", "canceled"):
            _remove(self.kept_total, queue_name, state)
        for status, outcome in children.deliveries:
            _remove(self.deliveries_total, queue_name, status, outcome)

    # -- exposition --------------------------------------------------------------

    def render(self, accept: Optional[str] = None) -> Tuple[bytes, str]:
        """
        The metrics in the exposition format ``accept`` (an Accept header)
        asks for: the Prometheus text format unless OpenMetrics is asked for.
        Synchronous, for the reactor thread: it reads memory only.

        @return: the body and its content type.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # -- background job counts ---------------------------------------------------

    def startService(self) -> None:
        """Start counting the jobs of every queue every L{refresh_interval}."""
        Service.startService(self)
        self._loop = Periodic(self.refresh_interval, self.refresh_queue_counts, clock=self._clock, name="queue-counts")
        self._loop.startService()

    def stopService(self) -> "Deferred[None]":
        """Stop counting; fires once a count under way has finished (its result is kept)."""
        Service.stopService(self)
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            return loop.stopService()
        return succeed(None)

    def refresh_queue_counts(self) -> "Deferred[None]":
        """
        Count the jobs of every defined queue, one queue at a time, and keep
        the counts for the next scrapes.  Does nothing until the definitions
        are loaded; a failed count keeps the previous one (its timestamp
        tells its age) and is counted in C{fireworq_db_errors_total}.
        """
        manager = self.manager
        if manager is None or self.inspection is None or not manager.running or not manager.ready:
            return succeed(None)
        names = [definition.name for definition in manager.definitions()]
        defined = set(names)
        for name in names:  # their counters exist (at 0) from now on
            self._queue(name)
        for gone in set(self._queues) | set(self.queue_counts):
            if gone not in defined and manager.dispatcher(gone) is None:
                self.forget(gone)
        return self._counts.count(self.inspection, manager, names)


def _remove(metric: Any, *labels: str) -> None:
    """Remove a labelled child if it exists."""
    try:
        metric.remove(*labels)
    except KeyError:
        pass
