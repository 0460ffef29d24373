"""
The service tree of the server process (L{fireworq.server.tree}): the order
its children start and stop in, the store opened with backoff, the overall
shutdown deadline, and readiness (bug 4 of issue 11) -- unit tests on a
L{MemoryReactorClock}, and one test of a real server process on MySQL.
"""

from __future__ import annotations

import os
import socket
from typing import Any, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq.config import ConfigError, load
from fireworq.manager import READY_TIMEOUT, NotReady
from fireworq.model import QueueDefinition
from fireworq.server import FireworqService, Stores
from fireworq.server.listener import endpoint_description
from fireworq.store.interface import StoreUnavailable
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess
from tests.test_e2e import STOPPED_BY_SIGTERM

SHUTDOWN_TIMEOUT = 30


class FlakyStore(MemoryJobStore):
    """A memory store whose first ``failures`` openings fail."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures
        self.attempts = 0
        #: When each opening was tried (set ``clock`` to record).
        self.times: List[float] = []
        self.clock: Any = None

    def start(self) -> Deferred:
        self.attempts += 1
        if self.clock is not None:
            self.times.append(self.clock.seconds())
        if self.attempts <= self.failures:
            return fail(StoreUnavailable("connection refused"))
        return super().start()


def make_tree(testcase: Any, store: Optional[MemoryJobStore] = None, **settings: str) -> FireworqService:
    """A server tree over memory stores on a MemoryReactorClock (not started)."""
    clock = MemoryReactorClock()
    logs = testcase.mktemp()
    os.makedirs(logs)
    options = {
        "driver": "in-memory",
        "bind": "127.0.0.1:0",
        "queue_default": "default",
        "shutdown_timeout": str(SHUTDOWN_TIMEOUT),
        "queue_log": os.path.join(logs, "queue.log"),
        "access_log": os.path.join(logs, "access.log"),
        "error_log": os.path.join(logs, "error.log"),
    }
    options.update(settings)
    service = FireworqService(
        load(options, environ={}),
        reactor=clock,
        stores=Stores(store or MemoryJobStore(), MemoryRepository()),
        tune=False,
    )
    testcase.addCleanup(service.log_files.close)
    return service


def record(service: FireworqService, events: List[str]) -> None:
    """Record "start X" / "stop X" of every service of the tree in ``events``."""

    def wrap(child: Any) -> None:
        start, stop = child.startService, child.stopService

        def started() -> None:
            events.append(f"start {child.name}")
            start()

        def stopped() -> Any:
            events.append(f"stop {child.name}")
            return stop()

        child.startService, child.stopService = started, stopped

    for child in list(service):
        wrap(child)
    for child in list(service.after_store):
        wrap(child)


class BootOrderTests(SynchronousTestCase):
    """Children start in dependency order."""

    def test_start_order(self) -> None:
        service = make_tree(self)
        events: List[str] = []
        record(service, events)
        service.startService()
        self.assertEqual(
            events,
            [
                "start tuning",
                "start store",
                "start api",
                "start queues",
                # Issue 14: the signing keys (B11), loaded once the store is open.
                "start signing",
                # Issue 16: the event hooks (B12), loaded before the queue
                # manager takes pushes and dispatches.
                "start hooks",
                "start queue-manager",
                "start metrics",
            ],
        )
        self.assertTrue(service.manager.ready)

    def test_listens_through_an_endpoint(self) -> None:
        service = make_tree(self, bind="127.0.0.1:8123")
        service.privilegedStartService()
        [(port, factory, backlog, interface)] = service.reactor.tcpServers
        self.assertEqual((port, interface), (8123, "127.0.0.1"))
        self.assertIs(factory, service.site)
        self.assertEqual(service.port, 8123)

    def test_endpoint_description(self) -> None:
        self.assertEqual(endpoint_description("127.0.0.1", 80), "tcp:80:interface=127.0.0.1")
        self.assertEqual(endpoint_description("::1", 80), r"tcp:80:interface=\:\:1")

    def test_bind_may_be_an_endpoint_description(self) -> None:
        path = os.path.abspath(self.mktemp())
        service = make_tree(self, bind=f"unix:{path}")
        self.assertEqual(service.config.settings()["bind"], f"unix:{path}")
        service.privilegedStartService()
        [(address, factory, backlog, mode, wantPID)] = service.reactor.unixServers
        self.assertEqual(address, path)
        self.assertIs(factory, service.site)
        self.assertEqual(service.address, f"unix:{path}")

    def test_bad_endpoint_description_is_a_config_error(self) -> None:
        for text, words in (
            ("tcp:http", "not a valid endpoint description: invalid literal"),
            ("ssl:8443:privateKey=/nonexistent/key.pem", "No such file or directory"),
        ):
            with self.assertRaises(ConfigError) as caught:
                load({"bind": text}, environ={})
            self.assertEqual(caught.exception.name, "bind")
            self.assertIn(words, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_store_retried_with_backoff_before_the_queues_start(self) -> None:
        store = FlakyStore(failures=3)
        service = make_tree(self, store)
        store.clock = service.reactor
        service.startService()
        # Listening (so /health can say 503) while the store cannot open.
        self.assertEqual(len(service.reactor.tcpServers), 1)
        self.assertEqual(store.attempts, 1)
        self.assertFalse(service.manager.running)
        self.assertFalse(service.metrics.running)
        while not service.manager.running and service.reactor.seconds() < 60:
            service.reactor.advance(0.01)
        self.assertEqual(store.attempts, 4)
        times = store.times
        delays = [later - earlier for earlier, later in zip(times, times[1:])]
        self.assertEqual(len(delays), 3)
        # Exponential: each wait at least the previous one doubled, less the jitter.
        self.assertTrue(delays[0] < delays[1] < delays[2], delays)
        self.assertTrue(service.manager.ready)
        self.assertTrue(service.metrics.running)

    def test_stopped_while_the_store_retries(self) -> None:
        store = FlakyStore(failures=1000)
        service = make_tree(self, store)
        service.startService()
        self.successResultOf(service.stopService())
        attempts = store.attempts
        service.reactor.advance(3600)
        self.assertEqual(store.attempts, attempts)
        self.assertFalse(service.manager.running)
        self.assertEqual(service.reactor.tcpServers[0][1], service.site)


class ShutdownOrderTests(SynchronousTestCase):
    """Children stop in reverse order, each stop waited for, under one deadline."""

    def test_stop_order_each_waited_for(self) -> None:
        service = make_tree(self)
        manager_stop = service.manager.stopService
        draining: Deferred = Deferred()
        service.manager.stopService = lambda: manager_stop().addCallback(lambda _: draining)
        events: List[str] = []
        record(service, events)
        service.startService()
        events.clear()
        stopped = service.stopService()
        # The manager drains its deliveries; nothing before it in the tree stops yet.
        self.assertNoResult(stopped)
        self.assertEqual(events, ["stop queues", "stop metrics", "stop queue-manager"])
        draining.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(
            events,
            [
                "stop queues",
                "stop metrics",
                "stop queue-manager",
                "stop hooks",  # issue 16: the event hooks (B12)
                "stop signing",  # issue 14: the signing keys (B11)
                "stop api",
                "stop store",
                "stop tuning",
            ],
        )
        self.assertEqual(service.reactor.getDelayedCalls(), [])

    def test_overall_shutdown_deadline(self) -> None:
        service = make_tree(self)
        service.startService()
        service.manager.stopService = lambda: Deferred()  # never finishes
        stopped = service.stopService()
        service.reactor.advance(SHUTDOWN_TIMEOUT)
        self.assertNoResult(stopped)
        self.assertTrue(service.store.running)
        service.reactor.advance(10)
        self.successResultOf(stopped)
        self.assertFalse(service.store.running)
        self.assertFalse(service.web.running)


class FakeLeaseStore:
    """Just enough of a lease store for the balancer's heartbeats."""

    def __init__(self) -> None:
        self.beats: List[int] = []

    def heartbeat(self, node: Any, ttl_ms: int) -> Deferred:
        self.beats.append(ttl_ms)
        return succeed({node.id: 0})


