"""
The worker example of the README, run as written (only its port changed)
against a real server: it must handle every kind of payload a push can
carry -- a JSON object, a string (delivered as its raw text, not as JSON),
a number, and none at all (an empty body) -- and answer success to each
(issue 11, bug 10: it used to crash on string and empty payloads).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

from twisted.internet.defer import inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until
from tests.support.server import REPO, free_port


def readme_worker() -> str:
    """The Python source of the README's worker example."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    workers = [block for block in blocks if block.startswith("# worker.py")]
    assert len(workers) == 1, "the README has one worker example"
    return workers[0]


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class ReadmeWorkerTests(ServerTestCase):
    @inlineCallbacks
    def test_the_readme_worker_handles_every_payload(self):
        source = readme_worker()
        self.assertIn('("127.0.0.1", 3000)', source)
        port = free_port()
        path = os.path.join(self.workdir, "worker.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source.replace('("127.0.0.1", 3000)', f'("127.0.0.1", {port})'))
        output_path = os.path.join(self.workdir, "worker.out")
        output = open(output_path, "wb")
        self.addCleanup(output.close)
        process = subprocess.Popen([sys.executable, "-u", path], stdout=output, stderr=subprocess.STDOUT)
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        yield wait_until(lambda: accepts(port), 10, message="the README worker to listen")

        server = yield self.server()
        url = f"http://127.0.0.1:{port}/work"
        payloads = ({"payload": {"id": 12345}}, {"payload": "hello"}, {"payload": 7}, {}, {"payload": ""})
        for extra in payloads:
            code, answer = yield server.call("POST", "/job/foo", dict(url=url, **extra))
            self.assertEqual(code, 200, answer)

        def lines() -> list:
            with open(output_path, encoding="utf-8") as f:
                return [line.strip() for line in f if line.startswith("working on")]

        yield wait_until(lambda: len(lines()) >= len(payloads), 20, message=lambda: f"5 jobs worked on: {lines()}")
        self.assertEqual(
            sorted(lines()),
            sorted([
                "working on {'id': 12345} attempt 1",
                "working on 'hello' attempt 1",
                "working on 7 attempt 1",
                "working on None attempt 1",
                "working on None attempt 1",
            ]),
        )
        self.assertIsNone(process.poll(), "the worker is still running")

        @inlineCallbacks
        def all_done():
            code, stats = yield server.call("GET", "/queue/default/stats")
            return stats.get("total_successes") == len(payloads)

        yield wait_until(all_done, 20, message="every job to succeed")
        code, failed = yield server.call("GET", "/queue/default/failed")
        self.assertEqual(failed["failed_jobs"], [])
