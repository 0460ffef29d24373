"""
End-to-end tests: the real ``twistd fireworq`` process (sqlite store unless
said otherwise) and a real worker, talking HTTP over loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time

from twisted.internet.defer import gatherResults, inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess

#: twistd exits by re-raising the signal that stopped it (after a clean shutdown).
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)


class DeliveryTests(ServerTestCase):
    """Jobs reach workers with the right body and headers; outcomes apply."""

    @inlineCallbacks
    def test_push_and_deliver(self):
        server = yield self.server()
        code, body = yield self.push(
            server, "greet/en", url=self.worker.url("/success"), payload={"id": 12345}
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(body["queue_name"], "default")
        self.assertEqual(body["category"], "greet/en")
        self.assertEqual(body["payload"], {"id": 12345})
        self.assertEqual(
            {k: body[k] for k in ("run_after", "max_retries", "retry_delay", "timeout")},
            {"run_after": 0, "max_retries": 0, "retry_delay": 0, "timeout": 0},
        )
        yield self.delivered(1)
        delivery = self.worker.deliveries[0]
        self.assertEqual(json.loads(delivery.body), {"id": 12345})
        self.assertEqual(delivery.headers["content-type"], "application/json")
        self.assertTrue(delivery.headers["user-agent"].startswith("Fireworq/"))
        self.assertEqual(delivery.headers["x-fireworq-job-id"], str(body["id"]))
        self.assertEqual(delivery.headers["x-fireworq-queue"], "default")
        self.assertEqual(delivery.headers["x-fireworq-category"], "greet/en")
        self.assertEqual(delivery.headers["x-fireworq-attempt"], "1")

        def completed():
            d = server.call("GET", "/queue/default/stats")
            d.addCallback(lambda r: r[1]["total_successes"] == 1 and r[1])
            return d

        stats = yield wait_until(completed)
        self.assertEqual(stats["total_pushes"], 1)
        self.assertEqual(stats["total_pops"], 1)
        self.assertEqual(stats["total_completes"], 1)
        self.assertEqual(stats["active_nodes"], 1)
        code, _ = yield server.call("GET", f"/queue/default/job/{body['id']}")
        self.assertEqual(code, 404)

    @inlineCallbacks
    def test_payload_forms(self):
        """A string payload is sent raw; null or absent sends an empty body."""
        server = yield self.server()
        url = self.worker.url("/success")
        yield self.push(server, "c", url=url, payload="plain text, not JSON")
        yield self.push(server, "c", url=url, payload=None)
        yield self.push(server, "c", url=url)
        yield self.push(server, "c", url=url, payload=[1, "two", {"3": None}])
        yield self.delivered(4)
        bodies = sorted(d.body for d in self.worker.deliveries)
        self.assertEqual(
            bodies, sorted([b"plain text, not JSON", b"", b"", b'[1,"two",{"3":null}]'])
        )

    @inlineCallbacks
    def test_retries_until_success(self):
        server = yield self.server()
        code, body = yield self.push(
            server, "c", url=self.worker.url("/flaky/2"), max_retries=3, retry_delay=0
        )
        self.assertEqual(code, 200)
        yield self.delivered(3)
        attempts = [d.headers["x-fireworq-attempt"] for d in self.worker.deliveries]
        self.assertEqual(attempts, ["1", "2", "3"])

        def done():
            d = server.call("GET", "/queue/default/stats")
            d.addCallback(lambda r: r[1]["total_completes"] == 1 and r[1])
            return d

        stats = yield wait_until(done)
        self.assertEqual(stats["total_failures"], 2)
        self.assertEqual(stats["total_successes"], 1)
        code, failed = yield server.call("GET", "/queue/default/failed")
        self.assertEqual(failed["failed_jobs"], [])

    @inlineCallbacks
    def test_failures_exhaust_retries_into_failure_log(self):
        server = yield self.server()
        code, body = yield self.push(
            server, "c", url=self.worker.url("/failure"), max_retries=2, payload={"k": "v"}
        )
        yield self.delivered(3)

        def logged():
            d = server.call("GET", "/queue/default/failed")
            d.addCallback(lambda r: r[1]["failed_jobs"])
            return d

        failed = (yield wait_until(logged))[0]
        self.assertEqual(failed["job_id"], body["id"])
        self.assertEqual(failed["category"], "c")
        self.assertEqual(failed["payload"], {"k": "v"})
        self.assertEqual(failed["fail_count"], 3)
        self.assertEqual(failed["result"], {"status": "failure", "code": 200, "message": "try again"})
        self.assertEqual(len(self.worker.deliveries), 3)
        code, one = yield server.call("GET", f"/queue/default/failed/{failed['id']}")
        self.assertEqual((code, one), (200, failed))

    @inlineCallbacks
    def test_permanent_failure_is_not_retried(self):
        server = yield self.server()
        yield self.push(server, "c", url=self.worker.url("/permanent"), max_retries=5)
        yield self.delivered(1)

        def logged():
            d = server.call("GET", "/queue/default/failed")
            d.addCallback(lambda r: r[1]["failed_jobs"])
            return d

        failed = (yield wait_until(logged))[0]
        self.assertEqual(failed["result"]["status"], "permanent-failure")
        self.assertEqual(failed["fail_count"], 1)
        code, stats = yield server.call("GET", "/queue/default/stats")
        self.assertEqual(stats["total_permanent_failures"], 1)
        self.assertEqual(len(self.worker.deliveries), 1)

    @inlineCallbacks
    def test_unusable_answers_are_failures(self):
        server = yield self.server()
        yield self.push(server, "c", url=self.worker.url("/garbage"))
        yield self.push(server, "c", url=self.worker.url("/invalid"))

        def logged():
            d = server.call("GET", "/queue/default/failed?order=created")
            d.addCallback(lambda r: len(r[1]["failed_jobs"]) == 2 and r[1]["failed_jobs"])
            return d

        failed = yield wait_until(logged)
        messages = sorted(f["result"]["message"].split(":")[0] for f in failed)
        self.assertEqual(messages, ["Cannot parse body as JSON", "Invalid result status"])
        self.assertTrue(all(f["result"]["status"] == "failure" for f in failed))

    @inlineCallbacks
    def test_timeout_covers_the_whole_answer(self):
        server = yield self.server()
        started = time.time()
        yield self.push(server, "c", url=self.worker.url("/hang"), timeout=1)

        def logged():
            d = server.call("GET", "/queue/default/failed")
            d.addCallback(lambda r: r[1]["failed_jobs"])
            return d

        failed = (yield wait_until(logged))[0]
        self.assertGreaterEqual(time.time() - started, 0.9)
        self.assertEqual(failed["result"]["status"], "internal-failure")
        self.assertIn("timeout", failed["result"]["message"])

    @inlineCallbacks
    def test_unreachable_worker(self):
        server = yield self.server()
        yield self.push(server, "c", url="http://127.0.0.1:1/nobody")

        def logged():
            d = server.call("GET", "/queue/default/failed")
            d.addCallback(lambda r: r[1]["failed_jobs"])
            return d

        failed = (yield wait_until(logged))[0]
        self.assertEqual(failed["result"]["code"], 0)
        self.assertTrue(failed["result"]["message"].startswith("Request failed"))

    @inlineCallbacks
    def test_run_after_defers_the_job(self):
        server = yield self.server()
        pushed_at = time.time()
        code, body = yield self.push(server, "c", url=self.worker.url("/success"), run_after=2)
        code, deferred = yield server.call("GET", "/queue/default/deferred")
        self.assertEqual([j["id"] for j in deferred["jobs"]], [body["id"]])
        self.assertEqual(deferred["jobs"][0]["status"], "claimed")
        code, waiting = yield server.call("GET", "/queue/default/waiting")
        self.assertEqual(waiting["jobs"], [])
        yield self.delivered(1, timeout=10)
        self.assertGreaterEqual(self.worker.deliveries[0].received_at - pushed_at, 1.9)


class QueueBehaviourTests(ServerTestCase):
    """Concurrency, throttling and routing against a real worker."""

    @inlineCallbacks
    def test_max_workers_bounds_concurrency(self):
        server = yield self.server()
        code, _ = yield server.call("PUT", "/queue/narrow", {"max_workers": 3, "polling_interval": 50})
        self.assertEqual(code, 200)
        code, _ = yield server.call("PUT", "/routing/slow", {"queue_name": "narrow"})
        self.assertEqual(code, 200)
        yield gatherResults(
            [self.push(server, "slow", url=self.worker.url("/sleep/0.3/success")) for _ in range(10)]
        )

        def stats_busy():
            d = server.call("GET", "/queue/narrow/stats")
            d.addCallback(lambda r: r[1]["idle_workers"] == 0 and r[1])
            return d

        busy = yield wait_until(stats_busy)
        self.assertEqual(busy["total_workers"], 3)
        yield self.delivered(10, timeout=20)
        self.assertEqual(self.worker.max_concurrent, 3)

    @inlineCallbacks
    def test_throttle_limits_dispatch_rate(self):
        server = yield self.server()
        code, body = yield server.call(
            "PUT", "/queue/slowly", {"max_dispatches_per_second": 4, "max_burst_size": 1}
        )
        self.assertEqual(code, 200)
        self.assertEqual(body["polling_interval"], 100)
        self.assertEqual(body["max_dispatches_per_second"], 4)
        yield server.call("PUT", "/routing/t", {"queue_name": "slowly"})
        yield gatherResults(
            [self.push(server, "t", url=self.worker.url("/success")) for _ in range(6)]
        )
        yield self.delivered(6, timeout=20)
        times = sorted(d.received_at for d in self.worker.deliveries)
        # 1 token at once, then one every 0.25 s: 6 jobs span >= 1.25 s.
        self.assertGreaterEqual(times[-1] - times[0], 1.1)

    @inlineCallbacks
    def test_unknown_category_without_default_queue_is_404(self):
        server = yield self.server(queue_default="")
        code, body = yield self.push(server, "nowhere", url=self.worker.url("/success"))
        self.assertEqual(code, 404)
        self.assertIn("nowhere", body["message"])
        yield server.call("PUT", "/queue/q1", {})
        yield server.call("PUT", "/routing/somewhere", {"queue_name": "q1"})
        code, body = yield self.push(server, "somewhere", url=self.worker.url("/success"))
        self.assertEqual((code, body["queue_name"]), (200, "q1"))
        yield self.delivered(1)

    @inlineCallbacks
    def test_deleted_queue_keeps_its_jobs(self):
        server = yield self.server()
        yield server.call("PUT", "/queue/keep", {})
        yield server.call("PUT", "/routing/k", {"queue_name": "keep"})
        code, body = yield self.push(server, "k", url=self.worker.url("/success"), run_after=3600)
        self.assertEqual(code, 200)
        code, deleted = yield server.call("DELETE", "/queue/keep")
        self.assertEqual((code, deleted["name"]), (200, "keep"))
        code, _ = yield server.call("GET", "/queue/keep")
        self.assertEqual(code, 404)
        code, _ = yield self.push(server, "k", url=self.worker.url("/success"))
        self.assertEqual(code, 404)
        yield server.call("PUT", "/queue/keep", {})
        code, job = yield server.call("GET", f"/queue/keep/job/{body['id']}")
        self.assertEqual((code, job["id"]), (200, body["id"]))

    @inlineCallbacks
    def test_names_alike_but_for_case_and_punctuation(self):
        server = yield self.server()
        code, _ = yield server.call("PUT", "/queue/queueA", {})
        self.assertEqual(code, 200)
        code, body = yield server.call("PUT", "/queue/queueB", {})
        if self.driver == "mysql":
            # The original's table names (A9): both would be fireworq_jq(queue_).
            self.assertEqual(code, 400)
            self.assertIn("would share job storage with the existing queue 'queueA'",
                          body["message"])
            code, _ = yield server.call("GET", "/queue/queueB")
            self.assertEqual(code, 404)
            return
        self.assertEqual(code, 200)
        pushed = {}
        for name in ("queueA", "queueB"):
            yield server.call("PUT", f"/routing/to-{name}", {"queue_name": name})
            code, body = yield self.push(server, f"to-{name}", url=self.worker.url("/success"),
                                         payload=name, run_after=3600)
            self.assertEqual((code, body["queue_name"]), (200, name))
            pushed[name] = body["id"]
        for name in ("queueA", "queueB"):
            code, listed = yield server.call("GET", f"/queue/{name}/deferred")
            self.assertEqual([j["id"] for j in listed["jobs"]], [pushed[name]])


class BadInputTests(ServerTestCase):
    """Bad requests get a 4xx with a message; the server stays healthy."""

    @inlineCallbacks
    def test_bad_requests(self):
        server = yield self.server()
        url = self.worker.url("/success")
        cases = [
            ("POST", "/job/c", b"not json", 400, "JSON"),
            ("POST", "/job/c", b"[]", 400, "object"),
            ("POST", "/job/c", b"{}", 400, "url"),
            ("POST", "/job/c", json.dumps({"url": 5}).encode(), 400, "url"),
            ("POST", "/job/c", json.dumps({"url": url, "run_after": -1}).encode(), 400, "run_after"),
            ("POST", "/job/c", json.dumps({"url": url, "max_retries": "3"}).encode(), 400, "max_retries"),
            ("POST", "/job/c", json.dumps({"url": url, "timeout": 1.5}).encode(), 400, "timeout"),
            ("POST", "/job/c", json.dumps({"url": url, "retry_delay": True}).encode(), 400, "retry_delay"),
            ("POST", "/job/c", b"\xff\xfe{}", 400, "UTF-8"),
            ("POST", "/job/c", json.dumps({"url": "ftp://x/y"}).encode(), 400, "url"),
            ("GET", "/job/c", None, 405, "POST"),
            ("PUT", "/queue/q", b"{", 400, "JSON"),
            ("PUT", "/queue/q", json.dumps({"max_workers": -2}).encode(), 400, "max_workers"),
            ("PUT", "/queue/q", json.dumps({"max_dispatches_per_second": 2}).encode(), 400, "max_burst_size"),
            ("PUT", "/queue/q", json.dumps({"max_burst_size": 2}).encode(), 400, "max_burst_size"),
            ("PUT", "/routing/c", json.dumps({}).encode(), 400, "queue_name"),
            ("PUT", "/routing/c", json.dumps({"queue_name": "undefined"}).encode(), 404, "undefined"),
            ("GET", "/queue/default/job/abc", None, 400, "job id"),
            ("GET", "/queue/default/failed/x1", None, 400, "failure id"),
            ("GET", "/queue/default/job/999999", None, 404, "999999"),
            ("GET", "/queue/nosuch/waiting", None, 404, "nosuch"),
            ("GET", "/queue/default/waiting?limit=0", None, 400, "limit"),
            ("GET", "/queue/default/waiting?order=sideways", None, 400, "order"),
            ("GET", "/queue/default/waiting?cursor=%%%", None, 400, "cursor"),
            ("GET", "/queue/nosuch", None, 404, "nosuch"),
            ("DELETE", "/routing/nosuch", None, 404, "nosuch"),
            ("GET", "/no/such/endpoint", None, 404, "endpoint"),
        ]
        for method, path, raw, expected, word in cases:
            code, body = yield server.call(method, path, raw=raw)
            self.assertEqual(code, expected, f"{method} {path} {raw!r}: {body}")
            self.assertIsInstance(body, dict, f"{method} {path}: {body!r}")
            self.assertIn(word.lower(), body["message"].lower(), f"{method} {path}: {body}")
        code, body = yield server.call("GET", "/health")
        self.assertEqual((code, body["status"]), (200, "ok"))
        self.assertNotIn("Traceback", server.stdout())

    @inlineCallbacks
    def test_oversized_body_is_413(self):
        server = yield self.server(max_request_body="2048")
        code, body = yield server.call(
            "POST", "/job/c", {"url": self.worker.url("/success"), "payload": "x" * 5000}
        )
        self.assertEqual(code, 413)
        self.assertIn("2048", body["message"])
        code, _ = yield server.call("GET", "/health")
        self.assertEqual(code, 200)


class InspectionTests(ServerTestCase):
    """The job lists, paging with cursors, and deleting jobs."""

    @inlineCallbacks
    def test_paging_visits_every_job_once(self):
        server = yield self.server()
        url = self.worker.url("/success")
        pushed = []
        for i in range(23):
            code, body = yield self.push(server, "c", url=url, run_after=3600 + (i % 4))
            pushed.append(body["id"])
        for order in ("asc", "desc"):
            seen = []
            cursor = ""
            while True:
                code, page = yield server.call(
                    "GET", f"/queue/default/deferred?limit=5&order={order}&cursor={cursor}"
                )
                self.assertEqual(code, 200, page)
                seen.extend(job["id"] for job in page["jobs"])
                cursor = page["next_cursor"]
                if not cursor:
                    break
            self.assertEqual(sorted(seen), sorted(pushed))
            self.assertEqual(len(seen), len(set(seen)))
            keys = []
            code, everything = yield server.call("GET", f"/queue/default/deferred?limit=100&order={order}")
            for job in everything["jobs"]:
                keys.append((job["next_try"], job["id"]))
            self.assertEqual(keys, sorted(keys, reverse=(order == "desc")))

    @inlineCallbacks
    def test_job_detail_and_delete(self):
        server = yield self.server()
        code, body = yield self.push(
            server, "c", url=self.worker.url("/success"), run_after=600, max_retries=4,
            retry_delay=7, timeout=9, payload={"a": [1, 2]},
        )
        code, job = yield server.call("GET", f"/queue/default/job/{body['id']}")
        self.assertEqual(code, 200)
        self.assertEqual(
            {k: job[k] for k in ("id", "category", "url", "payload", "status", "timeout",
                                 "fail_count", "max_retries", "retry_delay")},
            {"id": body["id"], "category": "c", "url": self.worker.url("/success"),
             "payload": {"a": [1, 2]}, "status": "claimed", "timeout": 9, "fail_count": 0,
             "max_retries": 4, "retry_delay": 7},
        )
        self.assertRegex(job["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
        code, deleted = yield server.call("DELETE", f"/queue/default/job/{body['id']}")
        self.assertEqual((code, deleted), (200, job))
        code, _ = yield server.call("GET", f"/queue/default/job/{body['id']}")
        self.assertEqual(code, 404)


class LifecycleTests(ServerTestCase):
    """Shutdown, crash recovery, logs, pid file, bad settings."""

    @inlineCallbacks
    def test_graceful_shutdown_finishes_in_flight_deliveries(self):
        server = yield self.server(shutdown_timeout="10")
        for _ in range(3):
            yield self.push(server, "c", url=self.worker.url("/sleep/1.5/success"))
        yield wait_until(lambda: self.worker.current == 3)
        server.signal(signal.SIGTERM)
        # Still answering pushes while draining.
        code, body = yield self.push(server, "c", url=self.worker.url("/success"), run_after=1)
        self.assertEqual(code, 200)
        status = yield server.stop()
        self.assertIn(status, STOPPED_BY_SIGTERM)
        self.assertEqual(self.worker.current, 0)
        completes = [r for r in server.queue_log() if r["action"] == "complete"]
        self.assertEqual(len(completes), 3)
        # The job pushed during the drain is delivered after a restart.
        restarted = yield self.server()
        yield wait_until(lambda: any(d.job_id == body["id"] for d in self.worker.deliveries))
        yield restarted.stop()

    @inlineCallbacks
    def test_kill_9_loses_no_accepted_job(self):
        server = yield self.server()
        ids = []
        for i in range(20):
            code, body = yield self.push(server, "c", url=self.worker.url("/sleep/0.2/success"))
            self.assertEqual(code, 200)
            ids.append(body["id"])
        server.kill()
        restarted = yield self.server()
        yield wait_until(
            lambda: set(ids) <= set(self.worker.ids()),
            30,
            message=lambda: f"all of {ids} delivered (got {sorted(set(self.worker.ids()))})",
        )
        yield restarted.stop()

    @inlineCallbacks
    def test_queue_log_lines(self):
        server = yield self.server()
        code, body = yield self.push(server, "c", url=self.worker.url("/success"), payload={"x": 1})
        yield self.delivered(1)
        status = yield server.stop()
        self.assertIn(status, STOPPED_BY_SIGTERM)
        records = [r for r in server.queue_log() if r["id"] == body["id"]]
        self.assertEqual([r["action"] for r in records], ["push", "complete"])
        complete = records[-1]
        for field in ("level", "time", "tag", "queue", "category", "status", "created_at",
                      "elapsed", "url", "payload", "next_try", "retry_count", "retry_delay",
                      "fail_count", "timeout", "message"):
            self.assertIn(field, complete)
        self.assertEqual(complete["status"], "completed")
        self.assertEqual(complete["payload"], '{"x":1}')
        self.assertEqual(complete["tag"], "fireworq.queue")

    @inlineCallbacks
    def test_log_files_pid_and_reopen(self):
        queue_log = os.path.join(self.workdir, "queue.log")
        pid_file = os.path.join(self.workdir, "fireworq.pid")
        server = yield self.server(queue_log=queue_log, pid=pid_file)
        with open(pid_file) as f:
            self.assertEqual(int(f.read()), server.process.pid)
        yield self.push(server, "c", url=self.worker.url("/success"))
        yield wait_until(lambda: os.path.exists(queue_log) and os.path.getsize(queue_log) > 0)
        os.rename(queue_log, queue_log + ".1")
        server.signal(signal.SIGUSR1)
        yield wait_until(lambda: os.path.exists(queue_log))
        yield self.push(server, "c", url=self.worker.url("/success"))
        yield wait_until(lambda: os.path.getsize(queue_log) > 0)
        yield server.stop()
        self.assertFalse(os.path.exists(pid_file))

    @inlineCallbacks
    def test_bad_setting_stops_startup_with_one_line(self):
        server = FireworqProcess(self.workdir, {"queue_default_max_workers": "many"})
        server.spawn()
        yield wait_until(lambda: server.process.poll() is not None, 30)
        self.assertEqual(server.process.returncode, 2)
        lines = server.stderr().strip().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("queue_default_max_workers", lines[0])
        self.assertNotIn("Traceback", server.stderr())

    @inlineCallbacks
    def assert_stops_with_one_line(self, settings, name, words, port=None):
        """A server with ``settings`` exits 2 with one line naming setting ``name``."""
        settings = dict(settings)
        settings.setdefault("sqlite_path", os.path.join(self.workdir, "fireworq.sqlite3"))
        server = FireworqProcess(self.workdir, settings, port=port)
        self.addCleanup(server.kill)
        server.spawn()
        yield wait_until(lambda: server.process.poll() is not None, 30, message="the server to exit")
        stderr = server.stderr()
        # One process after another writes the same file when ports repeat.
        os.remove(server.stderr_path)
        self.assertEqual(server.process.returncode, 2, stderr)
        lines = stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith(f"fireworq: invalid setting {name}="), lines[0])
        self.assertIn(f"--{name.replace('_', '-')}", lines[0])
        self.assertIn(words, lines[0])
        self.assertNotIn("Traceback", stderr)

    def test_busy_port_stops_startup_with_one_line(self):
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        return self.assert_stops_with_one_line(
            {}, "bind", "cannot listen: Address already in use", port=busy.getsockname()[1]
        )

    def test_bad_pid_path_stops_startup_with_one_line(self):
        missing = os.path.join(self.workdir, "missing")
        return self.assert_stops_with_one_line(
            {"pid": os.path.join(missing, "x.pid")}, "pid", f"the directory {missing} does not exist"
        )

    @inlineCallbacks
    def test_bad_log_paths_stop_startup_with_one_line(self):
        for name in ("queue_log", "error_log", "access_log"):
            yield self.assert_stops_with_one_line(
                {name: os.path.join(self.workdir, "missing", f"{name}.log")},
                name,
                "cannot open the file for appending: No such file or directory",
            )

    def test_bad_sqlite_dir_stops_startup_with_one_line(self):
        missing = os.path.join(self.workdir, "missing", "dir")
        return self.assert_stops_with_one_line(
            {"driver": "sqlite", "sqlite_path": os.path.join(missing, "db.sqlite3")},
            "sqlite_path",
            f"the directory {missing} does not exist",
        )

    @inlineCallbacks
    def test_log_directory_removed_at_run_time_breaks_no_push(self):
        logs = os.path.join(self.workdir, "logs")
        os.makedirs(logs)
        server = yield self.server(queue_log=os.path.join(logs, "q.log"))
        # The queue log is opened at its first line, the first push's.
        shutil.rmtree(logs)
        ids = []
        for _ in range(3):
            code, body = yield self.push(server, "c", url=self.worker.url("/success"))
            self.assertEqual(code, 200, body)
            ids.append(body["id"])
        yield wait_until(lambda: set(ids) <= set(self.worker.ids()), 15, message="the jobs delivered")
        status = yield server.stop()
        self.assertIn(status, STOPPED_BY_SIGTERM)
        reports = [line for line in server.stderr().splitlines() if "cannot open the log file" in line]
        self.assertEqual(len(reports), 1, server.stderr()[-3000:])
        self.assertNotIn("Traceback", server.stderr())

    @inlineCallbacks
    def test_option_wins_over_environment(self):
        server = FireworqProcess(self.workdir, {"driver": "in-memory", "queue_default": "from_env"})
        self.addCleanup(server.kill)
        yield server.start(["--queue-default=from_option"])
        code, queues = yield server.call("GET", "/queues")
        self.assertEqual([q["name"] for q in queues], ["from_option"])
        code, settings = yield server.call("GET", "/settings")
        self.assertEqual(settings["queue_default"], "from_option")
        self.assertEqual(settings["driver"], "in-memory")
        yield server.stop()
