"""
Tests of ``GET /health`` (B5) and ``GET /stats`` (A7): in process over memory
stores with a task.Clock, and once against the real ``twistd fireworq``
process.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq import __version__
from fireworq.server import FireworqService
from fireworq.store.memory import MemoryJobStore
from tests.support.server import FireworqProcess
from tests.test_metrics import FailingPingStore, get, make_service


class RaisingPingStore(MemoryJobStore):
    """A store whose ping raises instead of returning a failed Deferred."""

    def ping(self) -> Deferred:
        raise RuntimeError("driver exploded")


class HealthTests(SynchronousTestCase):
    """200 when the store answers and definitions are loaded; 503 otherwise."""

    def service(self, store: Optional[MemoryJobStore] = None, start: bool = True) -> FireworqService:
        service = make_service(self, store)
        self.successResultOf(service.stores.start())
        if start:
            service.manager.startService()
            service.reactor.advance(0)
            self.addCleanup(service.manager.stopService)
        return service

    def health(self, service: FireworqService) -> Any:
        code, ctype, body = get(self, service, "/health")
        self.assertEqual(ctype, b"application/json")
        return code, json.loads(body)

    def test_healthy(self) -> None:
        code, body = self.health(self.service())
        self.assertEqual(code, 200)
        self.assertEqual(
            body, {"status": "ok", "driver": "in-memory", "queues": 1, "version": __version__}
        )

    def test_store_does_not_answer(self) -> None:
        code, body = self.health(self.service(FailingPingStore()))
        self.assertEqual(code, 503)
        self.assertEqual(body["status"], "unavailable")
        self.assertEqual(body["driver"], "in-memory")
        self.assertIn("connection refused", body["message"])

    def test_ping_that_raises_is_503_not_500(self) -> None:
        code, body = self.health(self.service(RaisingPingStore()))
        self.assertEqual(code, 503)
        self.assertIn("driver exploded", body["message"])

    def test_definitions_not_loaded(self) -> None:
        """The store answers but the manager has not loaded the definitions yet."""
        code, body = self.health(self.service(start=False))
        self.assertEqual(code, 503)
        self.assertEqual(body["status"], "starting")

    def test_recovers(self) -> None:
        store = FailingPingStore()
        service = self.service(store)
        self.assertEqual(self.health(service)[0], 503)
        store.ping = lambda: MemoryJobStore.ping(store)  # type: ignore[assignment]
        self.assertEqual(self.health(service)[0], 200)


class StatsTests(SynchronousTestCase):
    """``/stats``: runtime statistics of the process as JSON."""

    def test_runtime_stats(self) -> None:
        service = make_service(self)
        code, ctype, raw = get(self, service, "/stats")
        self.assertEqual((code, ctype), (200, b"application/json"))
        stats = json.loads(raw)
        self.assertEqual(stats["pid"], os.getpid())
        self.assertEqual(stats["version"], __version__)
        for key in (
            "time",
            "uptime_seconds",
            "cpu_num",
            "thread_num",
            "memory_rss",
            "memory_peak_rss",
            "cpu_user_seconds",
            "cpu_system_seconds",
            "open_fds",
        ):
            self.assertIsInstance(stats[key], (int, float), key)
            self.assertGreaterEqual(stats[key], 0, key)
        self.assertGreater(stats["memory_rss"], 0)
        self.assertGreaterEqual(stats["cpu_num"], 1)
        self.assertEqual(len(stats["gc_counts"]), 3)
        self.assertEqual(len(stats["gc_collections"]), 3)

    def test_version(self) -> None:
        code, ctype, body = get(self, make_service(self), "/version")
        self.assertEqual((code, body), (200, f"{__version__}\n".encode()))


class HealthEndToEndTests(TestCase):
    """The real server answers /health and /stats for itself."""

    timeout = 60

    @inlineCallbacks
    def test_health_and_stats_of_the_process(self) -> None:
        workdir = os.path.abspath(self.mktemp())
        server = FireworqProcess(
            workdir,
            {"driver": "sqlite", "sqlite_path": os.path.join(workdir, "db.sqlite3"),
             "queue_default": "default"},
        )
        self.addCleanup(server.kill)
        yield server.start()
        code, body = yield server.call("GET", "/health")
        self.assertEqual((code, body["status"], body["driver"]), (200, "ok", "sqlite"))
        code, stats = yield server.call("GET", "/stats")
        self.assertEqual(code, 200)
        self.assertEqual(stats["pid"], server.process.pid)
        self.assertGreater(stats["memory_rss"], 0)
        yield server.stop()
