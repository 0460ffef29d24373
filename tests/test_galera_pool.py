"""
Unit tests of what the MySQL pool does for Galera (issue 19), with the
scripted DB-API of tests/test_store_mysql.py (no server):

  - work that loses a conflict (1213) is run again, a bounded number of
    times, after the backoff policy's delays -- also when the conflict
    surfaces at COMMIT, since nothing was applied then;
  - a lock wait timeout (1205) is still retried once only;
  - L{RetryWork} from the work counts as a conflict;
  - L{MySQLPool.detect} tells a Galera node from a plain server (MariaDB
    with wsrep off, or MySQL without the variable);
  - causal work runs with ``wsrep_sync_wait`` on Galera only, and the
    session's value is put back afterwards.

The same behaviour against a real three-node cluster is in
tests/test_galera.py.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from fireworq.store.interface import StoreUnavailable
from fireworq.store.mysql import pool as pool_module
from fireworq.store.mysql.driver import Driver
from fireworq.store.mysql.dsn import parse_dsn
from fireworq.store.mysql.pool import CAUSAL_SYNC_WAIT, CONFLICT_RETRIES, MySQLPool, RetryWork
from tests.test_store_mysql import (
    _FakeConnection,
    _FakeCursor,
    _FakeDBAPI,
    _FakeOperationalError,
)

GALERA_VARIABLES = [
    ("wsrep_max_ws_rows", "128"), ("wsrep_max_ws_size", "1048576"), ("wsrep_node_name", "node2"),
    ("wsrep_on", "ON"), ("wsrep_sync_wait", "0"),
]
GALERA_STATUS = [
    ("wsrep_cluster_size", "3"), ("wsrep_cluster_status", "Primary"),
    ("wsrep_local_state_comment", "Synced"), ("wsrep_provider_version", "26.4.23(r...)"),
]


class _ServerCursor(_FakeCursor):
    """The scripted cursor, answering SHOW VARIABLES / SHOW STATUS as ``server`` says."""

    def execute(self, sql: str, args: Any = None) -> None:
        super().execute(sql, args)
        answers: Dict[str, List[tuple]] = self.conn.module.answers
        self._rows = next((rows for prefix, rows in answers.items() if sql.startswith(prefix)), [])

    def fetchall(self) -> List[tuple]:
        return list(self._rows)


class _ServerConnection(_FakeConnection):
    def cursor(self) -> _ServerCursor:
        return _ServerCursor(self)


class _ServerDBAPI(_FakeDBAPI):
    def __init__(self, answers: Dict[str, List[tuple]]) -> None:
        super().__init__()
        self.answers = answers

    def connect(self, **kwargs: Any) -> _ServerConnection:
        conn = _ServerConnection(self)
        self.connections.append(conn)
        return conn


class GaleraPoolTests(TestCase):
    """L{MySQLPool} conflict retries, detection and causal work."""

    def make_pool(self, answers: Dict[str, List[tuple]]) -> MySQLPool:
        self.module = _ServerDBAPI(answers)
        sys.modules["fwq_fake_galera_dbapi"] = self.module  # type: ignore[assignment]
        self.addCleanup(sys.modules.pop, "fwq_fake_galera_dbapi", None)
        driver = Driver(name="pymysql", module="fwq_fake_galera_dbapi")
        pool = MySQLPool(parse_dsn("u:p@tcp(127.0.0.1:1)/db"), driver, size=1, reactor=reactor)
        pool.retain()
        self.addCleanup(pool.release)
        return pool

    def galera_pool(self) -> MySQLPool:
        return self.make_pool({"SHOW VARIABLES": GALERA_VARIABLES, "SHOW STATUS": GALERA_STATUS})

    def setUp(self) -> None:
        self.delays: List[float] = []
        self.patch(pool_module, "conflict_delay", lambda n: self.delays.append(n) or 0.0)

    def failing(self, failures: List[BaseException]) -> Any:
        def work(cursor: Any) -> str:
            cursor.execute("UPDATE t SET x = 1")
            if failures:
                raise failures.pop(0)
            return "ok"

        return work

    def executed(self) -> List[str]:
        return [sql for conn in self.module.connections for sql in conn.executed]

    async def test_conflicts_retried_up_to_the_bound(self) -> None:
        pool = self.galera_pool()
        conflict = lambda: _FakeOperationalError(1213, "Deadlock found when trying to get lock")  # noqa: E731
        self.assertEqual(await pool.run(self.failing([conflict() for _ in range(CONFLICT_RETRIES)])), "ok")
        self.assertEqual(pool.conflicts, CONFLICT_RETRIES)
        # The backoff policy was asked for each rerun's delay, in order.
        self.assertEqual(self.delays, list(range(CONFLICT_RETRIES)))
        self.assertEqual(self.module.connections[0].rollbacks, CONFLICT_RETRIES)
        error = await self.assertFailure(
            pool.run(self.failing([conflict() for _ in range(CONFLICT_RETRIES + 1)]), what="grab"),
            StoreUnavailable,
        )
        self.assertIn("(grab): MySQL error 1213", str(error))
        self.assertEqual(pool.conflicts_failed, 1)

    async def test_conflict_at_commit_retried_even_when_not_idempotent(self) -> None:
        pool = self.galera_pool()
        self.module.commit_errors = [_FakeOperationalError(1213, "Deadlock found")]
        self.assertEqual(await pool.run(self.failing([]), idempotent=False), "ok")
        self.assertEqual(pool.conflicts, 1)

    async def test_galera_commit_errors_leave_the_outcome_unknown(self) -> None:
        from fireworq.store.interface import CommitOutcomeUnknown

        pool = self.galera_pool()
        await pool.detect()
        for code in (1047, 1180):
            self.module.commit_errors = [_FakeOperationalError(code, "WSREP has not yet prepared node")]
            error = await self.assertFailure(pool.run(self.failing([]), what="push"), CommitOutcomeUnknown)
            self.assertIn("may or may not have been applied", str(error))
        # Idempotent work is run again; on a plain server 1180 stays an error
        # that changed nothing.
        self.module.commit_errors = [_FakeOperationalError(1180, "Got error 6 during COMMIT")]
        self.assertEqual(await pool.run(self.failing([]), idempotent=True), "ok")
        plain = self.make_pool({"SHOW VARIABLES": [("wsrep_on", "OFF")]})
        await plain.detect()
        self.module.commit_errors = [_FakeOperationalError(1180, "Got error 6 during COMMIT")]
        error = await self.assertFailure(plain.run(self.failing([])), StoreUnavailable)
        self.assertNotIsInstance(error, CommitOutcomeUnknown)

    async def test_lock_wait_timeout_retried_once(self) -> None:
        pool = self.galera_pool()
        timeout = lambda: _FakeOperationalError(1205, "Lock wait timeout exceeded")  # noqa: E731
        self.assertEqual(await pool.run(self.failing([timeout()])), "ok")
        await self.assertFailure(pool.run(self.failing([timeout(), timeout()])), StoreUnavailable)
        self.assertEqual((pool.retried, pool.conflicts), (2, 0))

    async def test_retry_work_is_a_conflict(self) -> None:
        pool = self.galera_pool()
        self.assertEqual(await pool.run(self.failing([RetryWork("cluster changed size")])), "ok")
        self.assertEqual(pool.conflicts, 1)

    async def test_detects_galera(self) -> None:
        pool = self.galera_pool()
        info = await pool.detect()
        self.assertIs(pool.galera, info)
        self.assertEqual(
            (info.node_name, info.cluster_size, info.cluster_status, info.state, info.max_ws_rows,
             info.max_ws_size, info.sync_wait),
            ("node2", 3, "Primary", "Synced", 128, 1048576, 0),
        )
        self.assertEqual(info.as_dict()["cluster_size"], 3)

    async def test_plain_servers_are_not_galera(self) -> None:
        for variables in ([("wsrep_on", "OFF"), ("wsrep_sync_wait", "0")], []):  # MariaDB, MySQL
            pool = self.make_pool({"SHOW VARIABLES": variables})
            self.assertIsNone(await pool.detect())
            self.assertIsNone(pool.galera)
            self.assertFalse(any(sql.startswith("SHOW STATUS") for sql in self.executed()))

    async def test_causal_work_on_galera(self) -> None:
        pool = self.galera_pool()
        # The first causal work finds out what the server is.
        self.assertEqual(await pool.run(self.failing([]), causal=True), "ok")
        work = [sql for sql in self.executed() if not sql.startswith(("SET SESSION TRANSACTION", "SELECT @@"))]
        self.assertEqual(work[-3:], [
            f"SET SESSION wsrep_sync_wait = {CAUSAL_SYNC_WAIT}", "UPDATE t SET x = 1", "SET SESSION wsrep_sync_wait = 0",
        ])
        # Other work does not wait.
        before = len(self.executed())
        await pool.run(self.failing([]))
        self.assertEqual(self.executed()[before:], ["UPDATE t SET x = 1"])

    async def test_causal_work_on_a_plain_server(self) -> None:
        pool = self.make_pool({"SHOW VARIABLES": [("wsrep_on", "OFF")]})
        await pool.run(self.failing([]), causal=True)
        await pool.run(self.failing([]), causal=True)
        self.assertFalse(any("wsrep_sync_wait =" in sql for sql in self.executed()))
        # Detected once, not per unit of work.
        self.assertEqual(sum(sql.startswith("SHOW VARIABLES") for sql in self.executed()), 1)