class LeaseBalancerPlaceTests(SynchronousTestCase):
    """With a lease store (MySQL), the balancer starts before the queues and stops after them."""

    def test_balancer_between_store_and_queue_manager(self) -> None:
        clock = MemoryReactorClock()
        logs = self.mktemp()
        os.makedirs(logs)
        leases = FakeLeaseStore()
        config = load(
            {"driver": "in-memory", "bind": "127.0.0.1:0", "queue_default": "",
             "error_log": os.path.join(logs, "error.log"), "queue_log": os.path.join(logs, "queue.log"),
             "access_log": os.path.join(logs, "access.log")},
            environ={},
        )
        service = FireworqService(
            config, reactor=clock, stores=Stores(MemoryJobStore(), MemoryRepository(), leases), tune=False
        )
        self.addCleanup(service.log_files.close)
        events: List[str] = []
        record(service, events)
        service.startService()
        self.assertEqual(
            # Issue 14 added the signing keys (B11) before the queue manager,
            # issue 16 the event hooks (B12) too.
            events[3:], ["start queues", "start leases", "start signing", "start hooks", "start queue-manager",
                         "start metrics"]
        )
        self.assertTrue(leases.beats)  # heartbeats begun
        events.clear()
        self.successResultOf(service.stopService())
        self.assertEqual(
            events,
            ["stop queues", "stop metrics", "stop queue-manager", "stop hooks", "stop signing", "stop leases",
             "stop api",
             "stop store", "stop tuning"],
        )
        self.assertEqual(leases.beats[-1], 0)  # marked gone on stop


