"""
The Python client (fireworq.client, protocol B16) against real server
processes: every endpoint that exists, errors with the server's messages,
batch pushes with partial failures, cursor iterators, retries after
connection failures, the asyncio client, and that the client never imports
Twisted.

The client blocks (or runs its own asyncio loop), so each call runs in a
thread (deferToThread) and the test's reactor stays free to run the real
worker that receives the deliveries.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any, Callable, List

from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from fireworq.client import (
    AsyncClient,
    BadRequest,
    Client,
    JobSpec,
    NotFound,
    PushedJob,
    RetryPolicy,
    TransportError,
)
from tests.support.cases import ServerTestCase
from tests.support.client_cases import ClientServerCase, in_thread
from tests.support.polling import wait_until
from tests.support.server import REPO, FireworqProcess, free_port


def run_async(make: Callable[[], Any]) -> Any:
    """Run a coroutine (made by ``make``) in its own asyncio loop in a thread."""
    return threads.deferToThread(lambda: asyncio.run(make()))


class ImportTests(TestCase):
    """The client is importable without Twisted (B16)."""

    def test_client_does_not_import_twisted(self) -> None:
        code = (
            "import sys, fireworq.client, fireworq.client.worker\n"
            "bad = sorted(m for m in sys.modules if m == 'twisted' or m.startswith(('twisted.', 'klein', 'treq')))\n"
            "print(','.join(bad))\n"
        )
        env = dict(os.environ, PYTHONPATH=REPO)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "", "fireworq.client imported: " + out.stdout)


class ClientTests(ClientServerCase):
    """The synchronous client against one real server (sqlite)."""

    @inlineCallbacks
    def test_server_endpoints(self) -> Any:
        version = yield self.call("version")
        self.assertRegex(version, r"^\d+\.\d+")
        health = yield self.call("health")
        self.assertEqual(health["status"], "ok")
        settings = yield self.call("settings")
        self.assertEqual(settings["queue_default"], "default")
        stats = yield self.call("stats")
        self.assertIn("pid", stats)
        metrics = yield self.call("metrics")
        self.assertIn("# TYPE", metrics)

    @inlineCallbacks
    def test_push_is_delivered(self) -> Any:
        job = yield self.call(
            "push", "mail/welcome", self.worker.url("/success"), {"user": 42},
            max_retries=2, retry_delay=1, timeout=5,
        )
        self.assertIsInstance(job, PushedJob)
        self.assertEqual((job.queue_name, job.category, job.payload, job.max_retries), ("default", "mail/welcome", {"user": 42}, 2))
        self.assertFalse(job.replayed)
        yield self.delivered(1)
        delivery = self.worker.deliveries[0]
        self.assertEqual(json.loads(delivery.body), {"user": 42})
        self.assertEqual(delivery.headers["x-fireworq-category"], "mail/welcome")
        self.assertEqual(delivery.job_id, job.id)

    @inlineCallbacks
    def test_categories_with_reserved_characters(self) -> Any:
        """Categories are quoted in the path: '?', '#', '%', spaces, dots and '//' arrive as given."""
        yield self.call("put_queue", "q one", max_workers=1)
        for category in ("a?b#c", "100% sure", "x/../y", "./z", "p//q", "ünï/cødé"):
            routing = yield self.call("put_routing", category, "q one")
            self.assertEqual(routing.job_category, category)
            got = yield self.call("routing", category)
            self.assertEqual(got.queue_name, "q one")
            job = yield self.call("push", category, self.worker.url("/success"), run_after=3600)
            self.assertEqual((job.category, job.queue_name), (category, "q one"))
            found = yield self.call("job", "q one", job.id)
            self.assertEqual(found.category, category)

    @inlineCallbacks
    def test_bad_request_carries_the_message(self) -> Any:
        error = yield self.assertFailure(self.call("push", "c", ""), BadRequest)
        self.assertEqual(error.status, 400)
        self.assertIn("url", error.message)
        error = yield self.assertFailure(self.call("push", "c", self.worker.url("/"), run_after=-1), BadRequest)
        self.assertIn("run_after", error.message)
        error = yield self.assertFailure(self.call("put_queue", "q", max_workers="many"), BadRequest)
        self.assertIn("max_workers", error.message)
        error = yield self.assertFailure(self.call("job", "default", "abc"), BadRequest)
        self.assertIn("id", error.message)

    @inlineCallbacks
    def test_not_found(self) -> Any:
        error = yield self.assertFailure(self.call("queue", "nosuch"), NotFound)
        self.assertIn("nosuch", error.message)
        yield self.assertFailure(self.call("job", "default", 999999), NotFound)
        yield self.assertFailure(self.call("list_jobs", "nosuch"), NotFound)
        yield self.assertFailure(self.call("failed_job", "default", 5), NotFound)
        yield self.assertFailure(self.call("routing", "none"), NotFound)
        error = yield self.assertFailure(self.call("put_routing", "c", "nosuch"), NotFound)
        self.assertEqual(error.status, 404)

    @inlineCallbacks
    def test_queues_and_routings(self) -> Any:
        queue = yield self.call("put_queue", "q1", polling_interval=100, max_workers=3,
                                max_dispatches_per_second=2.5, max_burst_size=4)
        self.assertEqual((queue.name, queue.max_workers, queue.max_dispatches_per_second, queue.max_burst_size),
                         ("q1", 3, 2.5, 4))
        self.assertFalse(queue.paused)
        queues = yield self.call("queues")
        self.assertEqual(sorted(q.name for q in queues), ["default", "q1"])
        got = yield self.call("queue", "q1")
        self.assertEqual(got, queue)
        yield self.call("put_routing", "work", "q1")
        routings = yield self.call("routings")
        self.assertEqual([(r.job_category, r.queue_name) for r in routings], [("work", "q1")])
        job = yield self.call("push", "work", self.worker.url("/success"))
        self.assertEqual(job.queue_name, "q1")
        stats = yield self.call("queue_stats", "q1")
        self.assertEqual(stats["total_pushes"], 1)
        all_stats = yield self.call("queues_stats")
        self.assertEqual(set(all_stats), {"default", "q1"})
        node = yield wait_until(lambda: self.call("queue_node", "q1"), 10, 0.1, "a node for q1")
        self.assertTrue(node.id)
        deleted = yield self.call("delete_routing", "work")
        self.assertEqual(deleted.queue_name, "q1")
        deleted = yield self.call("delete_queue", "q1")
        self.assertEqual(deleted.name, "q1")
        yield self.assertFailure(self.call("queue", "q1"), NotFound)

    @inlineCallbacks
    def test_inspection_pages_and_iterators(self) -> Any:
        pushed = []
        for i in range(23):
            job = yield self.call("push", "later", self.worker.url("/success"), {"i": i}, run_after=3600)
            pushed.append(job.id)
        page = yield self.call("list_jobs", "default", "deferred", limit=10, order="asc")
        self.assertEqual(len(page.items), 10)
        self.assertTrue(page.next_cursor)
        self.assertEqual(page.items[0].status, "claimed")
        self.assertIsNotNone(page.items[0].next_try.tzinfo)
        walked = yield in_thread(lambda: [j.id for j in self.client.iter_jobs("default", "deferred", page_size=4)])
        self.assertEqual(sorted(walked), sorted(pushed))
        self.assertEqual(len(walked), len(set(walked)))
        waiting = yield self.call("list_jobs", "default", "waiting")
        self.assertEqual(waiting.items, [])
        self.assertEqual(waiting.next_cursor, "")
        one = yield self.call("job", "default", pushed[0])
        self.assertEqual(one.payload, {"i": 0})
        gone = yield self.call("delete_job", "default", pushed[0])
        self.assertEqual(gone.id, pushed[0])
        yield self.assertFailure(self.call("job", "default", pushed[0]), NotFound)
        self.assertRaises(ValueError, self.client.list_jobs, "default", "running")

    @inlineCallbacks
    def test_failure_log_retry_and_delete(self) -> Any:
        for _ in range(3):
            yield self.call("push", "bad", self.worker.url("/permanent"))

        def entries() -> Any:
            return in_thread(lambda: list(self.client.iter_failed("default", page_size=2)))

        failed = yield wait_until(lambda: entries().addCallback(lambda e: len(e) == 3 and e), 20, 0.1, "3 failures")
        first = failed[0]
        self.assertEqual(first.result.status, "permanent-failure")
        self.assertEqual(first.result.message, "never again")
        self.assertIsNotNone(first.failed_at)
        shown = yield self.call("failed_job", "default", first.id)
        self.assertEqual(shown.job_id, first.job_id)
        page = yield self.call("list_failed", "default", order="created", limit=1)
        self.assertEqual(len(page.items), 1)
        again = yield self.call("retry_failed", "default", first.id)
        self.assertNotEqual(again.id, first.job_id)
        self.assertEqual(again.queue_name, "default")
        yield self.assertFailure(self.call("retry_failed", "default", first.id), NotFound)
        deleted = yield self.call("delete_failed", "default", failed[1].id)
        self.assertEqual(deleted.id, failed[1].id)
        yield self.assertFailure(self.call("delete_failed", "default", failed[1].id), NotFound)

    @inlineCallbacks
    def test_push_batch_and_push_many(self) -> Any:
        url = self.worker.url("/success")
        batch = yield self.call("push_batch", "b", [{"url": url, "run_after": 3600}, JobSpec.of(url, "text", run_after=3600)])
        self.assertEqual([j.payload for j in batch], [None, "text"])
        error = yield self.assertFailure(self.call("push_batch", "b", [{"url": url}, {"url": ""}]), BadRequest)
        self.assertIn("job [1]", error.message)

        jobs: List[Any] = [{"url": url, "payload": {"i": i}, "run_after": 3600} for i in range(2500)]
        jobs[1700] = {"url": url, "timeout": -5}
        progress: List[Any] = []
        result = yield self.call("push_many", "many", iter(jobs), on_progress=lambda s, f: progress.append((s, f)))
        self.assertEqual((result.total, result.pushed, result.failed), (2500, 2499, 1))
        self.assertEqual([(f.index, f.count) for f in result.failures], [(1700, 1)])
        self.assertIn("timeout", str(result.failures[0].error))
        self.assertIsNone(result.jobs[1700])
        self.assertEqual(result.jobs[1701].payload, {"i": 1701})
        self.assertEqual(sum(s for s, _ in progress), 2499)
        self.assertEqual(sum(f for _, f in progress), 1)
        ids = [j.id for j in result.jobs if j is not None]
        self.assertEqual(len(set(ids)), 2499)
        stored = yield in_thread(lambda: sum(1 for _ in self.client.iter_jobs("default", "deferred", page_size=1000)))
        self.assertEqual(stored, 2499 + 2)
        # Without isolation the whole batch of the bad element fails.
        result = yield self.call("push_many", "many", jobs[1500:1800], isolate=False, chunk_size=100, keep_jobs=False)
        self.assertEqual((result.pushed, result.failed, result.jobs), (200, 100, None))
        self.assertEqual([(f.index, f.count) for f in result.failures], [(200, 100)])
        # Small byte budgets split batches; every job is stored once.
        result = yield self.call("push_many", "many", jobs[:50], max_bytes=600)
        self.assertEqual(result.pushed, 50)

    @inlineCallbacks
    def test_push_many_to_a_category_without_queue_fails_every_job(self) -> Any:
        yield self.call("put_queue", "gone")
        yield self.call("put_routing", "orphan", "gone")
        yield self.call("delete_queue", "gone")
        jobs = [{"url": self.worker.url("/")} for _ in range(1500)]
        result = yield self.call("push_many", "orphan", jobs)
        self.assertEqual((result.pushed, result.failed), (0, 1500))
        self.assertTrue(all(isinstance(f.error, NotFound) for f in result.failures))
        error = self.assertRaises(Exception, result.raise_for_errors)
        self.assertIn("1500 of 1500", str(error))

    @inlineCallbacks
    def test_async_client(self) -> Any:
        url = self.worker.url("/success")
        base = self.server.url("")

        async def scenario() -> Any:
            async with AsyncClient(base) as client:
                job = await client.push("async", url, {"x": 1}, run_after=3600)
                many = await client.push_many("async", ({"url": url, "run_after": 3600} for _ in range(1200)))
                walked = [j.id async for j in client.iter_jobs("default", "deferred", page_size=500)]
                queues = await client.queues()
                try:
                    await client.queue("nosuch")
                except NotFound as e:
                    missing = e.message
                return job, many, walked, queues, missing

        job, many, walked, queues, missing = yield run_async(scenario)
        self.assertEqual(job.payload, {"x": 1})
        self.assertEqual((many.pushed, many.failed), (1200, 0))
        self.assertEqual(len(walked), 1201)
        self.assertIn(job.id, walked)
        self.assertEqual([q.name for q in queues], ["default"])
        self.assertIn("nosuch", missing)

    @inlineCallbacks
    def test_token_is_sent_as_bearer(self) -> Any:
        """Servers without authentication ignore the header; the access log shows the call went through."""
        client = Client(self.server.url(""), token="secret-token")
        self.addCleanup(client.close)
        self.assertEqual(client._http.headers["authorization"], "Bearer secret-token")
        queues = yield in_thread(client.queues)
        self.assertEqual([q.name for q in queues], ["default"])

    @inlineCallbacks
    def test_schedules(self) -> Any:
        """The schedule calls (B10) against the real server: define, read, run now, list, delete."""
        defined = yield self.call(
            "put_schedule", "nightly", cron="30 2 * * *", category="reports", url=self.worker.url("/success"),
            payload={"kind": "nightly"}, timezone="Europe/Berlin", catch_up="last", job_name="report", max_retries=2,
        )
        self.assertEqual((defined["cron"], defined["timezone"], defined["catch_up"], defined["job_name"]),
                         ("30 2 * * *", "Europe/Berlin", "last", "report"))
        self.assertIsNone(defined["last_job"])
        got = yield self.call("schedule", "nightly")
        self.assertEqual(got, defined)
        job = yield self.call("run_schedule", "nightly")
        self.assertIsInstance(job, PushedJob)
        self.assertEqual((job.queue_name, job.category, job.payload), ("default", "reports", {"kind": "nightly"}))
        yield self.delivered(1)
        listed = yield self.call("schedules")
        self.assertEqual([s["name"] for s in listed], ["nightly"])
        self.assertEqual(listed[0]["last_job"], {"queue_name": "default", "id": job.id})
        with self.assertRaises(BadRequest) as caught:
            yield self.call("put_schedule", "bad", cron="61 * * * *", category="c", url=self.worker.url("/success"))
        self.assertIn("cron", str(caught.exception))
        yield self.call("delete_schedule", "nightly")
        with self.assertRaises(NotFound):
            yield self.call("schedule", "nightly")


class RetryTests(ServerTestCase):
    """Idempotent calls survive a server that is not up yet; pushes are never repeated."""

    @inlineCallbacks
    def test_connection_refused_is_retried_for_idempotent_calls(self) -> Any:
        port = free_port()
        retries: List[Any] = []
        client = Client(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=600, backoff=0.05, max_delay=0.2),
                        on_retry=lambda call, attempt, wait, error: retries.append((call.path, type(error).__name__)))
        self.addCleanup(client.close)
        pending = in_thread(client.queues)
        yield wait_until(lambda: len(retries) >= 2, 10, 0.02, "the client to retry")
        settings = dict(driver="sqlite", queue_default="default",
                        sqlite_path=os.path.join(self.workdir, "retry.sqlite3"), shutdown_timeout="5")
        server = FireworqProcess(self.workdir, settings, port=port)
        self.addCleanup(server.kill)
        yield server.start()
        queues = yield pending
        self.assertEqual([q.name for q in queues], ["default"])
        self.assertEqual(retries[0], ("/queues", "ConnectError"))

    @inlineCallbacks
    def test_push_is_not_retried(self) -> Any:
        retries: List[Any] = []
        client = Client(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=5, backoff=0.01),
                        on_retry=lambda *a: retries.append(a))
        self.addCleanup(client.close)
        error = yield self.assertFailure(in_thread(client.push, "c", "http://127.0.0.1:1/"), TransportError)
        self.assertIn("ConnectError", str(error))
        self.assertEqual(retries, [])
        # With an idempotency key the push may be repeated.
        yield self.assertFailure(
            in_thread(client.push, "c", "http://127.0.0.1:1/", idempotency_key="k1"), TransportError
        )
        self.assertEqual(len(retries), 4)


class JobOptionTests(ClientServerCase):
    """The job options of B7, which the server has (sqlite store), through the client."""

    @inlineCallbacks
    def test_options_are_stored_and_delivered(self) -> Any:
        job = yield self.call(
            "push", "opts", self.worker.url("/success"), {"a": 1}, name="welcome", tags={"tenant": "t1"},
            headers={"X-Trace": "abc"}, priority=7, retry_backoff=2, retry_max_delay=60, retry_jitter=True,
            success="2xx", deadline=600, max_retries=2,
        )
        self.assertEqual(job.extra["name"], "welcome")
        self.assertEqual(job.extra["tags"], {"tenant": "t1"})
        self.assertEqual(job.extra["priority"], 7)
        self.assertEqual(job.extra["headers"], {"X-Trace": "abc"})
        shown = yield self.call("push", "opts", self.worker.url("/success"), run_after=3600)
        self.assertNotIn("name", shown.raw, "a push without options answers the Part A shape")

    @inlineCallbacks
    def test_idempotency_key_replays(self) -> Any:
        url = self.worker.url("/success")
        first = yield self.call("push", "idem", url, {"n": 1}, run_after=3600, idempotency_key="order-1")
        again = yield self.call("push", "idem", url, {"n": 2}, run_after=3600, idempotency_key="order-1")
        self.assertFalse(first.replayed)
        self.assertTrue(again.replayed)
        self.assertEqual((again.id, again.payload), (first.id, {"n": 1}))
        batch = yield self.call("push_batch", "idem", [
            {"url": url, "run_after": 3600, "idempotency_key": "b"},
            {"url": url, "run_after": 3600, "idempotency_key": "b"},
            {"url": url, "run_after": 3600, "idempotency_key": "order-1"},
        ])
        self.assertEqual(batch[0].id, batch[1].id)
        self.assertEqual(batch[2].id, first.id)
        stored = yield in_thread(lambda: [j.id for j in self.client.iter_jobs("default", "deferred")])
        self.assertEqual(sorted(stored), sorted({first.id, batch[0].id}))

    @inlineCallbacks
    def test_bad_options_name_the_field(self) -> Any:
        error = yield self.assertFailure(self.call("push", "c", self.worker.url("/"), priority=1000), BadRequest)
        self.assertIn("priority", error.message)
        error = yield self.assertFailure(
            self.call("push", "c", self.worker.url("/"), headers={"Host": "x"}), BadRequest
        )
        self.assertIn("Host", error.message)
        result = yield self.call("push_many", "c", [{"url": self.worker.url("/"), "run_after": 3600},
                                                    {"url": self.worker.url("/"), "success": "sometimes"}])
        self.assertEqual([(f.index, f.count) for f in result.failures], [(1, 1)])
        self.assertIn("success", str(result.failures[0].error))

    @inlineCallbacks
    def test_queue_job_defaults(self) -> Any:
        queue = yield self.call("put_queue", "q", max_retries=4, priority=3)
        self.assertEqual((queue.extra["max_retries"], queue.extra["priority"]), (4, 3))
        shown = yield self.call("queue", "q")
        self.assertEqual(shown.raw, queue.raw)
