"""
Several real ``twistd fireworq`` processes on one MySQL database (a fresh
database of the throwaway MariaDB of tests/support/mariadb.py), a real
worker, HTTP over loopback (protocol A3, A4, B2; design.md "Multi-node"):

  - definitions and routings made on one node reach the others within
    ``config_refresh_interval``, deletions included, and an unchanged PUT
    does not restart a dispatcher;
  - two nodes split the leases of nine queues, each queue dispatched by
    exactly one node, which ``/queue/{q}/node`` names on every node;
  - a node started later takes its share of leases while jobs flow, and no
    accepted job is lost or delivered twice.

L{ClusterTestCase} and L{PushStream} are shared with tests/test_mysql_faults.py.
These tests fail rather than skip when no MariaDB can be had.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.python import log

from tests.support.mariadb import database_for
from tests.support.polling import pause, wait_until
from tests.support.cases import ServerTestCase
from tests.support.server import FireworqProcess
from tests.support.worker import Delivery

#: Lease time-to-live of the nodes (ms): short, to keep the tests quick.
LEASE_TTL_MS = 1000

#: config_refresh_interval of the nodes (ms).
REFRESH_MS = 700

#: Seconds a change may take beyond config_refresh_interval to reach another
#: node (a reload is a few queries; the machine may be busy).
REFRESH_SLACK = 1.5

#: A job is identified by its queue and its id (ids are unique per queue).
JobKey = Tuple[str, int]


def job_key(delivery: Delivery) -> JobKey:
    """The (queue, job id) of a delivery."""
    return delivery.headers.get("x-fireworq-queue", ""), delivery.job_id


class Node:
    """A server process of a cluster, with the API calls the tests use."""

    def __init__(self, name: str, process: FireworqProcess) -> None:
        self.name = name
        self.process = process

    def __repr__(self) -> str:
        return f"<node {self.name} port {self.process.port}>"

    def call(self, method: str, path: str, body: Any = None) -> Deferred:
        return self.process.call(method, path, body)

    def owns(self, node_info: Any) -> bool:
        """Whether a ``/queue/{q}/node`` answer names this process."""
        if not isinstance(node_info, dict) or self.process.process is None:
            return False
        # A node id is host:port:pid:random, with the port of the bind
        # setting -- 0 now that test servers bind port 0 -- so the pid says
        # which process it is.
        parts = str(node_info.get("id", "")).split(":")
        return len(parts) >= 4 and parts[-2] == str(self.process.process.pid)

    @inlineCallbacks
    def stats(self) -> Any:
        """``GET /queues/stats``: {queue: counters} of the queues this node knows."""
        code, body = yield self.call("GET", "/queues/stats")
        if code != 200:
            raise AssertionError(f"{self}: /queues/stats answered {code}: {body}")
        return body

    @inlineCallbacks
    def queue_stats(self, queue: str) -> Any:
        """``GET /queue/{q}/stats``."""
        code, body = yield self.call("GET", f"/queue/{queue}/stats")
        if code != 200:
            raise AssertionError(f"{self}: /queue/{queue}/stats answered {code}: {body}")
        return body

    @inlineCallbacks
    def active_queues(self) -> Any:
        """The queues this node says it is active for (active_nodes == 1)."""
        stats = yield self.stats()
        return {name for name, counters in stats.items() if counters["active_nodes"] == 1}

    @inlineCallbacks
    def holder(self, queue: str) -> Any:
        """``GET /queue/{q}/node``: the holder's object, or None on 404."""
        code, body = yield self.call("GET", f"/queue/{queue}/node")
        if code == 404:
            return None
        if code != 200:
            raise AssertionError(f"{self}: /queue/{queue}/node answered {code}: {body}")
        return body

    def error_log(self) -> List[Dict[str, Any]]:
        """The parsed lines of the error log (stderr)."""
        records = []
        for line in self.process.stderr().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def logged(self, text: str) -> int:
        """How many error-log messages contain ``text``."""
        return sum(1 for r in self.error_log() if text in r.get("message", ""))


