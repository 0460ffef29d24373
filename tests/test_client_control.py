"""
The client's queue-control, cancel, signing and TLS calls against real
server processes and a real worker:

  - pause / resume / purge (a paused queue takes pushes and delivers
    nothing until resumed; purge answers how many it deleted; 404 for an
    undefined queue);
  - cancel of a waiting job (200) and of a job being delivered (202,
    ``Job.canceling``; the worker's connection is closed, the job is neither
    retried nor in the failure log);
  - signed deliveries verified by L{fireworq.client.WebhookVerifier} from
    the queue's signing key, across a key rotation (both secrets verify
    during the overlap);
  - an API served over ``bind=ssl:`` reached with ``ca_file``, and over
    ``bind=unix:`` with ``uds`` (and ``fireworq --unix-socket``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from twisted.internet.defer import inlineCallbacks

from fireworq.client import (
    AsyncClient,
    Client,
    NotFound,
    RetryPolicy,
    SignatureError,
    TransportError,
    WebhookVerifier,
    parse_delivery,
)
from fireworq.client.worker import sign
from tests.support.cases import ServerTestCase
from tests.support.client_cases import ClientServerCase, in_thread
from tests.support.certs import ThrowawayCA
from tests.support.polling import pause, wait_until
from tests.support.server import REPO, FireworqProcess


class ControlTests(ClientServerCase):
    """One real server (sqlite) and the synchronous client."""

    @inlineCallbacks
    def test_pause_resume_purge(self) -> Any:
        yield self.call("put_queue", "p", polling_interval=100)
        yield self.call("put_routing", "held", "p")
        paused = yield self.call("pause", "p")
        self.assertTrue(paused.paused)
        shown = yield self.call("queue", "p")
        self.assertTrue(shown.paused)
        stats = yield self.call("queue_stats", "p")
        self.assertIs(stats.get("paused"), True)
        job = yield self.call("push", "held", self.worker.url("/success"))
        # Ten polling intervals: a queue that dispatched would have delivered it.
        yield pause(1.0)
        self.assertEqual(self.worker.deliveries, [])
        waiting = yield self.call("list_jobs", "p", "waiting")
        self.assertEqual([j.id for j in waiting.items], [job.id])
        resumed = yield self.call("resume", "p")
        self.assertFalse(resumed.paused)
        yield self.delivered(1)
        self.assertEqual(self.worker.deliveries[0].job_id, job.id)

        for _ in range(3):
            yield self.call("push", "held", self.worker.url("/success"), run_after=3600)
        purged = yield self.call("purge", "p")
        self.assertEqual(purged, 3)
        deferred = yield self.call("list_jobs", "p", "deferred")
        self.assertEqual(deferred.items, [])
        for method in ("pause", "resume", "purge"):
            error = yield self.assertFailure(self.call(method, "nosuch"), NotFound)
            self.assertIn("nosuch", error.message)

    @inlineCallbacks
    def test_cancel_waiting_and_grabbed_jobs(self) -> Any:
        later = yield self.call("push", "c", self.worker.url("/success"), run_after=3600)
        gone = yield self.call("cancel_job", "default", later.id)
        self.assertEqual((gone.id, gone.canceling), (later.id, False))

        busy = yield self.call("push", "c", self.worker.url("/hang"), max_retries=3, retry_delay=1)
        yield self.delivered(1)
        canceled = yield self.call("cancel_job", "default", busy.id)
        self.assertEqual(canceled.id, busy.id)
        self.assertTrue(canceled.canceling, canceled.raw)
        self.assertEqual(canceled.raw.get("state"), "grabbed")
        # The delivery is aborted (the worker sees its connection closed) and the job deleted.
        yield wait_until(lambda: busy.id in self.worker.lost, 15, 0.05, "the delivery to be aborted")

        def deleted() -> Any:
            d = self.call("job", "default", busy.id)
            d.addCallbacks(lambda _: False, lambda f: f.check(NotFound) is not None)
            return d

        yield wait_until(deleted, 15, 0.1, "the canceled job to be deleted")
        failed = yield self.call("list_failed", "default")
        self.assertEqual(failed.items, [], "a canceled job is not written to the failure log")
        self.assertEqual(len(self.worker.deliveries), 1, "a canceled job is not retried")
        yield self.assertFailure(self.call("cancel_job", "default", busy.id), NotFound)

    @inlineCallbacks
    def test_signed_deliveries_verify_across_a_rotation(self) -> Any:
        queue = yield self.call("put_queue", "signed", signing=True)
        self.assertTrue(queue.signing)
        yield self.call("put_routing", "orders", "signed")
        key = yield self.call("signing_key", "signed")
        self.assertTrue(key["current"].startswith("whsec_"))
        self.assertIsNone(key["previous"])

        first = yield self.call("push", "orders", self.worker.url("/success"), {"order": 1})
        yield self.delivered(1)
        delivery = self.worker.deliveries[0]
        WebhookVerifier.from_signing_key(key).verify(delivery.body, delivery.headers)
        parsed = parse_delivery(delivery.headers)
        self.assertEqual((parsed.job_id, parsed.queue, parsed.category, parsed.attempt),
                         (first.id, "signed", "orders", 1))
        self.assertEqual(parsed.webhook_id, f"signed:{first.id}")
        self.assertEqual(parsed.key, parsed.webhook_id)
        # A tampered body, or another queue's secret, does not verify.
        with self.assertRaises(SignatureError):
            WebhookVerifier(key["current"]).verify(delivery.body.replace(b"1", b"2"), delivery.headers)
        other = "whsec_" + "A" * 43 + "="
        with self.assertRaises(SignatureError):
            WebhookVerifier(other).verify(delivery.body, delivery.headers)
        # The server signs as the verifier expects (same function, same bytes).
        stamp = int(delivery.headers["webhook-timestamp"])
        self.assertIn(sign(key["current"], parsed.webhook_id, stamp, delivery.body),
                      delivery.headers["webhook-signature"].split())

        rotated = yield self.call("rotate_signing_key", "signed")
        self.assertEqual(rotated["previous"], key["current"])
        self.assertNotEqual(rotated["current"], key["current"])
        self.assertTrue(rotated["previous_expires_at"])
        yield self.call("push", "orders", self.worker.url("/success"), {"order": 2})
        yield self.delivered(2)
        second = self.worker.deliveries[1]
        self.assertEqual(len(second.headers["webhook-signature"].split()), 2, "both secrets sign during the overlap")
        for secret in (rotated["current"], key["current"]):
            WebhookVerifier(secret).verify(second.body, second.headers)
        self.assertEqual(json.loads(second.body), {"order": 2})

        yield self.call("put_queue", "plain")
        error = yield self.assertFailure(self.call("signing_key", "plain"), NotFound)
        self.assertTrue(error.message)
        yield self.assertFailure(self.call("rotate_signing_key", "nosuch"), NotFound)


class TLSTests(ServerTestCase):
    """An API served over ``bind=ssl:`` with a private CA's certificate."""

    @inlineCallbacks
    def test_ca_file(self) -> Any:
        ca = ThrowawayCA(os.path.join(self.workdir, "ca"))
        cert = ca.issue(["localhost"])
        port = FireworqProcess(self.workdir).port
        server = FireworqProcess(self.workdir, {
            "driver": "sqlite", "sqlite_path": os.path.join(self.workdir, "tls.sqlite3"), "queue_default": "default",
            "queue_default_polling_interval": "100", "shutdown_timeout": "5",
            "bind": f"ssl:{port}:interface=127.0.0.1:privateKey={cert.key_path}:certKey={cert.cert_path}",
        }, port=port)
        self.addCleanup(server.kill)
        server.spawn()
        client = Client(f"https://localhost:{port}", ca_file=ca.ca_path,
                        retry=RetryPolicy(attempts=300, backoff=0.05, max_delay=0.1))
        self.addCleanup(client.close)
        yield in_thread(client.queues)  # retried while the server starts
        health = yield in_thread(client.health)
        self.assertEqual(health["status"], "ok")
        job = yield in_thread(client.push, "tls", self.worker.url("/success"), {"a": 1})
        self.assertEqual(job.queue_name, "default")
        yield self.delivered(1)
        # Without the CA the server's certificate is refused.
        untrusting = Client(f"https://localhost:{port}", retry=RetryPolicy(attempts=1))
        self.addCleanup(untrusting.close)
        error = yield self.assertFailure(in_thread(untrusting.queues), TransportError)
        self.assertIn("certificate", str(error).lower())
        # FIREWORQ_CA_FILE does the same as ca_file.
        os.environ["FIREWORQ_CA_FILE"] = ca.ca_path
        self.addCleanup(os.environ.pop, "FIREWORQ_CA_FILE", None)
        from_env = Client(f"https://localhost:{port}")
        self.addCleanup(from_env.close)
        queues = yield in_thread(from_env.queues)
        self.assertEqual([q.name for q in queues], ["default"])


