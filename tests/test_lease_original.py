"""
Beside the original (Go) Fireworq on one database (issue 11, bug 8).

The original elects the node dispatching a queue with the MySQL user lock
C{fireworq_jq(<queue>)}.  These tests hold that lock from a plain PyMySQL
connection -- as an original node would -- against the throwaway mariadbd,
and check that the lease store sees it and that a real server process
leaves the queue alone while it is held (no delivery; one log line; the
``fireworq_queue_original_lock_held`` gauge and ``/health``), then takes
the queue once the lock is released.
"""

from __future__ import annotations

import time
from typing import Any, List

import pymysql
from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks

from fireworq.lease.mysql import MySQLLeaseStore
from fireworq.lease.original import original_lock_name
from fireworq.server.stores import open_mysql
from fireworq.store.mysql.dsn import parse_dsn
from tests.support.mariadb import database_for
from tests.support.polling import pause, wait_until
from tests.test_multinode import LEASE_TTL_MS, ClusterTestCase
from tests.test_store_mysql import _MySQLCase

#: A queue name no other test uses (user locks are server-wide).
QUEUE = "migrating_q"
CATEGORY = "migrating"


class OriginalNode:
    """A plain PyMySQL connection holding the original's lock, as an original node does."""

    def __init__(self, dsn: str) -> None:
        d = parse_dsn(dsn)
        kwargs: Any = dict(user=d.user, password=d.password, database=d.database, connect_timeout=10)
        if d.unix_socket:
            kwargs["unix_socket"] = d.unix_socket
        else:
            kwargs.update(host=d.host, port=d.port)
        self.connection = pymysql.connect(**kwargs)
        self.id = self._one("SELECT CONNECTION_ID()")

    def _one(self, sql: str, *args: Any) -> Any:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchone()[0]

    def lock(self, queue: str) -> None:
        assert self._one("SELECT GET_LOCK(%s, 5)", original_lock_name(queue)) == 1

    def unlock(self, queue: str) -> None:
        assert self._one("SELECT RELEASE_LOCK(%s)", original_lock_name(queue)) == 1

    def close(self) -> None:
        self.connection.close()


class OriginalLockStoreTests(_MySQLCase):
    """L{MySQLLeaseStore.original_lock_holder} on a real server."""

    async def test_sees_the_lock_and_its_release(self) -> None:
        db = self.database()
        _, _, leases = await self.stores(db.dsn)
        assert isinstance(leases, MySQLLeaseStore)
        self.assertIsNone(await leases.original_lock_holder(QUEUE))
        original = await threads.deferToThread(OriginalNode, db.dsn)
        self.addCleanup(original.close)
        await threads.deferToThread(original.lock, QUEUE)
        self.assertEqual(await leases.original_lock_holder(QUEUE), original.id)
        self.assertIsNone(await leases.original_lock_holder("other_q"))
        await threads.deferToThread(original.unlock, QUEUE)
        self.assertIsNone(await leases.original_lock_holder(QUEUE))

    async def test_long_and_unusual_names(self) -> None:
        """Names the original could not lock on MySQL, or odd ones, are no error."""
        db = self.database()
        _, _, leases = await self.stores(db.dsn)
        self.assertIsNone(await leases.original_lock_holder("q" * 200))
        self.assertIsNone(await leases.original_lock_holder("it's %s"))

    async def test_claim_is_one_statement(self) -> None:
        """Claims and renewals are single autocommitted statements (Galera)."""
        db = self.database()
        _, _, leases = await self.stores(db.dsn)
        from fireworq.store.interface import NodeInfo

        statements: List[str] = []
        pool = leases._pool  # type: ignore[attr-defined]
        run = pool.run

        def recording(work: Any, **kwargs: Any) -> Any:
            def wrapped(cursor: Any) -> Any:
                class Recorder:
                    def __getattr__(self, name: str) -> Any:
                        return getattr(cursor, name)

                    def execute(self, sql: str, args: Any = None) -> Any:
                        statements.append(sql.split()[0].upper())
                        return cursor.execute(sql, args)

                return work(Recorder())

            return run(wrapped, **kwargs)

        pool.run = recording
        a = NodeInfo("a", "ha")
        statements.clear()
        await leases.acquire("q1", a, 5000)  # creates the row
        self.assertEqual(statements, ["UPDATE", "INSERT"])  # two transactions of one statement
        statements.clear()
        grant = await leases.acquire("q1", a, 5000)  # renews
        self.assertEqual(statements, ["UPDATE"])
        self.assertFalse(grant.taken_over)