class PushStream:
    """
    Pushes jobs to some nodes at a steady pace until stopped, one push at a
    time per node, and records every answer: accepted jobs (200) by
    (queue, id), other status codes, failures without an answer, and how
    long each push took.

    @param categories: pushed in turn (each node keeps its own turn).
    @param interval: seconds between the end of a push and the next one on
        the same node (the pace of the load generator, not a wait for a
        condition).
    """

    def __init__(self, nodes: Sequence[Node], categories: Sequence[str], url: str,
                 interval: float = 0.02) -> None:
        self.nodes = list(nodes)
        self.categories = list(categories)
        self.url = url
        self.interval = interval
        self.accepted: Dict[JobKey, Tuple[str, float]] = {}
        #: (node name, sent at, seconds taken, status code or None, body or error text)
        self.answers: List[Tuple[str, float, float, Optional[int], Any]] = []
        self._running = False
        self._loops: List[Deferred] = []

    def start(self) -> None:
        """Start one push loop per node."""
        self._running = True
        for node in self.nodes:
            self._loops.append(self._loop(node))

    def add(self, node: Node) -> None:
        """Start pushing to one more node."""
        self.nodes.append(node)
        if self._running:
            self._loops.append(self._loop(node))

    def remove(self, node: Node) -> None:
        """Stop pushing to ``node`` (its loop ends after its current push)."""
        self.nodes = [n for n in self.nodes if n is not node]

    def stop(self) -> Deferred:
        """Stop every loop; fire when the last push has been answered."""
        self._running = False
        loops, self._loops = self._loops, []
        return gatherResults(loops)

    @inlineCallbacks
    def _loop(self, node: Node) -> Any:
        turn = 0
        while self._running and node in self.nodes:
            category = self.categories[turn % len(self.categories)]
            turn += 1
            sent = time.time()
            try:
                code, body = yield node.call("POST", f"/job/{category}", {"url": self.url})
            except Exception as e:  # refused, reset, timeout: no answer
                self.answers.append((node.name, sent, time.time() - sent, None, repr(e)))
            else:
                self.answers.append((node.name, sent, time.time() - sent, code, body))
                if code == 200:
                    self.accepted[(body["queue_name"], body["id"])] = (node.name, sent)
            yield pause(self.interval)

    def codes(self) -> Counter:
        """How many pushes got each status code (None: no answer)."""
        return Counter(answer[3] for answer in self.answers)


