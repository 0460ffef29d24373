"""
Tests of the Prometheus metrics (B5).

Unit tests drive a real queue manager, dispatchers and the in-memory store
with a task.Clock and a scripted deliverer, and read the metrics from the
registry or through ``GET /metrics`` (StubTreq).  The end-to-end test runs
the real ``twistd fireworq`` process and a real worker and parses what
``/metrics`` serves with prometheus-client's parser.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from fireworq import __version__
from fireworq.config import load
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease.sole import SoleLease
from fireworq.events import EventFanout
from fireworq.inspection import Inspection
from fireworq.manager import QueueManager
from fireworq.metrics import Metrics
from fireworq.model import Job, NewJob, QueueDefinition
from fireworq.pushing import PushBatcher
from fireworq.server import FireworqService, Stores
from fireworq.stats import QueueStats
from fireworq.store.interface import IJobStore, NodeInfo, StoreUnavailable
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from fireworq.store.observed import ObservedStore, observe_stores
from fireworq.web.app import FireworqAPI
from tests.support.cases import ServerTestCase
from tests.support.deliverers import ScriptedDeliverer
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess

NODE = NodeInfo("node-a", "host-a")

#: A parsed scrape: (sample name, labels) -> value.
Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Parse the text format with prometheus-client's own parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> Optional[float]:
    """One value of a parsed scrape, or None when the series is absent."""
    return samples.get((name, frozenset(labels.items())))


class CountingStore(MemoryJobStore):
    """The memory store, counting count_jobs calls; counts can be made to fail."""

    def __init__(self, clock: Any) -> None:
        super().__init__(clock=clock)
        self.counts = 0
        self.count_error: Optional[Exception] = None

    def count_jobs(self, queue_name: str) -> Deferred:
        self.counts += 1
        if self.count_error is not None:
            return fail(self.count_error)
        return super().count_jobs(queue_name)


class MetricsTestCase(SynchronousTestCase):
    """
    A queue manager over an observed in-memory store, its events going to a
    L{Metrics}; queue ``q`` (10 workers) is defined.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        now = lambda: int(self.clock.seconds() * 1000)
        self.metrics = Metrics(clock=self.clock, process_metrics=False, refresh_interval=5.0)
        self.raw_store = CountingStore(now)
        self.store = ObservedStore(self.raw_store, "jobs", self.metrics.db_error)
        self.successResultOf(self.store.start())
        self.deliverer = ScriptedDeliverer()
        self.events = EventFanout([QueueStats(self.clock, now), self.metrics])

        def make_dispatcher(definition: QueueDefinition) -> QueueDispatcher:
            lease = SoleLease(definition.name, self.store, NODE, 1, self.clock)
            return QueueDispatcher(
                definition, self.store, lease, self.deliverer, self.events, self.clock
            )

        repository = MemoryRepository()
        self.manager = QueueManager(
            self.store,
            repository,
            PushBatcher(self.store, self.clock),
            make_dispatcher,
            self.events,
            QueueStats(self.clock, now),
            self.clock,
            default_queue=QueueDefinition("q", 200, 10),
        )
        self.metrics.manager = self.manager
        self.metrics.inspection = Inspection(self.store, repository, self.manager)
        self.manager.startService()
        self.clock.advance(0)
        self.addCleanup(self.manager.stopService)

    def push(self, queue: str = "q", **fields: Any) -> Job:
        """Push one job (category ``c``) and let the dispatcher run."""
        fields.setdefault("url", "http://worker/")
        d = self.manager.push_to_queue(queue, [NewJob(category="c", **fields)])
        self.settle()
        return self.successResultOf(d)[0]

    def settle(self, seconds: float = 0.0) -> None:
        """Advance the clock, then run what became due (pushes, polls, batches)."""
        self.clock.advance(seconds)
        for _ in range(5):
            self.clock.advance(0)

    def value(self, name: str, **labels: str) -> Optional[float]:
        return self.metrics.registry.get_sample_value(name, labels)

    def deliveries(self, status: str, outcome: str, queue: str = "q") -> Optional[float]:
        return self.value(
            "fireworq_deliveries_total", queue=queue, status=status, outcome=outcome
        )


