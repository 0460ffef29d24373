"""
The original Fireworq can still serve a MySQL database this server wrote
(protocol "Part B, second wave"): its statements, taken from its source
(L{tests.support.original_sql}), run against the schema this server
creates -- whatever columns and tables this server adds for B7-B9 -- and
find the rows they expect; and this server reads what they wrote.

Run again whenever the MySQL schema changes: a column added without a
default that the original's INSERTs can leave out, a renamed column or a
new index the original's rows could violate makes these tests fail.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Dict, List

from twisted.internet import threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq.model import JobStatus
from fireworq.store.idempotency import Replay
from fireworq.store.mysql.idempotency import (
    claim_keys,
    delete_expired,
    idempotency_ddl,
    idempotency_table,
    record_keys,
)
from fireworq.store.mysql.schema import failure_table, job_table, queue_tables_ddl
from fireworq.store.priority import due_priorities, mysql_add_columns_ddl, mysql_grab_sql, mysql_priorities_sql
from tests.support import mariadb
from tests.support.original_sql import (
    JOB_QUERIES,
    JOB_SCHEMA,
    LOCK_QUERIES,
    REPOSITORY_QUERIES,
    REPOSITORY_SCHEMA,
    Statement,
    all_statements,
    columns_of,
)
from tests.test_store_mysql import _MySQLCase

QUEUE = "legacy"


def _unquoted(table: str) -> str:
    return table.strip("`")


class OriginalStatementsTests(_MySQLCase):
    """The original's statements against the schema of this server."""

    timeout = 120

    def setUp(self) -> None:
        super().setUp()
        self.db = self.server.fresh_database("fwqcompat")
        self.addCleanup(self.db.drop)
        self.jobqueue = _unquoted(job_table(QUEUE))
        self.failure = _unquoted(failure_table(QUEUE))

    async def our_schema(self) -> Any:
        """Create every table as this server does (job tables of QUEUE included)."""
        store, repository, _ = await self.stores(self.server.dsn(self.db.name), fence=True)
        await store.prepare_queue(QUEUE)
        return store, repository

    def run_original(self, work: Any) -> Any:
        """Run ``work(cursor, run)`` in a thread on an administrator connection."""

        def blocking() -> Any:
            conn = self.server.admin_connect(self.db.name)
            try:
                with conn.cursor() as cursor:

                    def run(statement: Statement, args: tuple = (), marks: int = 1, limit: int = 10) -> List[tuple]:
                        sql = statement.pymysql(self.jobqueue, self.failure, marks=marks, limit=limit)
                        cursor.execute(sql, args or None)
                        return list(cursor.fetchall())

                    result = work(cursor, run)
                conn.commit()
                return result
            finally:
                conn.close()

        return threads.deferToThread(blocking)

    def columns(self) -> Dict[str, Dict[str, tuple]]:
        """Every column of the database: table -> column -> (nullable, default, extra)."""

        def blocking() -> Dict[str, Dict[str, tuple]]:
            rows = self.server.execute(
                "SELECT table_name, column_name, is_nullable, column_default, extra "
                "FROM information_schema.columns WHERE table_schema = %s",
                (self.db.name,),
            )
            out: Dict[str, Dict[str, tuple]] = {}
            for table, column, nullable, default, extra in rows:
                out.setdefault(table, {})[column] = (nullable, default, extra)
            return out

        return threads.deferToThread(blocking)

    def required_columns(self, columns: Dict[str, Dict[str, tuple]]) -> List[str]:
        """The columns that the original's INSERTs leave out and that have no default."""
        inserts = {
            self.jobqueue: JOB_QUERIES["insert_job"],
            self.failure: JOB_QUERIES["insert_failed_job"],
            "queue": REPOSITORY_QUERIES["queue_add"],
            "queue_throttle": REPOSITORY_QUERIES["queue_throttle_add"],
            "routing": REPOSITORY_QUERIES["routing_add"],
            "config_revision": REPOSITORY_QUERIES["queue_revision_bump"],
        }
        required = []
        for table, insert in inserts.items():
            self.assertIn(table, columns, f"{table} is not created by this server")
            given = set(columns_of(insert))
            for column, (nullable, default, extra) in columns[table].items():
                if column in given or nullable == "YES" or default is not None or "auto_increment" in extra:
                    continue
                required.append(f"{table}.{column} (the original's {insert.name}, {insert.source})")
        return required

    async def test_original_inserts_leave_nothing_required(self) -> None:
        """
        Every column the original's INSERTs leave out has a default (or takes
        NULL): an added column of ours never makes them fail.
        """
        await self.our_schema()
        self.assertEqual(self.required_columns(await self.columns()), [])

    async def test_required_column_detected(self) -> None:
        """The check above fails for a column added without a default, as the original's INSERT does."""
        await self.our_schema()
        await threads.deferToThread(
            self.server.execute, f"ALTER TABLE `{self.jobqueue}` ADD COLUMN `needed` INT NOT NULL", None, self.db.name
        )
        self.assertEqual(len(self.required_columns(await self.columns())), 1)

        def work(cursor: Any, run: Any) -> None:
            cursor.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
            run(JOB_QUERIES["insert_job"], (0, 0, 0, 0, "c", b"u", b"p", 0))

        import pymysql

        d = self.run_original(work)
        await self.assertFailure(d, pymysql.MySQLError)

    async def test_schema_statements_are_no_ops(self) -> None:
        """The original's CREATE TABLE IF NOT EXISTS statements accept our tables."""
        await self.our_schema()

        def work(cursor: Any, run: Any) -> None:
            for statement in (*JOB_SCHEMA, *REPOSITORY_SCHEMA):
                run(statement)

        await self.run_original(work)

    async def test_job_queue_statements(self) -> None:
        """Push, grab, retry, delete, recover and inspect as the original does."""
        store, _ = await self.our_schema()

        def work(cursor: Any, run: Any) -> Dict[str, Any]:
            q = JOB_QUERIES
            seen: Dict[str, Any] = {}
            ids = []
            for delay, payload in ((-5000, b'{"n":1}'), (-4000, b"two"), (3_600_000, b"later")):
                run(q["insert_job"], (delay, 3, 60, 0, "legacy/cat", b"http://w.test/", payload, 30))
                ids.append(cursor.lastrowid)
            seen["ids"] = ids
            grab = [row[0] for row in run(q["grab_jobs"], limit=10)]
            seen["grab"] = grab
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.execute("BEGIN")
            rows = run(q["grabbed_jobs"], ("claimed", *grab), marks=len(grab))
            seen["grabbed_rows"] = rows
            run(q["launch_jobs"], tuple(grab), marks=len(grab))
            cursor.execute("COMMIT")
            run(q["update_job"], (1000, 2, 1, grab[0]))
            run(q["delete_job"], (grab[1],))
            seen["inspect"] = run(q["inspect_job"], (grab[0],))
            seen["waiting_desc"] = [r[0] for r in run(q["inspect_jobs"], ("claimed", 0, 2**62, 2**63), limit=10)]
            seen["waiting_asc"] = [r[0] for r in run(q["inspect_jobs_asc"], ("claimed", 0, 2**62, 0), limit=10)]
            # A job grabbed by another connection (a dead node) is recovered.
            cursor.execute(f"UPDATE `{self.jobqueue}` SET status = 'grabbed', grabber_id = 1 WHERE job_id = %s", (ids[2],))
            orphans = [r[0] for r in run(q["orphan_jobs"])]
            seen["orphans"] = orphans
            run(q["recover_jobs"], tuple(orphans), marks=len(orphans))
            seen["after_recover"] = run(q["inspect_job"], (ids[2],))
            run(q["node"])
            return seen

        seen = await self.run_original(work)
        first, second, later = seen["ids"]
        self.assertEqual(seen["grab"], [first, second])
        self.assertEqual([row[0] for row in seen["grabbed_rows"]], [first, second])
        self.assertEqual(len(seen["grabbed_rows"][0]), 11)
        # Binary tables: text comes back as bytes.
        self.assertEqual(seen["inspect"][0][5], b"claimed")
        self.assertEqual(seen["inspect"][0][7:10], (2, 60, 1))
        self.assertEqual(sorted(seen["waiting_desc"]), [first, later])
        self.assertEqual(seen["orphans"], [later])
        self.assertEqual(seen["after_recover"][0][5], b"claimed")
        # This server reads what the original wrote.
        job = await store.find_job(QUEUE, first)
        self.assertEqual((job.id, job.status, job.payload, job.fail_count, job.retry_count), (first, JobStatus.CLAIMED.value, '{"n":1}', 1, 2))
        self.assertIsNone(await store.find_job(QUEUE, second))

    async def test_failure_log_statements(self) -> None:
        store, _ = await self.our_schema()

        def work(cursor: Any, run: Any) -> Dict[str, Any]:
            q = JOB_QUERIES
            result = b'{"status":"failure","code":500,"message":"boom"}'
            run(q["insert_failed_job"], (7, "legacy/cat", b"http://w.test/", b"p", result, 1, 2000, 1000))
            failure_id = cursor.lastrowid
            return {
                "id": failure_id,
                "one": run(q["failed_job"], (failure_id,)),
                "by_created": run(q["failed_jobs"], (2**62, 2**62, 2**63), limit=10),
                "recent": run(q["recently_failed_jobs"], (0, 0, 2**63), limit=10),
            }

        seen = await self.run_original(work)
        self.assertEqual(len(seen["one"]), 1)
        self.assertEqual(len(seen["one"][0]), 9)
        self.assertEqual([r[0] for r in seen["by_created"]], [seen["id"]])
        self.assertEqual([r[0] for r in seen["recent"]], [seen["id"]])
        failed = await store.find_failed(QUEUE, seen["id"])
        self.assertEqual((failed.job_id, failed.result.message), (7, "boom"))

        def delete(cursor: Any, run: Any) -> None:
            run(JOB_QUERIES["delete_failed_job"], (seen["id"],))

        await self.run_original(delete)
        self.assertIsNone(await store.find_failed(QUEUE, seen["id"]))

    async def test_definition_statements(self) -> None:
        """The original's definition statements (MariaDB: the VALUES(col) forms)."""
        _, repository = await self.our_schema()

        def work(cursor: Any, run: Any) -> Dict[str, Any]:
            q = REPOSITORY_QUERIES
            run(q["queue_add"], ("orig", 300, 4))
            run(q["queue_add"], ("orig", 400, 5))
            run(q["queue_throttle_add"], ("orig", 2.5, 7))
            run(q["queue_revision_bump"])
            run(q["routing_queue_exists"], ("orig",))
            run(q["routing_add"], ("orig/cat", "orig"))
            run(q["routing_revision_bump"])
            seen = {
                "all": run(q["queue_find_all"]),
                "one": run(q["queue_find"], ("orig",)),
                "throttles": run(q["queue_throttles"], ("orig",), marks=1),
                "routings": run(q["routing_find_all"]),
                "revisions": (run(q["queue_revision"]), run(q["routing_revision"])),
            }
            return seen

        seen = await self.run_original(work)
        self.assertIn((b"orig", 400, 5), [tuple(r) for r in seen["all"]])
        self.assertEqual(len(seen["one"]), 1)
        self.assertEqual(len(seen["throttles"]), 1)
        self.assertEqual(len(seen["routings"]), 1)
        definition = await repository.find_queue("orig")
        self.assertEqual((definition.polling_interval, definition.max_workers), (400, 5))
        self.assertEqual((definition.max_dispatches_per_second, definition.max_burst_size), (2.5, 7))

        def delete(cursor: Any, run: Any) -> None:
            run(REPOSITORY_QUERIES["routing_delete"], ("orig/cat",))
            run(REPOSITORY_QUERIES["queue_delete"], ("orig",))
            run(REPOSITORY_QUERIES["queue_throttle_delete"], ("orig",))

        await self.run_original(delete)
        self.assertIsNone(await repository.find_queue("orig"))

    async def test_lock_statements(self) -> None:
        await self.our_schema()

        def work(cursor: Any, run: Any) -> tuple:
            got = run(LOCK_QUERIES["get_lock"], (f"fireworq_jq({QUEUE})", 1))
            has = run(LOCK_QUERIES["has_lock"], (f"fireworq_jq({QUEUE})",))
            return got[0][0], has[0][0]

        self.assertEqual(await self.run_original(work), (1, 1))


