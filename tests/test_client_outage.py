"""
The client during a real database outage: a ``twistd fireworq`` node on a
throwaway MariaDB that is down answers 503; the client repeats idempotent
calls (with backoff) until the database is back, and never repeats a push
without an idempotency key, which raises L{ServiceUnavailable} with the
server's message.  These tests fail rather than skip when no MariaDB can be
had.
"""

from __future__ import annotations

import os
from typing import Any, List

from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks

from fireworq.client import Client, RetryPolicy, ServiceUnavailable
from tests.support.cases import ServerTestCase
from tests.support.mariadb import private_server
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess


class OutageTests(ServerTestCase):
    """503 answers of a node whose database is down."""

    timeout = 180

    @inlineCallbacks
    def test_idempotent_calls_wait_out_the_outage_pushes_do_not(self) -> Any:
        mariadb = yield threads.deferToThread(private_server, True)
        self.addCleanup(mariadb.cleanup)
        dsn = mariadb.fresh_database("client").dsn
        yield threads.deferToThread(mariadb.stop)
        server = FireworqProcess(os.path.join(self.workdir, "node"), {
            "driver": "mysql", "mysql_dsn": dsn, "queue_default": "default", "shutdown_timeout": "5",
        })
        self.addCleanup(server.kill)
        server.spawn()
        yield wait_until(
            lambda: server.call("GET", "/health").addCallback(lambda answer: answer[0] == 503),
            30, 0.05, "the node to answer 503",
        )
        retries: List[Any] = []
        client = Client(server.url(""), retry=RetryPolicy(attempts=400, backoff=0.1, max_delay=0.3),
                        on_retry=lambda call, attempt, wait, error: retries.append((call.path, error)))
        self.addCleanup(client.close)

        health = yield threads.deferToThread(client.health)
        self.assertIn(health["status"], ("unavailable", "starting"))
        error = yield self.assertFailure(
            threads.deferToThread(client.push, "c", self.worker.url("/success")), ServiceUnavailable
        )
        self.assertTrue(error.message)
        self.assertEqual(retries, [], "a push without an idempotency key is never repeated")

        pending = threads.deferToThread(client.queues)
        yield wait_until(lambda: len(retries) >= 3, 30, 0.05, "queues() to be retried")
        self.assertTrue(all(isinstance(e, ServiceUnavailable) for _, e in retries), retries)
        yield threads.deferToThread(mariadb.start)
        queues = yield pending
        # The call went through once the database was back.  (Its list may
        # still lack the default queue: the node creates it just after.)
        self.assertIsInstance(queues, list)
        yield wait_until(lambda: threads.deferToThread(client.health).addCallback(lambda h: h["status"] == "ok"),
                         30, 0.1, "the node to become healthy")
        job = yield threads.deferToThread(client.push, "c", self.worker.url("/success"))
        self.assertEqual(job.queue_name, "default")
        yield self.delivered(1)