class ReadinessTests(SynchronousTestCase):
    """Bug 4: definition changes and pushes wait for the definitions (bounded)."""

    def test_changes_made_before_ready_wait(self) -> None:
        store = FlakyStore(failures=1)
        service = make_tree(self, store)
        service.startService()
        manager = service.manager
        self.assertFalse(manager.ready)
        put = manager.put_queue(QueueDefinition("x", 100, 2))
        routed = manager.put_routing("c", "x")
        self.assertNoResult(put)
        self.assertNoResult(routed)
        service.reactor.advance(READY_TIMEOUT / 2)  # the store opens (backoff: 0.5 s)
        self.assertEqual(store.attempts, 2)
        self.successResultOf(put)
        self.successResultOf(routed)
        from fireworq.model import NewJob

        pushed = manager.push("c", [NewJob(category="c", url="http://w/")])
        service.reactor.advance(0)
        queue_name, jobs = self.successResultOf(pushed)
        self.assertEqual(queue_name, "x")

    def test_bounded_wait(self) -> None:
        store = FlakyStore(failures=1000)
        service = make_tree(self, store)
        service.startService()
        put = service.manager.put_queue(QueueDefinition("x", 100, 2))
        service.reactor.advance(READY_TIMEOUT - 0.5)
        self.assertNoResult(put)
        service.reactor.advance(0.5)
        self.failureResultOf(put, NotReady)
        self.successResultOf(service.stopService())


def connectable(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class ReadyAtOnceEndToEndTests(TestCase):
    """
    Bug 4 on a real server process: a client configures the server as soon
    as its port opens, while the database cannot be opened yet.
    """

    timeout = 90

    @inlineCallbacks
    def test_configure_at_once(self) -> None:
        from tests.support.mariadb import shared_server, unique_database_name

        mysql = shared_server()
        name = unique_database_name("ready")
        self.addCleanup(lambda: mysql.execute(f"DROP DATABASE IF EXISTS `{name}`"))
        workdir = os.path.abspath(self.mktemp())
        server = FireworqProcess(workdir, {"driver": "mysql", "mysql_dsn": mysql.dsn(name)})
        self.addCleanup(server.kill)
        server.spawn()
        yield wait_until(lambda: connectable(server.port), 30, 0.01, "the port to open")
        # Listening, not ready: the database does not exist yet.
        code, health = yield server.call("GET", "/health")
        self.assertEqual(code, 503, health)
        queue = server.call("PUT", "/queue/x", {"polling_interval": 100, "max_workers": 2})
        # The change waits (instead of answering 503) while the store cannot open ...
        yield wait_until(lambda: not queue.called and "Cannot open" in server.stderr() + server.stdout(), 10, 0.05,
                         "the store to fail to open")
        self.assertFalse(queue.called)
        mysql.execute(f"CREATE DATABASE `{name}`")
        # ... and succeeds once it opens.
        code, body = yield queue
        self.assertEqual(code, 200, body)
        code, body = yield server.call("PUT", "/routing/c", {"queue_name": "x"})
        self.assertEqual(code, 200, body)
        code, body = yield server.call("POST", "/job/c", {"url": "http://127.0.0.1:9/"})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["queue_name"], "x")
        status = yield server.stop()
        self.assertIn(status, STOPPED_BY_SIGTERM)