class StatementDataTests(TestCase):
    """The statement data itself (no database)."""

    def test_render(self) -> None:
        grab = JOB_QUERIES["grabbed_jobs"]
        self.assertTrue(grab.render("t", marks=3).endswith("job_id IN (?,?,?) FOR UPDATE"))
        self.assertIn("`t`", grab.render("t"))
        self.assertTrue(JOB_QUERIES["grab_jobs"].render("t", limit=5).endswith("LIMIT 5"))
        self.assertNotIn("?", JOB_QUERIES["grabbed_jobs"].pymysql("t", marks=2))

    def test_every_statement_names_its_source(self) -> None:
        for statement in all_statements():
            self.assertTrue(statement.source.startswith(("data/", "jobqueue/", "repository/")), statement)
        self.assertEqual(
            columns_of(JOB_QUERIES["insert_job"]),
            ["next_try", "created_at", "retry_count", "retry_delay", "fail_count", "category", "url", "payload", "timeout"],
        )


class IdempotencyKeyTableTests(SynchronousTestCase):
    """
    L{fireworq.store.mysql.idempotency} on a real MariaDB: claims are
    race-free across connections (as across nodes), windows end, the
    cleaner deletes in batches.  Blocking connections, as two nodes have.
    """

    def setUp(self) -> None:
        self.server = mariadb.shared_server()
        self.db = self.server.fresh_database("fwqidem")
        self.addCleanup(self.db.drop)
        self.server.execute(idempotency_ddl(QUEUE), database=self.db.name)

    def connect(self) -> Any:
        conn = self.server.admin_connect(self.db.name)
        self.addCleanup(conn.close)
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 20")
        return conn

    def test_claim_record_replay(self) -> None:
        conn = self.connect()
        with conn.cursor() as cursor:
            claimed = claim_keys(cursor, QUEUE, ["b", "a", "b", "é"], window_ms=60_000)
            self.assertEqual(claimed, {"a": None, "b": None, "é": None})
            record_keys(cursor, QUEUE, [("a", 1, '{"queue_name":"q"}'), ("b", 2, "{}"), ("é", 3, '{"x":"é"}')])
        conn.commit()
        with conn.cursor() as cursor:
            again = claim_keys(cursor, QUEUE, ["a", "é", "new"], window_ms=60_000)
        conn.rollback()
        self.assertEqual(
            again, {"a": Replay(1, '{"queue_name":"q"}'), "é": Replay(3, '{"x":"é"}'), "new": None}
        )
        # The rollback freed "new".
        with conn.cursor() as cursor:
            self.assertEqual(claim_keys(cursor, QUEUE, ["new"], window_ms=60_000), {"new": None})
        conn.rollback()
        self.assertEqual(claim_keys(conn.cursor(), QUEUE, [], window_ms=1), {})

    def test_window_ends(self) -> None:
        """A key whose window ended is claimed again, even before the cleaner ran."""
        conn = self.connect()
        with conn.cursor() as cursor:
            claim_keys(cursor, QUEUE, ["k"], window_ms=0)
            record_keys(cursor, QUEUE, [("k", 1, "{}")])
        conn.commit()
        with conn.cursor() as cursor:
            self.assertEqual(claim_keys(cursor, QUEUE, ["k"], window_ms=60_000), {"k": None})
            record_keys(cursor, QUEUE, [("k", 2, "{}")])
        conn.commit()
        with conn.cursor() as cursor:
            self.assertEqual(claim_keys(cursor, QUEUE, ["k"], window_ms=60_000), {"k": Replay(2, "{}")})
        conn.rollback()

    def concurrent(self, finish: str) -> Any:
        """
        Connection A claims "k" and holds it; B claims "k" in a thread and
        must wait for A; then A commits (or rolls back).  Fire with B's claim.
        """
        a, b = self.connect(), self.connect()
        with a.cursor() as cursor:
            self.assertEqual(claim_keys(cursor, QUEUE, ["k"], window_ms=60_000), {"k": None})
            record_keys(cursor, QUEUE, [("k", 41, '{"n":1}')])
        result: Dict[str, Any] = {}

        def other() -> None:
            try:
                with b.cursor() as cursor:
                    result["claim"] = claim_keys(cursor, QUEUE, ["k"], window_ms=60_000)
                b.commit()
            except Exception as e:  # reported below
                result["error"] = e

        thread = threading.Thread(target=other)
        thread.start()
        self.addCleanup(thread.join, 30)
        waiting = mariadb.wait_until(
            lambda: self.server.execute(
                "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
            )[0][0] == 1,
            timeout=20,
        )
        self.assertTrue(waiting, "the second claim did not wait for the first")
        self.assertNotIn("claim", result)
        getattr(a, finish)()
        thread.join(30)
        self.assertNotIn("error", result)
        return result["claim"]

    def test_concurrent_claim_waits_then_replays(self) -> None:
        """Two pushes of one key at once: the second waits and replays the first."""
        self.assertEqual(self.concurrent("commit"), {"k": Replay(41, '{"n":1}')})

    def test_concurrent_claim_after_rollback(self) -> None:
        """If the first push fails (rolls back), the waiting one stores its job."""
        self.assertEqual(self.concurrent("rollback"), {"k": None})

    def test_delete_expired(self) -> None:
        conn = self.connect()
        with conn.cursor() as cursor:
            claim_keys(cursor, QUEUE, [f"old{i}" for i in range(5)], window_ms=0)
            claim_keys(cursor, QUEUE, ["live"], window_ms=60_000)
            record_keys(cursor, QUEUE, [(f"old{i}", i + 1, "{}") for i in range(5)] + [("live", 9, "{}")])
        conn.commit()
        with conn.cursor() as cursor:
            self.assertEqual(delete_expired(cursor, QUEUE, batch=3), 3)
            self.assertEqual(delete_expired(cursor, QUEUE, batch=3), 2)
            self.assertEqual(delete_expired(cursor, QUEUE, batch=3), 0)
        conn.commit()
        with conn.cursor() as cursor:
            self.assertEqual(claim_keys(cursor, QUEUE, ["live"], window_ms=60_000), {"live": Replay(9, "{}")})
        conn.rollback()

    def test_table_name_fits(self) -> None:
        """The key table's name is as long as the failure log's, within MySQL's 64."""
        name = "q" * 255
        self.assertEqual(len(idempotency_table(name)), len(failure_table(name)))
        self.assertLessEqual(len(idempotency_table(name).strip("`")), 64)


