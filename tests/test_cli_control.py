"""
The ``fireworq`` commands for the server's second-wave features against
real server processes (the command runs as a child process, as in
tests/test_cli.py): pause/resume/purge, cancel, kept jobs (completed,
job show, job retry), signing keys, schedules, and -- with
authentication on -- tokens, whoami, the exit code of a refused token, and
``tail`` over the real ``/events`` with the bearer token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks

from fireworq.client import WebhookVerifier
from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until
from tests.support.server import REPO

ADMIN_TOKEN = "cli-admin-token-0123456789abcdef"


class CommandCase(ServerTestCase):
    """Runs the command against ``self.server`` (FIREWORQ_URL), with FIREWORQ_TOKEN when given."""

    settings: Dict[str, Any] = {}

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.server = yield self.server(**self.settings)

    def env(self, token: Optional[str]) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = REPO
        env["FIREWORQ_URL"] = self.server.url("")
        env["COLUMNS"] = "200"
        if token:
            env["FIREWORQ_TOKEN"] = token
        return env

    def fireworq(self, *args: str, token: Optional[str] = None, stdin: Optional[str] = None) -> Any:
        """Run the command; fire with (exit code, stdout, stderr)."""
        env = self.env(token)

        def run() -> Any:
            done = subprocess.run([sys.executable, "-m", "fireworq.client.cli", *args], input=stdin,
                                  capture_output=True, text=True, env=env, timeout=120)
            return done.returncode, done.stdout, done.stderr

        return threads.deferToThread(run)

    @inlineCallbacks
    def ok(self, *args: str, **kwargs: Any) -> Any:
        """Run the command, check it exits 0, fire with its stdout."""
        code, out, err = yield self.fireworq(*args, **kwargs)
        self.assertEqual(code, 0, f"fireworq {' '.join(args)}: {err}")
        return out


class ControlCommandTests(CommandCase):
    """Queue control, cancel, kept jobs and signing keys."""

    @inlineCallbacks
    def test_pause_resume_purge(self) -> Any:
        out = yield self.ok("pause", "default")
        self.assertEqual(out.strip(), "paused queue default")
        out = yield self.ok("queues")
        self.assertRegex(out, r"(?m)^default\s+100\s+\d+\s+yes")
        job = yield self.push(self.server, "held", url=self.worker.url("/success"))
        out = yield self.ok("--json", "jobs", "default", "--state", "waiting")
        self.assertEqual([j["id"] for j in json.loads(out)], [job[1]["id"]])
        out = yield self.ok("--json", "resume", "default")
        self.assertNotIn("paused", json.loads(out))
        yield self.delivered(1)
        for _ in range(2):
            yield self.push(self.server, "later", url=self.worker.url("/success"), run_after=3600)
        code, out, err = yield self.fireworq("purge", "default", stdin="n\n")
        self.assertEqual(code, 1, "purge asks first; 'n' aborts")
        out = yield self.ok("purge", "default", "--yes")
        self.assertEqual(out.strip(), "purged 2 jobs from default")
        code, out, err = yield self.fireworq("pause", "nosuch")
        self.assertEqual(code, 4, err)
        self.assertIn("404", err)

    @inlineCallbacks
    def test_cancel(self) -> Any:
        _, later = yield self.push(self.server, "c", url=self.worker.url("/success"), run_after=3600)
        _, busy = yield self.push(self.server, "c", url=self.worker.url("/hang"))
        yield self.delivered(1)
        out = yield self.ok("cancel", "default", str(later["id"]), str(busy["id"]))
        self.assertEqual(out.splitlines(), [
            f"deleted job {later['id']}", f"canceling job {busy['id']} (its delivery is being aborted)",
        ])
        yield wait_until(lambda: busy["id"] in self.worker.lost, 15, 0.05, "the delivery to be aborted")
        code, out, err = yield self.fireworq("cancel", "default", str(later["id"]))
        self.assertEqual(code, 4, "an unknown job")
        self.assertIn(str(later["id"]), err)

    @inlineCallbacks
    def test_completed_job_show_and_retry(self) -> Any:
        out = yield self.ok("--json", "queues", "put", "kept", "--set", "retention=3600")
        self.assertEqual(json.loads(out)["retention"], 3600)
        yield self.ok("routings", "put", "report", "kept")
        _, job = yield self.push(self.server, "report", url=self.worker.url("/success"), name="daily", tags={"team": "ops"})
        _, other = yield self.push(self.server, "report", url=self.worker.url("/success"), name="weekly")
        yield self.delivered(2)

        def finished() -> Any:
            d = self.fireworq("--json", "completed", "kept")
            d.addCallback(lambda r: r[0] == 0 and len(json.loads(r[1])) == 2)
            return d

        yield wait_until(finished, 20, 0.2, "2 completed jobs")
        out = yield self.ok("--json", "completed", "kept", "--tag", "team:ops")
        self.assertEqual([j["id"] for j in json.loads(out)], [job["id"]])
        out = yield self.ok("completed", "kept", "--name", "week*")
        self.assertRegex(out, rf"(?m)^{other['id']}\s+report\s+weekly\s+1\s")
        self.assertNotIn("daily", out)
        out = yield self.ok("--json", "job", "show", "kept", str(job["id"]))
        shown = json.loads(out)
        self.assertEqual((shown["state"], shown["result"]["status"]), ("completed", "success"))
        out = yield self.ok("job", "retry", "kept", str(job["id"]))
        self.assertRegex(out, r"pushed job \d+ to queue kept")
        yield self.delivered(3)
        code, out, err = yield self.fireworq("completed", "kept", "--tag", "nocolon")
        self.assertEqual(code, 1)
        self.assertIn("tag", err)

    @inlineCallbacks
    def test_signing_key(self) -> Any:
        yield self.ok("queues", "put", "signed", "--set", "signing=true")
        yield self.ok("routings", "put", "orders", "signed")
        out = yield self.ok("--json", "signing-key", "show", "signed")
        key = json.loads(out)
        out = yield self.ok("signing-key", "show", "signed")
        self.assertRegex(out, r"(?m)^current\s+whsec_")
        code, out, err = yield self.fireworq("signing-key", "rotate", "signed", stdin="n\n")
        self.assertEqual(code, 1, "rotate asks first")
        out = yield self.ok("--json", "signing-key", "rotate", "signed", "--yes")
        rotated = json.loads(out)
        self.assertEqual(rotated["previous"], key["current"])
        yield self.ok("push", "orders", self.worker.url("/success"), "--payload", '{"n": 1}')
        yield self.delivered(1)
        delivery = self.worker.deliveries[0]
        WebhookVerifier.from_signing_key(rotated).verify(delivery.body, delivery.headers)
        WebhookVerifier(rotated["current"]).verify(delivery.body, delivery.headers)
        code, out, err = yield self.fireworq("signing-key", "show", "default")
        self.assertEqual(code, 4, "the default queue does not sign")

    @inlineCallbacks
    def test_schedules(self) -> Any:
        out = yield self.ok("--json", "schedules", "put", "nightly", "--cron", "30 2 * * *", "--category", "reports",
                            "--worker", self.worker.url("/success"), "--payload", '{"kind": "nightly"}',
                            "--timezone", "Europe/Berlin", "--catch-up", "last", "--set", "max_retries=2")
        defined = json.loads(out)
        self.assertEqual((defined["cron"], defined["max_retries"], defined["payload"]), ("30 2 * * *", 2, {"kind": "nightly"}))
        out = yield self.ok("schedules")
        self.assertRegex(out, r"(?m)^nightly\s+30 2 \* \* \*\s+Europe/Berlin\s+reports\s+True\s+20\d\d-")
        out = yield self.ok("schedules", "run", "nightly")
        self.assertRegex(out, r"pushed job \d+ to queue default")
        yield self.delivered(1)
        self.assertEqual(json.loads(self.worker.deliveries[0].body), {"kind": "nightly"})
        out = yield self.ok("--json", "schedules", "show", "nightly")
        self.assertEqual(json.loads(out)["last_job"]["queue_name"], "default")
        code, out, err = yield self.fireworq("schedules", "put", "bad", "--cron", "61 * * * *", "--category", "c",
                                             "--worker", self.worker.url("/"))
        self.assertEqual(code, 1)
        self.assertIn("cron", err)
        out = yield self.ok("schedules", "delete", "nightly")
        self.assertEqual(out.strip(), "deleted schedule nightly")
        code, out, err = yield self.fireworq("schedules", "show", "nightly")
        self.assertEqual(code, 4)

class AuthCommandTests(CommandCase):
    """Tokens, whoami, refusals and ``tail`` with authentication on."""

    settings = {"auth": "on", "admin_token": ADMIN_TOKEN}

    @inlineCallbacks
    def test_tokens_and_whoami(self) -> Any:
        out = yield self.ok("--json", "tokens", "create", "ci", "--scope", "push", "--scope", "read",
                            "--queues", "ci-*", "--rate", "50", token=ADMIN_TOKEN)
        made = json.loads(out)
        self.assertTrue(made["token"].startswith("fwq_"))
        out = yield self.ok("tokens", token=ADMIN_TOKEN)
        self.assertRegex(out, rf"(?m)^{made['id']}\s+ci\s+push, read\s+ci-\*\s+50\s+50\s+20\d\d-\d\d-\d\dT")
        self.assertNotIn(made["token"], out)
        out = yield self.ok("--json", "tokens", "show", made["id"], token=ADMIN_TOKEN)
        self.assertEqual(json.loads(out)["name"], "ci")
        out = yield self.ok("whoami", token=made["token"])
        self.assertRegex(out, r"(?m)^name\s+ci$")
        self.assertRegex(out, r"(?m)^scopes\s+\[\"push\", \"read\"\]$")
        code, out, err = yield self.fireworq("tokens", token=made["token"])
        self.assertEqual(code, 5, "403: exit 5")
        self.assertIn("403", err)
        code, out, err = yield self.fireworq("queues")
        self.assertEqual(code, 5, "401 without a token")
        self.assertIn("401", err)
        out = yield self.ok("tokens", "revoke", made["id"], token=ADMIN_TOKEN)
        self.assertEqual(out.strip(), f"revoked token {made['id']}")
        code, out, err = yield self.fireworq("whoami", token=made["token"])
        self.assertEqual(code, 5)
        code, out, err = yield self.fireworq("tokens", "revoke", made["id"], token=ADMIN_TOKEN)
        self.assertEqual(code, 4)

    @inlineCallbacks
    def test_tail_with_the_token(self) -> Any:
        def start(*args: str) -> Any:
            process = subprocess.Popen([sys.executable, "-m", "fireworq.client.cli", *args, "tail", "--stats"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env(ADMIN_TOKEN))
            self.addCleanup(lambda: process.poll() is None and process.kill())
            return process

        as_json, as_text = start("--json"), start()
        items: List[Dict[str, Any]] = []
        lines: List[str] = []

        def read_until(process: Any, into: List[Any], parse: Any, done: Any) -> None:
            deadline = time.monotonic() + 60
            for line in process.stdout:
                into.append(parse(line))
                if done() or time.monotonic() > deadline:
                    return

        # Each stream opens with a stats event per queue; then push and read the job's events.
        yield threads.deferToThread(read_until, as_json, items, json.loads, lambda: any(i["type"] == "stats" for i in items))
        yield threads.deferToThread(read_until, as_text, lines, str.rstrip, lambda: any(" stats " in x for x in lines))
        _, job = yield self.push_with_token(url=self.worker.url("/success"), payload={"n": 1})
        yield threads.deferToThread(
            read_until, as_json, items, json.loads,
            lambda: any(i["type"] == "job.completed" and i["data"]["job"]["id"] == job["id"] for i in items))
        yield threads.deferToThread(read_until, as_text, lines, str.rstrip, lambda: any("job.completed" in x for x in lines))
        for process in (as_json, as_text):
            process.terminate()
            process.wait(30)
        types = [i["type"] for i in items if i["type"].startswith("job.") and i["data"]["job"]["id"] == job["id"]]
        self.assertEqual(types, ["job.pushed", "job.completed"])
        completed = [x for x in lines if "job.completed" in x]
        self.assertRegex(completed[0], rf"^20\d\d-\S+Z job\.completed\s+default {job['id']} tailed success 200 done$")
        # Without a token tail exits 5 with the server's 401.
        code, out, err = yield self.fireworq("tail")
        self.assertEqual(code, 5, err)
        self.assertIn("401", err)

    def push_with_token(self, **job: Any) -> Any:
        """Push through the client with the admin token (the test server helper sends none)."""
        from fireworq.client import Client

        def push() -> Any:
            with Client(self.server.url(""), token=ADMIN_TOKEN) as client:
                pushed = client.push("tailed", **job)
                return 200, pushed.raw

        return threads.deferToThread(push)