class EventMetricsTests(MetricsTestCase):
    """Counters and histograms follow job events."""

    def test_pushes_and_pops(self) -> None:
        self.push()
        self.push(run_after=60)
        self.assertEqual(self.value("fireworq_jobs_pushed_total", queue="q"), 2)
        self.assertEqual(self.value("fireworq_jobs_popped_total", queue="q"), 1)

    def test_deliveries_by_status_and_outcome(self) -> None:
        ok = self.push()
        retried = self.push(max_retries=1)
        exhausted = self.push()
        permanent = self.push(max_retries=3)
        crashed = self.push()
        self.deliverer.answer(ok.id, "success")
        self.deliverer.answer(retried.id, "failure")
        self.deliverer.answer(exhausted.id, "failure")
        self.deliverer.answer(permanent.id, "permanent-failure")
        self.deliverer.crash(crashed.id)
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.deliveries("success", "completed"), 1)
        self.assertEqual(self.deliveries("failure", "retried"), 1)
        self.assertEqual(self.deliveries("failure", "failed"), 1)
        self.assertEqual(self.deliveries("permanent-failure", "failed"), 1)
        self.assertEqual(self.deliveries("internal-failure", "failed"), 1)
        self.assertEqual(self.deliveries("internal-failure", "retried"), 0)
        self.assertEqual(self.value("fireworq_job_retries_total", queue="q"), 1)
        # The retried job comes back and succeeds: retries do not move again.
        self.settle(0.1)
        self.settle(1)
        self.deliverer.answer(retried.id, "success")
        self.assertEqual(self.deliveries("success", "completed"), 2)
        self.assertEqual(self.value("fireworq_job_retries_total", queue="q"), 1)
        self.assertEqual(self.value("fireworq_delivery_duration_seconds_count", queue="q"), 6)

    def test_unknown_status_counts_as_failure(self) -> None:
        """The status label stays bounded whatever a Result says."""
        job = self.push()
        self.deliverer.answer(job.id, "something-else")
        self.assertEqual(self.deliveries("failure", "failed"), 1)
        labels = {
            s.labels["status"]
            for family in self.metrics.registry.collect()
            for s in family.samples
            if s.name == "fireworq_deliveries_total"
        }
        self.assertNotIn("something-else", labels)

    def test_delivery_latency(self) -> None:
        job = self.push()
        self.clock.advance(2.0)
        self.deliverer.answer(job.id)
        self.assertEqual(self.value("fireworq_delivery_duration_seconds_sum", queue="q"), 2.0)
        self.assertEqual(
            self.value("fireworq_delivery_duration_seconds_bucket", queue="q", le="1.0"), 0
        )
        self.assertEqual(
            self.value("fireworq_delivery_duration_seconds_bucket", queue="q", le="2.5"), 1
        )

    def test_first_delivery_delay_counts_first_attempts_only(self) -> None:
        job = self.push(run_after=30, max_retries=1, retry_delay=5)
        self.assertNotIn(job.id, self.deliverer.pending)
        self.settle(30)
        self.assertIn(job.id, self.deliverer.pending)
        name = "fireworq_job_first_delivery_delay_seconds"
        self.assertEqual(self.value(name + "_count", queue="q"), 1)
        delay = self.value(name + "_sum", queue="q")
        self.assertGreaterEqual(delay, 30.0)
        self.assertLess(delay, 31.0)
        self.deliverer.answer(job.id, "failure")
        self.settle(0.1)  # the retry is written: due in 5 s
        self.settle(5)
        self.assertIn(job.id, self.deliverer.pending)  # the retry
        self.assertEqual(self.value(name + "_count", queue="q"), 1)
        self.assertEqual(self.value("fireworq_jobs_popped_total", queue="q"), 2)

    def test_first_delivery_delay_skips_redeliveries(self) -> None:
        """
        A job grabbed again after its node died (attempt 2, no failure
        counted) is not a first delivery (issue 11, bug 5).
        """
        self.push()
        name = "fireworq_job_first_delivery_delay_seconds"
        self.assertEqual(self.value(name + "_count", queue="q"), 1)
        redelivered = Job(id=99, category="c", url="u", payload="", status="grabbed", created_at=0,
                          next_try=0, timeout=0, fail_count=0, retry_count=0, retry_delay=0,
                          grabber_id=1, attempts=2)
        self.metrics.popped("q", [redelivered])
        self.assertEqual(self.value(name + "_count", queue="q"), 1)
        self.assertEqual(self.value("fireworq_jobs_popped_total", queue="q"), 2)
        first = Job(id=100, category="c", url="u", payload="", status="grabbed", created_at=0,
                    next_try=0, timeout=0, fail_count=0, retry_count=0, retry_delay=0,
                    grabber_id=1, attempts=1)
        self.metrics.popped("q", [first])
        self.assertEqual(self.value(name + "_count", queue="q"), 2)

    def test_children_are_looked_up_once(self) -> None:
        """An event costs dictionary lookups, not a labels() call per metric."""
        self.push()
        children = self.metrics._queues["q"]
        calls: List[tuple] = []
        original = self.metrics.pushed_total.labels
        self.metrics.pushed_total.labels = lambda *a, **k: calls.append(a) or original(*a, **k)
        self.push()
        self.assertEqual(calls, [])
        self.assertIs(self.metrics._queues["q"], children)