def _add_planned_columns(server: Any, database: str, table: str) -> str:
    """Give ``table`` the B7 columns and index as docs/storage.md plans them; return the ALTER run."""
    columns = [row[0] for row in server.execute(f"SHOW COLUMNS FROM `{table}`", database=database)]
    keys = [row[2] for row in server.execute(f"SHOW INDEX FROM `{table}`", database=database)]
    ddl = mysql_add_columns_ddl(f"`{table}`", columns, keys)
    if ddl:
        server.execute(ddl, database=database)
    return ddl


class PlannedSchemaOriginalStatementsTests(OriginalStatementsTests):
    """
    The original's statements against the schema with the B7 columns and
    index added as planned (L{fireworq.store.priority.mysql_add_columns_ddl}
    on a table this server created): the plan keeps the database servable
    by the original.
    """

    async def our_schema(self) -> Any:
        stores = await OriginalStatementsTests.our_schema(self)
        # The store now creates the B7 columns and index itself (issue 12
        # wiring), so the planned ALTER finds nothing left to add: the
        # tests of OriginalStatementsTests already run on the planned schema.
        ddl = await threads.deferToThread(_add_planned_columns, self.server, self.db.name, self.jobqueue)
        self.assertEqual(ddl, "")
        return stores


class PriorityGrabTests(SynchronousTestCase):
    """The MySQL statements of the grab by priority on MariaDB."""

    def setUp(self) -> None:
        self.server = mariadb.shared_server()
        self.db = self.server.fresh_database("fwqprio")
        self.addCleanup(self.db.drop)
        self.table = _unquoted(job_table(QUEUE))
        self.server.execute(queue_tables_ddl(QUEUE)[0], database=self.db.name)
        _add_planned_columns(self.server, self.db.name, self.table)

    def test_order_and_plans(self) -> None:
        rng = random.Random(5)
        now = 10_000_000
        jobs = []
        conn = self.server.admin_connect(self.db.name)
        self.addCleanup(conn.close)
        with conn.cursor() as cursor:
            for _ in range(400):
                priority, next_try = rng.choice([-100, 0, 0, 0, 7, 100]), rng.randint(now - 1000, now + 1000)
                cursor.execute(
                    f"INSERT INTO `{self.table}` (next_try, created_at, category, url, payload, priority) "
                    "VALUES (%s, 0, 'c', 'u', '', %s)",
                    (next_try, priority),
                )
                jobs.append((priority, next_try, cursor.lastrowid))
            cursor.execute(f"UPDATE `{self.table}` SET status = 'grabbed' WHERE job_id % 5 = 0")
            conn.commit()
            claimed = [j for j in jobs if j[2] % 5]
            table = f"`{self.table}`"
            for limit in (1, 25, 1000):
                cursor.execute(mysql_priorities_sql(table))
                taken: list = []
                for priority in due_priorities(cursor.fetchall(), now):
                    if len(taken) >= limit:
                        break
                    cursor.execute(mysql_grab_sql(table, "job_id, next_try", priority, str(now), limit - len(taken)))
                    taken += [(priority, (int(t), int(i))) for i, t in cursor.fetchall()]
                conn.rollback()
                due = sorted((-p, t, i) for p, t, i in claimed if t <= now)[:limit]
                self.assertEqual(taken, [(-p, (t, i)) for p, t, i in due])
            cursor.execute("EXPLAIN " + mysql_priorities_sql(table))
            plan = cursor.fetchall()
            self.assertEqual(plan[0][5], "grab_priority")
            self.assertIn("Using index for group-by", plan[0][-1])
            cursor.execute("EXPLAIN " + mysql_grab_sql(table, "job_id", 0, str(now), 10).replace(" FOR UPDATE", ""))
            plan = cursor.fetchall()[0]
            self.assertEqual((plan[3], plan[5]), ("range", "grab_priority"))
            self.assertNotIn("filesort", plan[-1])
