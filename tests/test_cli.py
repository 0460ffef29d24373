"""
The ``fireworq`` command line (docs/cli.md) against a real server process:
each command, ``--json`` output, pushing many jobs from JSON lines with
partial failures, and the documented exit codes.  The command runs as a
child process (``python -m fireworq.client.cli``, what the console script
calls), in a thread so that the test's reactor keeps serving the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Optional

from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from tests.support.cases import ServerTestCase
from tests.support.install import install_checkout
from tests.support.polling import wait_until
from tests.support.server import REPO, free_port


class CommandLineTests(ServerTestCase):
    """One server per test; the CLI finds it through FIREWORQ_URL."""

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.server = yield self.server()

    def fireworq(self, *args: str, stdin: Optional[str] = None, url: Optional[str] = None) -> Any:
        """Run the command; fire with (exit code, stdout, stderr)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = REPO
        env["FIREWORQ_URL"] = url or self.server.url("")
        env["COLUMNS"] = "200"

        def run() -> Any:
            done = subprocess.run(
                [sys.executable, "-m", "fireworq.client.cli", *args],
                input=stdin, capture_output=True, text=True, env=env, timeout=120,
            )
            return done.returncode, done.stdout, done.stderr

        return threads.deferToThread(run)

    @inlineCallbacks
    def test_push_one_job(self) -> Any:
        code, out, err = yield self.fireworq("push", "mail/welcome", self.worker.url("/success"),
                                             "--payload", '{"user": 42}', "--max-retries", "2")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"pushed job \d+ to queue default")
        yield self.delivered(1)
        self.assertEqual(json.loads(self.worker.deliveries[0].body), {"user": 42})
        code, out, err = yield self.fireworq("--json", "push", "c", self.worker.url("/success"),
                                             "--payload-text", "plain", "--run-after", "3600")
        self.assertEqual(code, 0, err)
        job = json.loads(out)
        self.assertEqual((job["payload"], job["run_after"], job["queue_name"]), ("plain", 3600, "default"))

    @inlineCallbacks
    def test_push_with_job_options(self) -> Any:
        args = ("push", "opts", self.worker.url("/success"), "--run-after", "3600", "--name", "n1",
                "--tag", "tenant=t1", "--tag", "team=a", "--header", "X-Trace=1", "--priority", "5",
                "--idempotency-key", "k1")
        code, out, err = yield self.fireworq("--json", *args)
        self.assertEqual(code, 0, err)
        job = json.loads(out)
        self.assertEqual((job["name"], job["tags"], job["headers"], job["priority"]),
                         ("n1", {"tenant": "t1", "team": "a"}, {"X-Trace": "1"}, 5))
        code, out, err = yield self.fireworq(*args)
        self.assertEqual(code, 0, err)
        self.assertIn(f"pushed job {job['id']} to queue default (replayed", out)
        code, out, err = yield self.fireworq("push", "opts", self.worker.url("/"), "--priority", "1000")
        self.assertEqual(code, 1)
        self.assertIn("priority", err)
        code, out, err = yield self.fireworq("push", "opts", self.worker.url("/"), "--tag", "novalue")
        self.assertEqual(code, 2)

    @inlineCallbacks
    def test_push_many_from_a_file_with_bad_lines(self) -> Any:
        path = os.path.join(self.workdir, "jobs.jsonl")
        with open(path, "w") as f:
            for i in range(1, 2501):
                if i == 1200:
                    f.write('{"url": ""}\n')
                elif i == 2000:
                    f.write("not json\n")
                elif i == 10:
                    f.write("\n")
                else:
                    f.write(json.dumps({"payload": {"i": i}, "run_after": 3600}) + "\n")
        code, out, err = yield self.fireworq("--json", "push", "bulk", self.worker.url("/success"), "--file", path)
        self.assertEqual(code, 6, err)
        summary = json.loads(out)
        self.assertEqual((summary["lines"], summary["pushed"], summary["failed"]), (2499, 2497, 2))
        self.assertEqual([(f["line"], f["status"]) for f in summary["failures"]], [(1200, 400), (2000, None)])
        self.assertIn("url", summary["failures"][0]["message"])
        stats = yield self.server.call("GET", "/queue/default/stats")
        self.assertEqual(stats[1]["total_pushes"], 2497)
        code, out, err = yield self.fireworq("push", "bulk", self.worker.url("/success"), "--file", path, "--progress")
        self.assertEqual(code, 6)
        self.assertIn("pushed 2497 of 2499 jobs", err)
        self.assertIn("line 1200: 400 Bad Request: job [", err)
        self.assertIn("line 2000: not JSON", err)

    @inlineCallbacks
    def test_push_payload_lines_from_stdin(self) -> Any:
        lines = "".join(json.dumps({"n": i}) + "\n" for i in range(30))
        code, out, err = yield self.fireworq("push", "in", self.worker.url("/success"), "--file", "-",
                                             "--payload-lines", stdin=lines)
        self.assertEqual(code, 0, err)
        self.assertIn("pushed 30 of 30 jobs", err)
        yield self.delivered(30)
        self.assertEqual(sorted(json.loads(d.body)["n"] for d in self.worker.deliveries), list(range(30)))

    @inlineCallbacks
    def test_queues_and_routings(self) -> Any:
        code, out, err = yield self.fireworq("queues", "put", "q1", "--max-workers", "3",
                                             "--max-dispatches-per-second", "5", "--max-burst-size", "2")
        self.assertEqual(code, 0, err)
        code, out, err = yield self.fireworq("queues")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"(?m)^q1\s+100\s+3\s+5\s+2")
        code, out, err = yield self.fireworq("--json", "queues", "show", "q1")
        self.assertEqual(json.loads(out)["max_workers"], 3)
        code, out, err = yield self.fireworq("routings", "put", "work/a", "q1")
        self.assertEqual(code, 0, err)
        code, out, err = yield self.fireworq("--json", "routings")
        self.assertEqual(json.loads(out), [{"job_category": "work/a", "queue_name": "q1"}])
        code, out, err = yield self.fireworq("routings")
        self.assertRegex(out, r"work/a\s+q1")
        code, out, err = yield self.fireworq("routings", "delete", "work/a")
        self.assertEqual(code, 0, err)
        code, out, err = yield self.fireworq("queues", "delete", "q1")
        self.assertEqual(code, 0, err)
        code, out, err = yield self.fireworq("queues", "show", "q1")
        self.assertEqual(code, 4)
        self.assertIn("404 Not Found: queue 'q1' is not defined", err)

    @inlineCallbacks
    def test_failed_list_show_retry_delete(self) -> Any:
        for _ in range(3):
            yield self.push(self.server, "bad", url=self.worker.url("/permanent"))

        def three() -> Any:
            d = self.fireworq("--json", "failed", "list", "default")
            return d.addCallback(lambda r: r[0] == 0 and len(json.loads(r[1])) == 3 and json.loads(r[1]))

        entries = yield wait_until(three, 20, 0.2, "3 failure-log entries")
        code, out, err = yield self.fireworq("failed", "list", "default")
        self.assertEqual(code, 0, err)
        self.assertIn("never again", out)
        first, second, third = (e["id"] for e in entries)
        code, out, err = yield self.fireworq("failed", "show", "default", str(first))
        self.assertEqual(code, 0, err)
        self.assertIn("permanent-failure", out)
        code, out, err = yield self.fireworq("failed", "retry", "default", str(first))
        self.assertEqual(code, 0, err)
        self.assertIn("retried 1 of 1", err)
        code, out, err = yield self.fireworq("failed", "delete", "default", str(second), str(first))
        self.assertEqual(code, 1)
        self.assertIn(f"entry {first}: 404", err)
        code, out, err = yield self.fireworq("--json", "failed", "retry", "default", "--all")
        self.assertEqual(code, 0, err)
        # The third entry, and the first again once its retried job failed again.
        self.assertIn(len(json.loads(out)), (1, 2))
        code, out, err = yield self.fireworq("failed", "retry", "default")
        self.assertEqual(code, 2)

    @inlineCallbacks
    def test_stats_jobs_health(self) -> Any:
        yield self.push(self.server, "later", url=self.worker.url("/success"), run_after=3600)
        code, out, err = yield self.fireworq("--json", "stats")
        self.assertEqual(json.loads(out)["default"]["total_pushes"], 1)
        code, out, err = yield self.fireworq("stats")
        self.assertRegex(out, r"(?m)^default\s+1\s")
        code, out, err = yield self.fireworq("jobs", "default", "--state", "deferred")
        self.assertEqual(code, 0, err)
        self.assertIn("later", out)
        code, out, err = yield self.fireworq("health")
        self.assertEqual((code, out.strip()), (0, "ok: sqlite"))

    @inlineCallbacks
    def test_exit_codes(self) -> Any:
        code, out, err = yield self.fireworq("push", "c", "")
        self.assertEqual(code, 2, "no worker URL is a usage error")
        code, out, err = yield self.fireworq("push", "c", "ftp://x/")
        self.assertEqual(code, 1)
        self.assertIn("400 Bad Request", err)
        code, out, err = yield self.fireworq("push", "c", "http://w/", "--payload", "{bad")
        self.assertEqual(code, 2)
        code, out, err = yield self.fireworq("jobs", "nosuch")
        self.assertEqual(code, 4)
        code, out, err = yield self.fireworq("--retries", "0", "queues", url=f"http://127.0.0.1:{free_port()}")
        self.assertEqual(code, 3)
        self.assertIn("ConnectError", err)
        code, out, err = yield self.fireworq("push", "c", "--file", os.path.join(self.workdir, "missing"))
        self.assertEqual(code, 2)
        # The server has GET /events now (this checked 404 before it had):
        # a malformed queue filter is its 400, exit code 1.
        code, out, err = yield self.fireworq("tail", "--queue", "a/b")
        self.assertEqual(code, 1, err)
        self.assertIn("400", err)
        code, out, err = yield self.fireworq("--version")
        self.assertEqual(code, 0)
        self.assertIn("fireworq", out)


class ConsoleScriptTests(SynchronousTestCase):
    """``pip install .`` installs a ``fireworq`` command that runs the CLI."""

    def test_console_script_after_install(self) -> None:
        target = install_checkout(os.path.abspath(self.mktemp()))
        script = os.path.join(target, "bin", "fireworq")
        self.assertTrue(os.access(script, os.X_OK), os.listdir(target))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "FIREWORQ_"))}
        env["PYTHONPATH"] = target
        out = subprocess.run([script, "--version"], capture_output=True, text=True, cwd="/", env=env, timeout=60)
        self.assertEqual((out.returncode, out.stdout.strip()), (0, f"fireworq, version {self.version()}"), out.stderr)
        out = subprocess.run([script, "--url", "http://127.0.0.1:1", "--retries", "0", "queues"],
                             capture_output=True, text=True, cwd="/", env=env, timeout=60)
        self.assertEqual(out.returncode, 3, out.stderr)

    def version(self) -> str:
        from fireworq import __version__

        return __version__