class QueueGaugeTests(MetricsTestCase):
    """Job counts come from a background refresh; gauges from live objects."""

    def setUp(self) -> None:
        super().setUp()
        self.metrics.startService()
        self.addCleanup(self.metrics.stopService)

    def scrape(self) -> Samples:
        body, content_type = self.metrics.render()
        self.assertTrue(content_type.startswith("text/plain"))
        return parse(body.decode("utf-8"))

    def test_counts_by_state(self) -> None:
        self.successResultOf(self.manager.put_queue(QueueDefinition("one", 200, 1)))
        self.settle()
        for _ in range(3):
            self.push("one")
        for _ in range(2):
            self.push("q", run_after=3600)
        self.settle(5)
        samples = self.scrape()
        self.assertEqual(sample(samples, "fireworq_queue_jobs", queue="one", state="grabbed"), 1)
        self.assertEqual(sample(samples, "fireworq_queue_jobs", queue="one", state="waiting"), 2)
        self.assertEqual(sample(samples, "fireworq_queue_jobs", queue="one", state="deferred"), 0)
        self.assertEqual(sample(samples, "fireworq_queue_jobs", queue="q", state="deferred"), 2)
        self.assertEqual(sample(samples, "fireworq_queue_jobs", queue="q", state="waiting"), 0)
        self.assertEqual(
            sample(samples, "fireworq_queue_jobs_updated_timestamp_seconds", queue="one"),
            self.clock.seconds(),
        )

    def test_scrapes_never_count(self) -> None:
        """Counting happens every refresh_interval, however often /metrics is read."""
        self.settle()
        before = self.raw_store.counts
        self.assertGreater(before, 0)
        for _ in range(20):
            self.scrape()
        self.assertEqual(self.raw_store.counts, before)
        self.settle(5)
        self.assertEqual(self.raw_store.counts, before + 1)  # one queue, one count

    def test_counts_are_refreshed(self) -> None:
        self.push("q", run_after=3600)
        self.settle(5)
        self.assertEqual(
            sample(self.scrape(), "fireworq_queue_jobs", queue="q", state="deferred"), 1
        )
        self.push("q", run_after=3600)
        self.assertEqual(
            sample(self.scrape(), "fireworq_queue_jobs", queue="q", state="deferred"), 1
        )
        self.settle(5)
        self.assertEqual(
            sample(self.scrape(), "fireworq_queue_jobs", queue="q", state="deferred"), 2
        )

    def test_failed_count_keeps_the_last_value_and_counts_a_db_error(self) -> None:
        self.push("q", run_after=3600)
        self.settle(5)
        counted_at = self.clock.seconds()
        warnings: List[dict] = []
        observer = lambda event: warnings.append(event) if event.get(
            "log_namespace", ""
        ).startswith("fireworq.metrics") else None
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.raw_store.count_error = StoreUnavailable("database down")
        self.settle(5)
        self.settle(5)
        samples = self.scrape()
        self.assertEqual(sample(samples, "fireworq_queue_jobs", queue="q", state="deferred"), 1)
        self.assertEqual(
            sample(samples, "fireworq_queue_jobs_updated_timestamp_seconds", queue="q"),
            counted_at,
        )
        self.assertEqual(
            sample(samples, "fireworq_db_errors_total", store="jobs", operation="count_jobs"), 2
        )
        self.assertEqual(len(warnings), 1, "one warning per failure streak")
        self.raw_store.count_error = None
        self.settle(5)
        self.assertEqual(
            sample(self.scrape(), "fireworq_queue_jobs_updated_timestamp_seconds", queue="q"),
            self.clock.seconds(),
        )

    def test_workers_in_flight_and_lease(self) -> None:
        self.push()
        self.push()
        samples = self.scrape()
        self.assertEqual(sample(samples, "fireworq_deliveries_in_flight", queue="q"), 2)
        self.assertEqual(sample(samples, "fireworq_workers", queue="q"), 10)
        self.assertEqual(sample(samples, "fireworq_workers_idle", queue="q"), 8)
        self.assertEqual(sample(samples, "fireworq_queue_lease_held", queue="q"), 1)
        self.assertEqual(sample(samples, "fireworq_ready"), 1)

    def test_counters_of_a_defined_queue_start_at_zero(self) -> None:
        self.settle(5)
        samples = self.scrape()
        self.assertEqual(sample(samples, "fireworq_jobs_pushed_total", queue="q"), 0)
        self.assertEqual(
            sample(
                samples, "fireworq_deliveries_total", queue="q", status="success",
                outcome="completed",
            ),
            0,
        )

    def test_deleted_queue_series_are_dropped(self) -> None:
        self.successResultOf(self.manager.put_queue(QueueDefinition("gone", 200, 1)))
        self.settle()
        self.push("gone", run_after=60)
        self.settle(5)
        self.assertEqual(sample(self.scrape(), "fireworq_jobs_pushed_total", queue="gone"), 1)
        self.successResultOf(self.manager.delete_queue("gone"))
        self.settle(5)
        names = {labels for (name, labels) in self.scrape() if ("queue", "gone") in labels}
        self.assertEqual(names, set())

    def test_stop_ends_the_counts(self) -> None:
        """
        Stopping ends the periodic counts.  (Issue 11: the service tree now
        stops its children, so Metrics no longer watches the server object
        to stop by itself; it takes the manager and clock as arguments.)
        """
        metrics = Metrics(clock=self.clock, manager=self.manager, process_metrics=False, refresh_interval=5.0)
        counts: List[float] = []
        metrics.refresh_queue_counts = lambda: counts.append(self.clock.seconds())  # type: ignore[method-assign]
        metrics.startService()
        self.settle(5)
        self.assertEqual(len(counts), 2)
        self.successResultOf(metrics.stopService())
        self.assertFalse(metrics.running)
        self.settle(20)
        self.assertEqual(len(counts), 2)


