"""
Job options on the dispatch side and queue control, end to end: real
``twistd fireworq`` processes, a real worker over loopback, real time with
small delays.

  - backoff timings (retry_backoff, retry_max_delay), Retry-After honoured,
    a deadline expiring a job into the failure log (and the metric), the
    2xx success rule and the job's extra headers (sqlite);
  - pause/resume (definition, /queues/stats, gauge), purge counts, cancel
    of an in-flight delivery: the worker sees its connection aborted within
    1 s, the job is not retried and not in the failure log (sqlite);
  - pause/resume across two nodes and a cancel through the node that does
    not deliver the job (MySQL).
"""

from __future__ import annotations

import time
from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.polling import pause, wait_until
from tests.support.worker import Worker, _WorkerResource
from tests.test_multinode import REFRESH_MS, REFRESH_SLACK, ClusterTestCase
from twisted.web.server import Site


class _OptionsResource(_WorkerResource):
    """The test worker, plus ``/retry-after/<s>`` (503 with Retry-After) and ``/accepted`` (202, no JSON)."""

    def _answer(self, request: Any, path: str, delivery: Any, finished: List[bool]) -> None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["retry-after"]:
            request.setResponseCode(503)
            request.setHeader(b"Retry-After", parts[1].encode())
            request.write(b'{"status":"failure","message":"busy"}')
            request.finish()
        elif parts[:1] == ["accepted"]:
            request.setResponseCode(202)
            request.write(b"accepted")
            request.finish()
        else:
            super()._answer(request, path, delivery, finished)


class OptionsWorker(Worker):
    def start(self) -> None:
        site = Site(_OptionsResource(self))
        site.noisy = False
        self._port = self.reactor.listenTCP(0, site, interface="127.0.0.1")


def metric(text: str, name: str, queue: str) -> float:
    """The value of ``name{queue="<queue>"}`` in a Prometheus text page (0 if absent)."""
    prefix = f'{name}{{queue="{queue}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


