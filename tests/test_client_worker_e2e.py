"""
The worker example of docs/client.md ("In a worker"), run as written as its
own process, behind a real server's signing queue: it verifies each
delivery with L{fireworq.client.WebhookVerifier} and the queue's secret from
the signing-key call, and answers success; across a key rotation a worker
that still has the old secret keeps accepting (both secrets sign during the
overlap); a worker given another secret refuses the delivery with a
permanent failure, so the job lands in the failure log with the verifier's
reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from tests.support.client_cases import ClientServerCase
from tests.support.polling import wait_until
from tests.support.server import REPO, free_port
from tests.test_readme_worker import accepts


def docs_worker() -> str:
    """The Python source of the worker example of docs/client.md."""
    with open(os.path.join(REPO, "docs", "client.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "WebhookVerifier(" in b and "HTTPServer" in b]
    assert len(blocks) == 1, "docs/client.md has one worker example"
    return blocks[0]


class SignedWorkerTests(ClientServerCase):
    """The documented worker behind a signing queue."""

    @inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.source = os.path.join(self.workdir, "worker.py")
        with open(self.source, "w", encoding="utf-8") as f:
            f.write(docs_worker())

    @inlineCallbacks
    def start_worker(self, secrets: List[str]) -> Any:
        """Run the example with these secrets; fire with its URL once it listens."""
        port = free_port()
        env = dict(os.environ, PYTHONPATH=REPO, PORT=str(port), SIGNING_SECRETS=" ".join(secrets))
        log = open(os.path.join(self.workdir, f"worker-{port}.log"), "w")
        self.addCleanup(log.close)
        process = subprocess.Popen([sys.executable, "-u", self.source], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
        yield wait_until(lambda: accepts(port), 30, 0.05, "the worker to listen")
        return f"http://127.0.0.1:{port}/work"

    @inlineCallbacks
    def wait_for(self, key: str, count: int) -> Any:
        def done() -> Any:
            d = self.call("queue_stats", "signed")
            d.addCallback(lambda stats: stats[key] >= count)
            return d

        yield wait_until(done, 30, 0.1, f"{count} {key}")

    @inlineCallbacks
    def test_verified_refused_and_rotated(self) -> Any:
        yield self.call("put_queue", "signed", signing=True)
        yield self.call("put_routing", "orders", "signed")
        key = yield self.call("signing_key", "signed")
        worker = yield self.start_worker([key["current"]])
        yield self.call("push", "orders", worker, {"order": 1})
        yield self.wait_for("total_successes", 1)

        # Rotated: the worker with only the old secret still accepts during the overlap.
        rotated = yield self.call("rotate_signing_key", "signed")
        self.assertEqual(rotated["previous"], key["current"])
        yield self.call("push", "orders", worker, {"order": 2})
        yield self.wait_for("total_successes", 2)

        # A worker with another secret refuses: the job goes to the failure log, saying why.
        stranger = yield self.start_worker(["whsec_" + "C" * 43 + "="])
        job = yield self.call("push", "orders", stranger, {"order": 3}, max_retries=2)
        # The failure log is written by the completion batcher, after the counters.
        failed = yield wait_until(
            lambda: self.call("list_failed", "signed").addCallback(lambda page: page.items and page),
            30, 0.1, "the failure-log entry")
        yield self.wait_for("total_permanent_failures", 1)
        self.assertEqual([f.job_id for f in failed.items], [job.id])
        self.assertEqual(failed.items[0].result.status, "permanent-failure")
        self.assertIn("no signature matches", failed.items[0].result.message)
        stats = yield self.call("queue_stats", "signed")
        self.assertEqual((stats["total_successes"], stats["total_failures"]), (2, 1), "refused once, not retried")