class LiveCollectorTests(SynchronousTestCase):
    """Gauges read from fake live objects."""

    def test_lease_not_held_and_no_dispatcher(self) -> None:
        lease = SimpleNamespace(held=lambda: False)
        dispatcher = SimpleNamespace(in_flight=3, max_workers=2, lease=lease)
        manager = SimpleNamespace(
            ready=False,
            definitions=lambda: [QueueDefinition("a", 200, 2), QueueDefinition("b", 200, 2)],
            dispatcher=lambda name: dispatcher if name == "a" else None,
        )
        metrics = Metrics(clock=Clock(), manager=manager, process_metrics=False)
        samples = parse(metrics.render()[0].decode())
        self.assertEqual(sample(samples, "fireworq_queue_lease_held", queue="a"), 0)
        self.assertEqual(sample(samples, "fireworq_workers_idle", queue="a"), 0)
        self.assertEqual(sample(samples, "fireworq_deliveries_in_flight", queue="a"), 3)
        self.assertIsNone(sample(samples, "fireworq_queue_lease_held", queue="b"))
        self.assertIsNone(sample(samples, "fireworq_queue_jobs", queue="a", state="waiting"))
        self.assertEqual(sample(samples, "fireworq_ready"), 0)

    def test_without_manager(self) -> None:
        samples = parse(Metrics(clock=Clock(), process_metrics=False).render()[0].decode())
        self.assertEqual(sample(samples, "fireworq_ready"), 0)

    def test_registries_are_separate(self) -> None:
        """Two servers in one process do not clash, and the global registry stays clean."""
        first = Metrics(clock=Clock())
        second = Metrics(clock=Clock())
        first.pushed("q", [object()])  # type: ignore[list-item]
        self.assertEqual(first.registry.get_sample_value("fireworq_jobs_pushed_total", {"queue": "q"}), 1)
        self.assertIsNone(second.registry.get_sample_value("fireworq_jobs_pushed_total", {"queue": "q"}))
        self.assertIsNone(REGISTRY.get_sample_value("fireworq_jobs_pushed_total", {"queue": "q"}))
        self.assertIsNotNone(first.registry.get_sample_value("process_resident_memory_bytes"))

    def test_openmetrics_when_asked(self) -> None:
        metrics = Metrics(clock=Clock(), process_metrics=False)
        body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
        self.assertTrue(content_type.startswith("application/openmetrics-text"))
        self.assertTrue(body.endswith(b"# EOF\n"))