class JobOptionsDispatchTests(ServerTestCase):
    """sqlite, one server."""

    def setUp(self) -> None:
        super().setUp()
        # Replace the plain worker with one that also answers Retry-After.
        self.worker = OptionsWorker()
        self.worker.start()
        self.addCleanup(self.worker.stop)

    def times_of(self, job_id: int) -> List[float]:
        return [d.received_at for d in self.worker.deliveries if d.job_id == job_id]

    @inlineCallbacks
    def test_backoff_timings(self):
        server = yield self.server()
        code, job = yield self.push(
            server, "c", url=self.worker.url("/failure"), max_retries=3, retry_delay=1,
            retry_backoff=2, retry_max_delay=3,
        )
        self.assertEqual(code, 200, job)
        yield wait_until(lambda: len(self.times_of(job["id"])) >= 4, 20, message="4 attempts")
        t = self.times_of(job["id"])
        gaps = [b - a for a, b in zip(t, t[1:])]
        # 1 s, 2 s, then 4 s cut to 3 s (polling adds up to 0.1 s, a busy machine more).
        for gap, wanted in zip(gaps, (1.0, 2.0, 3.0)):
            self.assertGreaterEqual(gap, wanted - 0.05, gaps)
            self.assertLess(gap, wanted + 1.5, gaps)
        # The last failure reaches the failure log when its completion is
        # written, a moment after the worker answered.
        @inlineCallbacks
        def in_failure_log():
            code, failed = yield server.call("GET", "/queue/default/failed")
            return code == 200 and [f["job_id"] for f in failed["failed_jobs"]] == [job["id"]]

        yield wait_until(in_failure_log, 10, message="the job in the failure log")

    @inlineCallbacks
    def test_retry_after_honoured(self):
        server = yield self.server()
        code, job = yield self.push(server, "c", url=self.worker.url("/retry-after/2"), max_retries=1)
        self.assertEqual(code, 200, job)
        yield wait_until(lambda: len(self.times_of(job["id"])) >= 2, 15, message="2 attempts")
        first, second = self.times_of(job["id"])[:2]
        self.assertGreaterEqual(second - first, 1.95)

    @inlineCallbacks
    def test_deadline_expires_into_failure_log(self):
        server = yield self.server()
        code, job = yield self.push(
            server, "c", url=self.worker.url("/failure"), max_retries=5, retry_delay=3, deadline=2,
        )
        self.assertEqual(code, 200, job)
        yield self.delivered(1)

        @inlineCallbacks
        def expired():
            code, body = yield server.call("GET", "/queue/default/failed")
            return body["failed_jobs"]

        [entry] = yield wait_until(expired, 10, message="the job in the failure log")
        self.assertEqual(entry["job_id"], job["id"])
        self.assertEqual((entry["result"]["status"], entry["result"]["code"]), ("expired", 0))
        self.assertEqual(len(self.times_of(job["id"])), 1, "no attempt after the deadline")
        code, page = yield server.call("GET", "/metrics")
        self.assertEqual(metric(page, "fireworq_jobs_expired_total", "default"), 1.0)
        yield wait_until(
            lambda: [r for r in server.queue_log() if r.get("action") == "expire" and r.get("id") == job["id"]],
            5, message="the queue log's expire line",
        )

    @inlineCallbacks
    def test_2xx_rule_and_job_headers(self):
        server = yield self.server()
        code, job = yield self.push(
            server, "c", url=self.worker.url("/accepted"), max_retries=2, success="2xx",
            headers={"Authorization": "Bearer abc", "X-Trace": "t-1"},
        )
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        delivery = self.worker.deliveries[0]
        self.assertEqual(delivery.headers["authorization"], "Bearer abc")
        self.assertEqual(delivery.headers["x-trace"], "t-1")
        yield wait_until(
            lambda: server.call("GET", f"/queue/default/job/{job['id']}").addCallback(lambda r: r[0] == 404),
            10, message="the job completed",
        )
        code, failed = yield server.call("GET", "/queue/default/failed")
        self.assertEqual(failed["failed_jobs"], [])
        self.assertEqual(len(self.worker.deliveries), 1)

    @inlineCallbacks
    def test_pause_purge_resume(self):
        server = yield self.server()
        code, definition = yield server.call("POST", "/queue/default/pause")
        self.assertEqual((code, definition.get("paused")), (200, True))
        for _ in range(4):
            yield self.push(server, "c", url=self.worker.url("/success"))
        yield self.push(server, "c", url=self.worker.url("/success"), run_after=600)
        yield pause(0.5)
        self.assertEqual(self.worker.deliveries, [], "a paused queue dispatches nothing")
        code, shown = yield server.call("GET", "/queue/default")
        self.assertIs(shown["paused"], True)
        code, stats = yield server.call("GET", "/queues/stats")
        self.assertIs(stats["default"]["paused"], True)
        code, page = yield server.call("GET", "/metrics")
        self.assertEqual(metric(page, "fireworq_queue_paused", "default"), 1.0)
        # A PUT without "paused" keeps the queue paused.
        code, put = yield server.call("PUT", "/queue/default", {"max_workers": 3})
        self.assertEqual((code, put.get("paused")), (200, True))
        code, purged = yield server.call("POST", "/queue/default/purge")
        self.assertEqual((code, purged), (200, {"purged": 5}))
        code, job = yield self.push(server, "c", url=self.worker.url("/success"))
        code, definition = yield server.call("POST", "/queue/default/resume")
        self.assertEqual(code, 200)
        self.assertNotIn("paused", definition)
        yield self.delivered(1)
        self.assertEqual([d.job_id for d in self.worker.deliveries], [job["id"]])
        code, stats = yield server.call("GET", "/queues/stats")
        self.assertNotIn("paused", stats["default"])
        code, page = yield server.call("GET", "/metrics")
        self.assertEqual(metric(page, "fireworq_queue_paused", "default"), 0.0)

    @inlineCallbacks
    def test_cancel_in_flight_delivery(self):
        server = yield self.server()
        code, job = yield self.push(server, "c", url=self.worker.url("/hang"), max_retries=3, timeout=30)
        yield self.delivered(1)
        code, answer = yield server.call("DELETE", f"/queue/default/job/{job['id']}")
        asked = time.time()
        self.assertEqual(code, 202, answer)
        self.assertEqual((answer["state"], answer["canceling"], answer["id"]), ("grabbed", True, job["id"]))
        yield wait_until(lambda: job["id"] in self.worker.lost, 5, message="the delivery aborted")
        self.assertLess(time.time() - asked, 1.0)
        yield pause(1.0)
        self.assertEqual(len(self.worker.deliveries), 1, "not retried")
        code, _ = yield server.call("GET", f"/queue/default/job/{job['id']}")
        self.assertEqual(code, 404)
        code, failed = yield server.call("GET", "/queue/default/failed")
        self.assertEqual(failed["failed_jobs"], [])