class OneStatementClaimTests(_MySQLCase):
    """The epoch and took-over bit come back through LAST_INSERT_ID with each driver."""

    async def check(self, driver: str) -> None:
        from fireworq.lease.mysql import FIRST_EPOCH
        from fireworq.store.interface import NodeInfo

        db = self.database()
        _, _, leases = await self.stores(db.dsn, driver=driver)
        a, b = NodeInfo("a", "ha"), NodeInfo("b", "hb")
        grant = await leases.acquire("q", a, 60000)
        self.assertEqual((grant.epoch, grant.taken_over), (FIRST_EPOCH, True))
        for _ in range(3):  # renewals, even within one millisecond
            grant = await leases.acquire("q", a, 60000)
            self.assertEqual((grant.epoch, grant.taken_over), (FIRST_EPOCH, False))
        self.assertIsNone(await leases.acquire("q", b, 60000))
        await leases.release("q", a)
        grant = await leases.acquire("q", b, 60000)
        self.assertEqual((grant.epoch, grant.taken_over), (FIRST_EPOCH + 1, True))
        await leases.release("q", b)
        grant = await leases.acquire("q", a, 60000)
        self.assertEqual((grant.epoch, grant.taken_over), (FIRST_EPOCH + 2, True))

    async def test_pymysql(self) -> None:
        await self.check("pymysql")

    async def test_mysqlclient(self) -> None:
        try:
            import MySQLdb  # noqa: F401
        except ImportError:
            self.skipTest("mysqlclient is not installed")
        await self.check("mysqlclient")


class OriginalBesideUsTests(ClusterTestCase):
    """A real server process on a database where the original holds a queue's lock."""

    @inlineCallbacks
    def test_queue_left_to_the_original_while_its_lock_is_held(self) -> Any:
        original = yield threads.deferToThread(OriginalNode, self.dsn)
        self.addCleanup(original.close)
        yield threads.deferToThread(original.lock, QUEUE)
        a = yield self.start_node("a")
        code, _ = yield a.call("PUT", f"/queue/{QUEUE}", {"polling_interval": 100, "max_workers": 4})
        self.assertEqual(code, 200)
        code, _ = yield a.call("PUT", f"/routing/{CATEGORY}", {"queue_name": QUEUE})
        self.assertEqual(code, 200)
        for _ in range(5):
            code, body = yield a.call("POST", f"/job/{CATEGORY}", {"url": self.worker.url("/success")})
            self.assertEqual(code, 200, body)

        @inlineCallbacks
        def reported() -> Any:
            code, health = yield a.call("GET", "/health")
            return code == 200 and health.get("original_locks") == [QUEUE]

        yield wait_until(reported, 15, 0.05, "/health to name the queue held by the original")
        held_at = time.time()
        # Several renewal periods: nothing is delivered, the node is not active.
        yield pause(3 * LEASE_TTL_MS / 1000.0)
        self.assertEqual(self.worker.deliveries, [])
        stats = yield a.queue_stats(QUEUE)
        self.assertEqual(stats["active_nodes"], 0, stats)
        code, metrics = yield a.call("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertIn(f'fireworq_queue_original_lock_held{{queue="{QUEUE}"}} 1.0', metrics)
        self.assertEqual(a.logged("an original Fireworq node holds its lock"), 1, a.error_log()[-5:])

        # The original stops: this node takes the queue and delivers its jobs.
        yield threads.deferToThread(original.unlock, QUEUE)
        released_at = time.time()
        yield wait_until(lambda: len(self.worker.deliveries) >= 5, 15, 0.05, "the jobs to be delivered")
        self.assertLess(self.worker.deliveries[0].received_at - released_at, 2 * LEASE_TTL_MS / 1000.0 + 1)
        code, health = yield a.call("GET", "/health")
        self.assertNotIn("original_locks", health)
        code, metrics = yield a.call("GET", "/metrics")
        self.assertIn(f'fireworq_queue_original_lock_held{{queue="{QUEUE}"}} 0.0', metrics)
        self.assertGreater(released_at, held_at)
