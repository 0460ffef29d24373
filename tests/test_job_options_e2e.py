"""
Job options (B7) with real processes: ``twistd fireworq`` servers, a real
HTTP worker, and for MySQL a throwaway MariaDB (tests/support/mariadb.py).

  - priorities decide the order of delivery (sqlite and MySQL);
  - concurrent pushes of one idempotency key through two nodes on one MySQL
    database store one job, and every answer is that job's.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import treq
from twisted.internet.defer import gatherResults, inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.mariadb import database_for
from tests.support.polling import wait_until
from tests.test_multinode import ClusterTestCase

#: Priorities pushed while the only worker is busy, in push order.
PRIORITIES = [0, 5, -3, 5, 100, 0, -100, 7]


@inlineCallbacks
def call(process: Any, method: str, path: str, body: Any = None, headers: Optional[Dict[bytes, List[bytes]]] = None):
    """(code, JSON body, response headers) of one API call."""
    response = yield treq.request(
        method, process.url(path), data=None if body is None else json.dumps(body).encode(),
        headers=headers or {}, timeout=10,
    )
    content = yield response.content()
    return response.code, json.loads(content), response.headers


class PriorityOrderMixin:
    """Jobs that wait for a worker are delivered highest priority first, then in push order."""

    def start(self) -> Any:
        raise NotImplementedError

    @inlineCallbacks
    def test_priority_order_of_delivery(self):
        server = yield self.start()
        code, _ = yield server.call("PUT", "/queue/prio", {"max_workers": 1, "polling_interval": 50})
        self.assertEqual(code, 200)
        code, _ = yield server.call("PUT", "/routing/prio", {"queue_name": "prio"})
        self.assertEqual(code, 200)
        # The only worker is busy for a while: the next jobs wait, claimed.
        code, blocker = yield server.call("POST", "/job/prio", {"url": self.worker.url("/sleep/2/success")})
        self.assertEqual(code, 200, blocker)
        yield wait_until(lambda: len(self.worker.deliveries) == 1, 15, message="the blocking job to be delivered")
        pushed: List[Tuple[int, int]] = []
        for priority in PRIORITIES:
            code, body = yield server.call(
                "POST", "/job/prio", {"url": self.worker.url("/success"), "priority": priority})
            self.assertEqual((code, body["priority"]), (200, priority), body)
            pushed.append((priority, body["id"]))
        yield wait_until(lambda: len(self.worker.deliveries) == 1 + len(PRIORITIES), 30,
                         message=lambda: f"every job delivered (got {len(self.worker.deliveries)})")
        order = [d.job_id for d in self.worker.deliveries[1:]]
        expected = [job_id for _, job_id in sorted(pushed, key=lambda p: (-p[0], p[1]))]
        self.assertEqual(order, expected)


class SqlitePriorityTests(PriorityOrderMixin, ServerTestCase):
    def start(self) -> Any:
        return self.server()


class MySQLPriorityTests(PriorityOrderMixin, ServerTestCase):
    driver = "mysql"

    def start(self) -> Any:
        return self.server(mysql_dsn=database_for(self, "prio").dsn, queue_default="")


class IdempotentPushTests(ClusterTestCase):
    """Two nodes, one MySQL database: one key, one job."""

    @inlineCallbacks
    def test_concurrent_pushes_of_one_key_through_two_nodes(self):
        first = yield self.start_node("a")
        second = yield self.start_node("b")
        nodes = [first.process, second.process]
        code, _ = yield first.call("PUT", "/queue/idem", {"max_workers": 4})
        self.assertEqual(code, 200)
        code, _ = yield first.call("PUT", "/routing/idem", {"queue_name": "idem"})
        self.assertEqual(code, 200)
        yield wait_until(lambda: second.call("GET", "/routing/idem").addCallback(lambda r: r[0] == 200), 15,
                         message="the routing to reach node b")
        url = self.worker.url("/success")
        calls = []
        for n in range(16):
            process = nodes[n % 2]
            if n % 3 == 0:
                calls.append(call(process, "POST", "/job/idem", {"url": url, "payload": n},
                                  {b"Idempotency-Key": [b"order-42"]}))
            else:
                calls.append(call(process, "POST", "/job/idem", {"url": url, "payload": n, "idempotency_key": "order-42"}))
        answers = yield gatherResults(calls)
        self.assertEqual({code for code, _, _ in answers}, {200})
        bodies = [body for _, body, _ in answers]
        self.assertEqual(len({json.dumps(b, sort_keys=True) for b in bodies}), 1, bodies)
        stored = [body for _, body, headers in answers if not headers.hasHeader(b"Idempotent-Replayed")]
        self.assertEqual(len(stored), 1)
        job_id = bodies[0]["id"]
        yield wait_until(lambda: [d.job_id for d in self.worker.deliveries] == [job_id], 20,
                         message=lambda: f"one delivery of job {job_id} (got {[d.job_id for d in self.worker.deliveries]})")

        def empty():
            lists = [n.call("GET", f"/queue/idem/{state}") for n in (first, second)
                     for state in ("grabbed", "waiting", "deferred")]
            return gatherResults(lists).addCallback(lambda rs: all(r[1]["jobs"] == [] for r in rs))

        # Every push was answered (committed): no other job of the key exists.
        yield wait_until(empty, 20, message="the queue to be empty")
        self.assertEqual([d.job_id for d in self.worker.deliveries], [job_id])
        # A later push, after the job finished, is still answered with it.
        code, again, headers = yield call(second.process, "POST", "/job/idem",
                                          {"url": url, "idempotency_key": "order-42"})
        self.assertEqual((code, again, headers.getRawHeaders(b"Idempotent-Replayed")), (200, bodies[0], [b"true"]))