class ObservedStoreTests(SynchronousTestCase):
    """Failed store calls are counted; everything else passes through."""

    def setUp(self) -> None:
        self.errors: List[Tuple[str, str]] = []
        self.raw = MemoryJobStore(clock=lambda: 0)
        self.store = ObservedStore(self.raw, "jobs", lambda *e: self.errors.append(e))

    def test_is_the_store(self) -> None:
        self.assertEqual(self.store.name, "in-memory")
        self.assertTrue(verifyObject(IJobStore, self.store))
        self.successResultOf(self.store.start())
        self.successResultOf(self.store.ping())
        self.assertEqual(self.errors, [])

    def test_failed_deferred_is_counted_and_passed_on(self) -> None:
        self.raw.ping = lambda: fail(StoreUnavailable("down"))  # type: ignore[assignment]
        self.failureResultOf(self.store.ping(), StoreUnavailable)
        self.assertEqual(self.errors, [("jobs", "ping")])

    def test_raising_call_is_counted(self) -> None:
        def broken(*args: Any) -> None:
            raise StoreUnavailable("down")

        self.raw.count_jobs = broken  # type: ignore[assignment]
        self.assertRaises(StoreUnavailable, self.store.count_jobs, "q")
        self.assertEqual(self.errors, [("jobs", "count_jobs")])

    def test_cancellation_is_not_an_error(self) -> None:
        pending: Deferred = Deferred()
        self.raw.ping = lambda: pending  # type: ignore[assignment]
        d = self.store.ping()
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.errors, [])

    def test_observe_stores(self) -> None:
        shared = MemoryJobStore(clock=lambda: 0)
        stores = Stores(shared, shared)  # type: ignore[arg-type]
        observe_stores(stores, lambda *e: self.errors.append(e))
        self.assertIsInstance(stores.jobs, ObservedStore)
        self.assertIs(stores.repository, stores.jobs)
        before = stores.jobs
        observe_stores(stores, lambda *e: None)
        self.assertIs(stores.jobs, before)
        separate = Stores(MemoryJobStore(), MemoryRepository(), leases=SimpleNamespace())
        observe_stores(separate, lambda *e: None)
        self.assertEqual(
            (separate.jobs.kind, separate.repository.kind, separate.leases.kind),
            ("jobs", "repository", "lease"),
        )


class FailingPingStore(MemoryJobStore):
    """A memory store whose ping fails (the database does not answer)."""

    def ping(self) -> Deferred:
        return fail(StoreUnavailable("connection refused"))