class ClusterTestCase(ServerTestCase):
    """
    A worker and a factory of server nodes sharing one MySQL database; every
    process is killed and the database dropped when the test ends.
    """

    timeout = 180

    def setUp(self) -> None:
        super().setUp()
        self.dsn = self.make_database()
        self.nodes: List[Node] = []

    def make_database(self) -> str:
        """The DSN the nodes use (a fresh database on the shared server)."""
        return database_for(self, "multi").dsn

    def settings(self, **overrides: Any) -> Dict[str, str]:
        """The FIREWORQ_* settings of a node."""
        settings: Dict[str, Any] = {
            "driver": "mysql",
            "mysql_dsn": self.dsn,
            "lease_ttl": LEASE_TTL_MS,
            "config_refresh_interval": REFRESH_MS,
            "queue_default": "",
            "queue_default_polling_interval": 100,
            "shutdown_timeout": 5,
        }
        settings.update(overrides)
        return {k: str(v) for k, v in settings.items()}

    def spawn_node(self, name: str, **overrides: Any) -> Node:
        """A node process, started without waiting for it to be healthy."""
        process = FireworqProcess(os.path.join(self.workdir, name), self.settings(**overrides))
        self.addCleanup(process.kill)
        process.spawn()
        node = Node(name, process)
        self.nodes.append(node)
        return node

    @inlineCallbacks
    def start_node(self, name: str, **overrides: Any) -> Any:
        """A node process, once its /health answers 200."""
        node = self.spawn_node(name, **overrides)
        yield node.process.wait_healthy()
        return node

    # -- observing the cluster ---------------------------------------------

    def delivered_keys(self) -> List[JobKey]:
        """(queue, id) of every delivery, in arrival order."""
        return [job_key(d) for d in self.worker.deliveries]

    def wait_delivered(self, keys: Iterable[JobKey], timeout: float = 30.0) -> Deferred:
        """Wait until every job of ``keys`` has been delivered at least once."""
        wanted = set(keys)

        def missing() -> Set[JobKey]:
            return wanted - set(self.delivered_keys())

        return wait_until(
            lambda: not missing(),
            timeout,
            0.05,
            lambda: f"every accepted job delivered; missing {sorted(missing())[:20]} "
                    f"({len(missing())} of {len(wanted)})",
        )

    def duplicates(self) -> Dict[JobKey, List[Delivery]]:
        """The deliveries of every job delivered more than once."""
        by_key: Dict[JobKey, List[Delivery]] = {}
        for d in self.worker.deliveries:
            by_key.setdefault(job_key(d), []).append(d)
        return {k: v for k, v in by_key.items() if len(v) > 1}

    @inlineCallbacks
    def lease_map(self, nodes: Sequence[Node], queues: Sequence[str]) -> Any:
        """
        {queue: [names of the nodes active for it]} from every node's
        ``/queues/stats``.
        """
        active = yield gatherResults([node.active_queues() for node in nodes])
        result: Dict[str, List[str]] = {q: [] for q in queues}
        for node, queues_of_node in zip(nodes, active):
            for q in queues_of_node:
                result.setdefault(q, []).append(node.name)
        return result

    @inlineCallbacks
    def check_spread(self, nodes: Sequence[Node], queues: Sequence[str], lowest: int, highest: int) -> Any:
        """
        A problem with the spread of leases (a text), or None when every
        queue has exactly one active node, that node is named by
        ``/queue/{q}/node`` on every node, and every node is active for
        between ``lowest`` and ``highest`` queues.
        """
        leases = yield self.lease_map(nodes, queues)
        for queue, holders in sorted(leases.items()):
            if len(holders) != 1:
                return f"queue {queue} is active on {holders or 'no node'}: {leases}"
        counts = Counter(holders[0] for holders in leases.values())
        for node in nodes:
            if not lowest <= counts[node.name] <= highest:
                return f"{node.name} is active for {counts[node.name]} queues: {leases}"
        for queue, holders in leases.items():
            named = yield gatherResults([node.holder(queue) for node in nodes])
            owner = next(n for n in nodes if n.name == holders[0])
            for asked, info in zip(nodes, named):
                if not owner.owns(info):
                    return f"{asked.name} names {info} as the node of {queue}, not {owner.name}"
        return None