class QueueControlMySQLTests(ClusterTestCase):
    """Two nodes on one MySQL database."""

    @inlineCallbacks
    def two_nodes(self):
        first = yield self.start_node("a")
        second = yield self.start_node("b")
        code, _ = yield first.call("PUT", "/queue/q", {"polling_interval": 100, "max_workers": 4})
        self.assertEqual(code, 200)
        yield first.call("PUT", "/routing/c", {"queue_name": "q"})

        @inlineCallbacks
        def holder():
            for node in (first, second):
                code, info = yield node.call("GET", "/queue/q/node")
                if code == 200 and first.owns(info):
                    return (first, second)
                if code == 200 and second.owns(info):
                    return (second, first)
            return None

        holding, other = yield wait_until(holder, 20, 0.1, "a node to hold queue q")
        return holding, other

    @inlineCallbacks
    def test_pause_resume_across_nodes(self):
        holding, other = yield self.two_nodes()
        # Paused through the node that does not dispatch: the holder stops
        # within config_refresh_interval.
        code, definition = yield other.call("POST", "/queue/q/pause")
        self.assertEqual((code, definition.get("paused")), (200, True))
        yield pause(REFRESH_MS / 1000.0 + REFRESH_SLACK)
        for node in (holding, other):
            code, shown = yield node.call("GET", "/queue/q")
            self.assertIs(shown.get("paused"), True, node)
        code, job = yield other.call("POST", "/job/c", {"url": self.worker.url("/success")})
        self.assertEqual(code, 200)
        yield pause(1.0)
        self.assertEqual(self.worker.deliveries, [])
        stats = yield holding.stats()
        self.assertIs(stats["q"].get("paused"), True)
        code, _ = yield other.call("POST", "/queue/q/resume")
        self.assertEqual(code, 200)
        started = time.time()
        yield self.delivered(1, timeout=REFRESH_MS / 1000.0 + REFRESH_SLACK + 2)
        self.assertLess(time.time() - started, REFRESH_MS / 1000.0 + REFRESH_SLACK + 1)
        code, purged = yield other.call("POST", "/queue/q/purge")
        self.assertEqual((code, purged), (200, {"purged": 0}))

    @inlineCallbacks
    def test_cancel_through_the_other_node(self):
        holding, other = yield self.two_nodes()
        code, job = yield other.call(
            "POST", "/job/c", {"url": self.worker.url("/hang"), "max_retries": 3, "timeout": 30}
        )
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        code, answer = yield other.call("DELETE", f"/queue/q/job/{job['id']}")
        asked = time.time()
        self.assertEqual((code, answer.get("canceling")), (202, True), answer)
        yield wait_until(lambda: job["id"] in self.worker.lost, 5, message="the delivery aborted")
        self.assertLess(time.time() - asked, 1.0)
        yield pause(1.0)
        self.assertEqual(len(self.worker.deliveries), 1, "not retried")
        code, failed = yield holding.call("GET", "/queue/q/failed")
        self.assertEqual(failed["failed_jobs"], [])
        code, _ = yield holding.call("GET", f"/queue/q/job/{job['id']}")
        self.assertEqual(code, 404)
