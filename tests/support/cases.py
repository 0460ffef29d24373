"""
The base of the integration tests that run real processes: a real worker
(L{tests.support.worker.Worker}) on loopback, a work directory, and a
factory of real ``twistd fireworq`` servers (L{FireworqProcess}); every
process is stopped when the test ends.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.support.polling import wait_until
from tests.support.server import FireworqProcess
from tests.support.worker import Worker


class ServerTestCase(TestCase):
    """
    Starts a worker and offers L{server}, which starts a server with the
    settings a test gives over these defaults: the class's L{driver}, a
    default queue polled every 100 ms, a sqlite file in the work directory,
    a 5 s shutdown timeout.
    """

    timeout = 120
    #: The store of the servers a test starts.
    driver = "sqlite"

    def setUp(self) -> None:
        self.worker = Worker()
        self.worker.start()
        self.addCleanup(self.worker.stop)
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)

    @inlineCallbacks
    def server(self, **settings: Any) -> Any:
        """Start a server (killed at the end of the test) and fire with it."""
        settings.setdefault("driver", self.driver)
        settings.setdefault("queue_default", "default")
        settings.setdefault("sqlite_path", os.path.join(self.workdir, "fireworq.sqlite3"))
        settings.setdefault("queue_default_polling_interval", "100")
        settings.setdefault("shutdown_timeout", "5")
        server = FireworqProcess(self.workdir, {k: str(v) for k, v in settings.items()})
        self.addCleanup(server.kill)
        yield server.start()
        return server

    def push(self, server: FireworqProcess, category: str, **job: Any) -> Deferred:
        """``POST /job/{category}`` with ``job`` as the body."""
        return server.call("POST", f"/job/{category}", job)

    def delivered(self, count: int, timeout: float = 15.0) -> Deferred:
        """Fire once the worker has received ``count`` deliveries."""
        return wait_until(
            lambda: len(self.worker.deliveries) >= count,
            timeout,
            message=lambda: f"{count} deliveries (got {len(self.worker.deliveries)})",
        )