class ConfigPropagationTests(ClusterTestCase):
    """Changes made through one node reach the others by polling config_revision."""

    def bound(self) -> float:
        """The most seconds a change may take to reach another node."""
        return REFRESH_MS / 1000.0 + REFRESH_SLACK

    @inlineCallbacks
    def propagated(self, what: str, condition: Any, started: float) -> Any:
        """Wait for ``condition`` and check that it held within L{bound} of ``started``."""
        yield wait_until(condition, 10 * self.bound(), 0.02, what)
        took = time.time() - started
        log.msg(f"config propagation: {what} after {took:.2f}s")
        self.assertLessEqual(took, self.bound(), f"{what} took {took:.2f}s")
        return took

    @inlineCallbacks
    def routed_to(self, node: Node, category: str) -> Any:
        """The queue a push of ``category`` to ``node`` lands in (a deferred job)."""
        code, body = yield node.call(
            "POST", f"/job/{category}", {"url": self.worker.url("/success"), "run_after": 3600}
        )
        if code != 200:
            raise AssertionError(f"push of {category} to {node.name}: {code} {body}")
        return body["queue_name"]

    @inlineCallbacks
    def test_changes_reach_the_other_node(self) -> Any:
        a = yield self.start_node("a", queue_default="default")
        b = yield self.start_node("b", queue_default="default")

        # A new queue: B starts a dispatcher for it (its /queues/stats lists
        # the queues it has dispatchers for, from its own cache).
        started = time.time()
        code, _ = yield a.call("PUT", "/queue/q1", {"max_workers": 3, "polling_interval": 100})
        self.assertEqual(code, 200)

        @inlineCallbacks
        def b_has_q1(workers: int) -> Any:
            stats = yield b.stats()
            return "q1" in stats and stats["q1"]["total_workers"] == workers

        yield self.propagated("q1 on b", lambda: b_has_q1(3), started)

        # A new routing: B routes the category by its cache, to the default
        # queue until it reloads.
        started = time.time()
        code, _ = yield a.call("PUT", "/routing/cat", {"queue_name": "q1"})
        self.assertEqual(code, 200)

        @inlineCallbacks
        def b_routes(category: str, queue: str) -> Any:
            routed = yield self.routed_to(b, category)
            return routed == queue

        yield self.propagated(
            "cat routed to q1 by b", lambda: b_routes("cat", "q1"), started
        )

        # A changed definition: B reconfigures its dispatcher.
        started = time.time()
        code, _ = yield a.call("PUT", "/queue/q1", {"max_workers": 5, "polling_interval": 100})
        self.assertEqual(code, 200)
        yield self.propagated("q1 resized on b", lambda: b_has_q1(5), started)

        # An unchanged definition: nobody restarts (or reconfigures) the
        # dispatcher.  A later change, once seen by B, proves that B has
        # reloaded after the unchanged PUT.
        code, _ = yield a.call("PUT", "/queue/q1", {"max_workers": 5, "polling_interval": 100})
        self.assertEqual(code, 200)
        code, _ = yield b.call("PUT", "/queue/q1", {"max_workers": 5, "polling_interval": 100})
        self.assertEqual(code, 200)
        reloads = a.logged("Reloaded queue definitions")
        code, _ = yield a.call("PUT", "/routing/marker", {"queue_name": "q1"})
        self.assertEqual(code, 200)
        yield wait_until(lambda: b_routes("marker", "q1"), 10 * self.bound(), 0.05, "marker routed by b")
        yield wait_until(lambda: a.logged("Reloaded queue definitions") > reloads, 10, 0.05, "a reloaded")
        for node in (a, b):
            yield wait_until(
                lambda: node.logged("Started the dispatcher of queue q1") >= 1, 10, 0.05,
                f"{node.name}'s log line of q1's dispatcher",
            )
            self.assertEqual(node.logged("Started the dispatcher of queue q1"), 1, node.error_log())
            self.assertEqual(node.logged("Stopped the dispatcher of queue q1"), 0, node.error_log())
            self.assertEqual(node.logged("Reconfiguring queue q1"), 1, node.error_log())

        # A deleted routing: B falls back to the default queue.
        started = time.time()
        code, _ = yield a.call("DELETE", "/routing/cat")
        self.assertEqual(code, 200)
        yield self.propagated(
            "cat routed to default by b", lambda: b_routes("cat", "default"), started
        )

        # A deleted queue: B stops its dispatcher and no longer knows it.
        started = time.time()
        code, _ = yield a.call("DELETE", "/queue/q1")
        self.assertEqual(code, 200)

        @inlineCallbacks
        def b_forgot_q1() -> Any:
            stats = yield b.stats()
            code, _ = yield b.call("GET", "/queue/q1/stats")
            return "q1" not in stats and code == 404

        yield self.propagated("q1 gone from b", b_forgot_q1, started)
        yield wait_until(lambda: b.logged("Stopped the dispatcher of queue q1") == 1, 10, 0.05,
                         "b's log line of q1's dispatcher stopping")
        code, routings = yield b.call("GET", "/routings")
        self.assertEqual(routings, [{"job_category": "marker", "queue_name": "q1"}])
        for node in (a, b):
            self.assertNotIn("Traceback", node.process.stderr())