def make_service(testcase: Any, store: Optional[MemoryJobStore] = None) -> FireworqService:
    """A FireworqService on a task.Clock over memory stores (not started)."""
    clock = Clock()
    clock.advance(1_700_000_000)
    logs = testcase.mktemp()
    os.makedirs(logs)
    config = load(
        {
            "driver": "in-memory",
            "queue_default": "default",
            "queue_log": os.path.join(logs, "queue.log"),
            "access_log": os.path.join(logs, "access.log"),
            "error_log": os.path.join(logs, "error.log"),
        },
        environ={},
    )
    stores = Stores(store or MemoryJobStore(clock=lambda: int(clock.seconds() * 1000)), MemoryRepository())
    service = FireworqService(config, reactor=clock, stores=stores)
    testcase.addCleanup(service.log_files.close)
    return service


def get(testcase: Any, service: FireworqService, path: str, headers: Optional[dict] = None) -> Tuple[int, bytes, bytes]:
    """GET ``path`` from the service's API in process: (code, content type, body)."""
    stub = StubTreq(service.api.resource())
    d = stub.get("http://fireworq.test" + path, headers=headers)
    for _ in range(5):
        service.reactor.advance(0)
        stub.flush()
    response = testcase.successResultOf(d)
    content = response.content()
    stub.flush()
    ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
    return response.code, ctype, testcase.successResultOf(content)