class UnixSocketTests(ServerTestCase):
    """An API served over ``bind=unix:``, reached with ``uds`` and ``fireworq --unix-socket``."""

    @inlineCallbacks
    def test_uds(self) -> Any:
        # A short path: Unix socket paths are limited to about 100 bytes.
        directory = tempfile.mkdtemp(prefix="fwq")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", directory]))
        path = os.path.join(directory, "api.sock")
        server = FireworqProcess(self.workdir, {
            "driver": "sqlite", "sqlite_path": os.path.join(self.workdir, "uds.sqlite3"), "queue_default": "default",
            "queue_default_polling_interval": "100", "shutdown_timeout": "5", "bind": f"unix:{path}",
        })
        self.addCleanup(server.kill)
        server.spawn()
        client = Client("http://fireworq", uds=path, retry=RetryPolicy(attempts=300, backoff=0.05, max_delay=0.1))
        self.addCleanup(client.close)
        # Retried while the server starts; right after it listens the default queue may not be made yet.
        yield wait_until(lambda: in_thread(client.queues).addCallback(lambda qs: [q.name for q in qs] == ["default"]),
                         30, 0.05, "the default queue over the socket")
        job = yield in_thread(client.push, "sock", self.worker.url("/success"), {"a": 1})
        yield self.delivered(1)
        self.assertEqual(self.worker.deliveries[0].job_id, job.id)

        async def from_asyncio() -> Any:
            async with AsyncClient("http://fireworq", uds=path) as aclient:
                return await aclient.queue("default")

        queue = yield in_thread(lambda: asyncio.run(from_asyncio()))
        self.assertEqual(queue.name, "default")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env.update(PYTHONPATH=REPO, FIREWORQ_UNIX_SOCKET=path, FIREWORQ_URL="http://fireworq")
        done = yield in_thread(subprocess.run, [sys.executable, "-m", "fireworq.client.cli", "--json", "queues"],
                               capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([q["name"] for q in json.loads(done.stdout)], ["default"])