class LeaseSpreadTests(ClusterTestCase):
    """Two nodes split the leases of nine queues."""

    QUEUES = ["default"] + [f"q{i}" for i in range(1, 9)]

    @inlineCallbacks
    def test_two_nodes_split_nine_queues(self) -> Any:
        a = yield self.start_node("a", queue_default="default")
        b = yield self.start_node("b", queue_default="default")
        for queue in self.QUEUES[1:]:
            code, _ = yield a.call("PUT", f"/queue/{queue}", {"polling_interval": 100})
            self.assertEqual(code, 200)
            code, _ = yield a.call("PUT", f"/routing/c-{queue}", {"queue_name": queue})
            self.assertEqual(code, 200)
        # ceil(9 / 2) = 5: one node 5 and the other 4.
        problem: List[Optional[str]] = [None]

        @inlineCallbacks
        def settled() -> Any:
            problem[0] = yield self.check_spread([a, b], self.QUEUES, 4, 5)
            return problem[0] is None

        yield wait_until(settled, 30, 0.1, lambda: f"the leases to settle: {problem[0]}")
        # It stays so: nothing moves for several lease periods.
        deadline = time.monotonic() + 4 * LEASE_TTL_MS / 1000.0
        before = yield self.lease_map([a, b], self.QUEUES)
        while time.monotonic() < deadline:
            problem[0] = yield self.check_spread([a, b], self.QUEUES, 4, 5)
            self.assertIsNone(problem[0])
            yield pause(0.1)
        after = yield self.lease_map([a, b], self.QUEUES)
        self.assertEqual(before, after)
        # Every queue is dispatched, whichever node the job was pushed to.
        keys = []
        for node in (a, b):
            for queue in self.QUEUES:
                category = "c-" + queue if queue != "default" else "anything"
                code, body = yield node.call("POST", f"/job/{category}", {"url": self.worker.url("/success")})
                self.assertEqual((code, body["queue_name"]), (200, queue))
                keys.append((queue, body["id"]))
        yield self.wait_delivered(keys)
        self.assertEqual(self.duplicates(), {})


class RebalanceTests(ClusterTestCase):
    """A node started later takes its share while jobs flow."""

    QUEUES = ["default"] + [f"q{i}" for i in range(1, 9)]

    @inlineCallbacks
    def test_late_node_takes_its_share(self) -> Any:
        a = yield self.start_node("a", queue_default="default")
        for queue in self.QUEUES[1:]:
            code, _ = yield a.call("PUT", f"/queue/{queue}", {"polling_interval": 100, "max_workers": 4})
            self.assertEqual(code, 200)
            code, _ = yield a.call("PUT", f"/routing/c-{queue}", {"queue_name": queue})
            self.assertEqual(code, 200)
        problem: List[Optional[str]] = [None]

        @inlineCallbacks
        def spread(nodes: Sequence[Node], lowest: int, highest: int) -> Any:
            problem[0] = yield self.check_spread(nodes, self.QUEUES, lowest, highest)
            return problem[0] is None

        yield wait_until(lambda: spread([a], 9, 9), 30, 0.1, lambda: f"a to hold every lease: {problem[0]}")

        categories = ["anything"] + [f"c-{q}" for q in self.QUEUES[1:]]
        stream = PushStream([a], categories, self.worker.url("/sleep/0.1/success"), interval=0.01)
        stream.start()
        yield wait_until(lambda: len(self.worker.deliveries) >= 30, 30, 0.05, "jobs flowing")

        b = yield self.start_node("b", queue_default="default")
        joined = time.time()
        stream.add(b)
        yield wait_until(lambda: spread([a, b], 4, 5), 30, 0.1, lambda: f"the leases to split: {problem[0]}")
        split_after = time.time() - joined
        log.msg(f"rebalance: leases split {split_after:.2f}s after b started")
        # Both nodes dispatch: jobs keep flowing for a while after the split.
        flowing = len(self.worker.deliveries)
        yield wait_until(lambda: len(self.worker.deliveries) >= flowing + 50, 30, 0.05, "jobs flowing after the split")
        yield stream.stop()

        self.assertEqual(set(stream.codes()), {200}, stream.codes())
        yield self.wait_delivered(stream.accepted)
        # Leases were handed over only after the old holder's deliveries had
        # finished: no job was delivered twice.
        self.assertEqual(self.duplicates(), {}, f"split after {split_after:.1f}s")
        self.assertGreater(a.logged("Giving the lease of queue"), 0)
        stats = yield b.stats()
        self.assertGreater(sum(c["total_pops"] for c in stats.values()), 0)