class ServiceWiringTests(SynchronousTestCase):
    """The service builds its Metrics, observes its stores and serves /metrics."""

    def setUp(self) -> None:
        self.service = make_service(self, FailingPingStore(clock=lambda: 0))
        self.successResultOf(self.service.stores.start())
        self.service.manager.startService()
        self.service.reactor.advance(0)
        self.addCleanup(self.service.manager.stopService)

    def test_stores_are_observed(self) -> None:
        metrics = self.service.metrics
        self.assertIsInstance(self.service.manager.store, ObservedStore)
        # In the service tree, Metrics starts once the store is open (issue 11).
        self.assertIs(metrics.parent, self.service.after_store)
        self.assertIs(metrics.manager, self.service.manager)
        get(self, self.service, "/health")
        self.assertEqual(
            metrics.registry.get_sample_value(
                "fireworq_db_errors_total", {"store": "jobs", "operation": "ping"}
            ),
            1,
        )

    def test_scrape(self) -> None:
        code, ctype, body = get(self, self.service, "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(ctype.startswith(b"text/plain; version=0.0.4"), ctype)
        samples = parse(body.decode("utf-8"))
        self.assertEqual(
            sample(samples, "fireworq_build_info", version=__version__, driver="in-memory"),
            1,
        )
        self.assertEqual(sample(samples, "fireworq_queue_lease_held", queue="default"), 1)
        self.assertIsNotNone(sample(samples, "process_resident_memory_bytes"))

    def test_scrape_openmetrics(self) -> None:
        code, ctype, body = get(
            self, self.service, "/metrics", {"Accept": ["application/openmetrics-text; version=1.0.0"]}
        )
        self.assertEqual(code, 200)
        self.assertTrue(ctype.startswith(b"application/openmetrics-text"), ctype)

    def test_no_metrics_is_404(self) -> None:
        api = FireworqAPI(self.service.manager, self.service.inspection, self.service.config)
        self.service.api = api
        code, ctype, body = get(self, self.service, "/metrics")
        self.assertEqual(code, 404)
        self.assertEqual(json.loads(body)["error"], "Not Found")


class MetricsEndToEndTests(ServerTestCase):
    """The real server and a real worker: counters move with real deliveries."""

    @inlineCallbacks
    def scrape(self, server: FireworqProcess) -> Any:
        code, text = yield server.call("GET", "/metrics")
        self.assertEqual(code, 200, text)
        return parse(text)

    @inlineCallbacks
    def test_counters_and_gauges_follow_real_deliveries(self) -> None:
        server = yield self.server()
        before = yield self.scrape(server)
        self.assertIn(sample(before, "fireworq_jobs_pushed_total", queue="default"), (None, 0))
        self.assertEqual(sample(before, "fireworq_ready"), 1)

        # A throttled queue lets one job through; the others wait their turn.
        code, _ = yield server.call(
            "PUT", "/queue/slow", {"max_dispatches_per_second": 0.001, "max_burst_size": 1}
        )
        self.assertEqual(code, 200)
        url = self.worker.url
        pushes = [
            dict(url=url("/success")),
            dict(url=url("/success")),
            dict(url=url("/flaky/1"), max_retries=2),  # failure (retried), then success
            dict(url=url("/failure"), max_retries=1),  # failure (retried), failure (failed)
            dict(url=url("/permanent"), max_retries=5),  # permanent-failure (failed)
            dict(url=url("/garbage")),  # failure (failed)
            dict(url=url("/success"), run_after=3600),
            dict(url=url("/success"), run_after=3600),
        ]
        for job in pushes:
            code, body = yield server.call("POST", "/job/c", job)
            self.assertEqual(code, 200, body)
        code, _ = yield server.call("PUT", "/routing/slow-jobs", {"queue_name": "slow"})
        self.assertEqual(code, 200)
        for _ in range(4):
            code, body = yield server.call("POST", "/job/slow-jobs", dict(url=url("/success")))
            self.assertEqual(code, 200, body)

        def settled() -> Deferred:
            d = self.scrape(server)

            def check(samples: Samples) -> Any:
                done = sample(samples, "fireworq_delivery_duration_seconds_count", queue="default")
                waiting = sample(samples, "fireworq_queue_jobs", queue="slow", state="waiting")
                deferred = sample(samples, "fireworq_queue_jobs", queue="default", state="deferred")
                return done == 8 and waiting == 3 and deferred == 2 and samples

            d.addCallback(check)
            return d

        after = yield wait_until(settled, 30, 0.2, "deliveries to finish and gauges to catch up")
        self.assertEqual(len(self.worker.deliveries), 9)

        def deliveries(status: str, outcome: str) -> Optional[float]:
            return sample(
                after, "fireworq_deliveries_total", queue="default", status=status, outcome=outcome
            )

        self.assertEqual(sample(after, "fireworq_jobs_pushed_total", queue="default"), 8)
        self.assertEqual(sample(after, "fireworq_jobs_pushed_total", queue="slow"), 4)
        self.assertEqual(sample(after, "fireworq_jobs_popped_total", queue="default"), 8)
        self.assertEqual(sample(after, "fireworq_jobs_popped_total", queue="slow"), 1)
        self.assertEqual(deliveries("success", "completed"), 3)
        self.assertEqual(deliveries("failure", "retried"), 2)
        self.assertEqual(deliveries("failure", "failed"), 2)
        self.assertEqual(deliveries("permanent-failure", "failed"), 1)
        self.assertEqual(deliveries("internal-failure", "failed"), 0)
        self.assertEqual(sample(after, "fireworq_job_retries_total", queue="default"), 2)
        self.assertEqual(
            sample(after, "fireworq_job_first_delivery_delay_seconds_count", queue="default"), 6
        )
        self.assertEqual(sample(after, "fireworq_queue_jobs", queue="default", state="waiting"), 0)
        self.assertEqual(sample(after, "fireworq_queue_jobs", queue="slow", state="grabbed"), 0)
        self.assertEqual(sample(after, "fireworq_queue_lease_held", queue="default"), 1)
        self.assertEqual(sample(after, "fireworq_deliveries_in_flight", queue="default"), 0)
        self.assertEqual(sample(after, "fireworq_workers_idle", queue="default"), 20)
        self.assertGreater(sample(after, "process_resident_memory_bytes"), 0)
        # Health checks made while the store was still opening may count as
        # DB errors; nothing after start-up may.
        def db_errors(samples: dict) -> float:
            return sum(v for (name, _), v in samples.items() if name == "fireworq_db_errors_total")

        self.assertEqual(db_errors(after), db_errors(before))
        yield server.stop()
