"""
The mysql driver against a real MariaDB (tests/support/mariadb.py): the
store contract, plus what only MySQL promises -- tables the original
Fireworq can share, multi-row insert ids, lost connections retried once
and otherwise reported as StoreUnavailable, lease rows on the database
clock, long queue names.

These tests never skip for want of a server: without mariadbd or
FIREWORQ_TEST_MYSQL_DSN they fail with a message saying what to install.
"""

from __future__ import annotations

import json
import os
from typing import Any, List, Tuple

from twisted.internet import reactor, threads
from twisted.internet.defer import fail, gatherResults, succeed
from twisted.logger import capturedLogs
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from fireworq.model import (
    Completion,
    CompletionKind,
    FailureOrder,
    JobCounts,
    JobState,
    NewJob,
    PushEntry,
    QueueDefinition,
    Result,
    Routing,
    job_ids,
    sort_key,
)
from fireworq.joboptions.values import JobOptions, QueueDefaults
from fireworq.lease.interface import ILeaseStore
from fireworq.store.interface import JobTooLarge, NodeInfo, StoreUnavailable
from fireworq.lease.mysql import FIRST_EPOCH, MySQLLeaseStore
from fireworq.server.stores import open_mysql
from fireworq.store.mysql import MySQLJobStore
from fireworq.store.mysql.driver import available_drivers
from fireworq.store.mysql.schema import KEY_MAX, failure_table, job_table, table_key
from tests.store_contract import (
    ContractClock,
    JobOptionsContractMixin,
    JobStoreContractMixin,
    QueueDefaultsContractMixin,
    RepositoryContractMixin,
)
from tests.support import mariadb
from tests.support.original_sql import JOB_SCHEMA, REPOSITORY_SCHEMA


def job(payload: str = "", **fields: Any) -> NewJob:
    """A job with a fixed category and URL."""
    return NewJob(category="c", url="http://worker.test/", payload=payload, **fields)


class _MySQLStores:
    """
    makeStores for the contract: fresh database, stores of open_mysql.  The
    job store reads the contract's clock instead of the database's (a
    test-only option), so the tests that move time run on MySQL too.
    """

    driverName = "mysql"
    usesInjectedClock = True
    #: Grabber ids are lease epochs: recovery leaves a newer epoch's jobs alone.
    recoversNewerGrabbers = False
    usesOriginalTableNames = True
    #: The DB-API driver under test (None: the default).
    mysqlDriver = None

    def makeStores(self, clock: ContractClock):
        database = mariadb.database_for(self)
        store, repository, leases = open_mysql(
            database.dsn, None, reactor, driver=self.mysqlDriver, fence_grabs=False, clock=clock
        )
        self.addCleanup(leases.stop)
        self.addCleanup(repository.stop)
        self.addCleanup(store.stop)
        d = store.start()
        d.addCallback(lambda _: repository.start())
        d.addCallback(lambda _: (store, repository))
        return d


class MySQLJobStoreContractTests(_MySQLStores, JobStoreContractMixin, TestCase):
    """L{MySQLJobStore} keeps the job store contract (default driver)."""


class MySQLDatabaseClockContractTests(_MySQLStores, JobStoreContractMixin, TestCase):
    """
    The job store contract on the database clock, as servers run it.  The
    contract's four tests that move an injected clock are replaced by
    versions that wait for the real one (they run with the injected clock
    in L{MySQLJobStoreContractTests}).
    """

    def makeStores(self, clock: ContractClock):
        return super().makeStores(None)  # type: ignore[arg-type]

    async def wait(self, seconds: float) -> None:
        from twisted.internet.task import deferLater

        await deferLater(reactor, seconds, lambda: None)

    async def test_deferred_job_becomes_waiting(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", run_after=1)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(deferred=1))
        self.assertEqual(await self.store.grab("q", 1, 1), [])
        await self.wait(max(0.0, (job.next_try - job.created_at) / 1000.0) + 0.1)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1))
        self.assertEqual(await self.listed("q", JobState.WAITING), [job])

    async def test_grab_orders_by_next_try_then_id(self) -> None:
        await self.prepared("q")
        jobs = [await self.push_one("q", run_after=run_after) for run_after in (1, 0, 0, 1, 0)]
        await self.wait(1.1)
        grabbed = await self.store.grab("q", 10, 1)
        self.assertEqual(job_ids(grabbed), job_ids(sorted(jobs, key=sort_key)))
        self.assertLess(job_ids(grabbed).index(jobs[1].id), job_ids(grabbed).index(jobs[0].id))

    async def test_exact_times(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", run_after=5, max_retries=1, retry_delay=7)
        self.assertEqual(job.next_try, job.created_at + 5000)
        self.assertEqual(await self.store.find_job("q", job.id), job)
        self.assertEqual(await self.store.grab("q", 1, 1), [])  # not due for 5 s

    async def test_list_failed_orders_differ(self) -> None:
        await self.prepared("q")
        first = await self.push_one("q", payload="first")
        await self.wait(0.01)
        second = await self.push_one("q", payload="second")
        self.assertLess(first.created_at, second.created_at)
        await self.fail_jobs("q", [second, first], Result("failure"))
        failed = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        self.assertEqual([f.payload for f in failed], ["first", "second"])
        created = (await self.store.list_failed("q", FailureOrder.CREATED, 10, None)).items
        self.assertEqual([f.payload for f in created], ["second", "first"])


class MySQLRepositoryContractTests(_MySQLStores, RepositoryContractMixin, TestCase):
    """L{MySQLRepository} keeps the repository contract (default driver)."""


class MySQLJobOptionsContractTests(_MySQLStores, JobOptionsContractMixin, TestCase):
    """L{MySQLJobStore} keeps the job options contract (B7)."""


class MySQLQueueDefaultsContractTests(_MySQLStores, QueueDefaultsContractMixin, TestCase):
    """L{MySQLRepository} keeps queue job defaults (B7)."""


_OTHER_DRIVERS = [d.name for d in available_drivers()[1:]]

if "pymysql" in _OTHER_DRIVERS:

    class PyMySQLJobStoreContractTests(_MySQLStores, JobStoreContractMixin, TestCase):
        """The job store contract through PyMySQL, when it is not the default."""

        mysqlDriver = "pymysql"

    class PyMySQLRepositoryContractTests(_MySQLStores, RepositoryContractMixin, TestCase):
        """The repository contract through PyMySQL, when it is not the default."""

        mysqlDriver = "pymysql"


# -- what only MySQL promises ------------------------------------------------------

#: The original Fireworq's DDL (data/jobqueue/mysql/schema, data/repository/
#: mysql/schema), as it creates its tables -- the fixture of the
#: compatibility tests.
ORIGINAL_DDL = [
    *(s.render(jobqueue="fireworq_jq(legacy)", failure="fireworq_jq_fail(legacy)") for s in JOB_SCHEMA),
    *(s.render() for s in REPOSITORY_SCHEMA),
]

#: The original's clock expression (its queries read CURRENT_TIME(3)).
ORIGINAL_NOW = "FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000)"


def _text(value: Any) -> str:
    """A column of SHOW output as text (bytes from a binary table)."""
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def _blocking(server: Any, database: str, statements: List[Tuple[str, tuple]]) -> List[List[tuple]]:
    """Run statements as the administrator in one transaction (in a thread)."""
    conn = server.admin_connect(database)
    try:
        out = []
        with conn.cursor() as cursor:
            for sql, args in statements:
                cursor.execute(sql, args or None)
                out.append(list(cursor.fetchall()))
        conn.commit()
        return out
    finally:
        conn.close()


class _MySQLCase(TestCase):
    """Helpers: databases, stores, blocking SQL in a thread."""

    timeout = 60

    def setUp(self) -> None:
        self.server = mariadb.shared_server()

    def database(self, server: Any = None) -> mariadb.TestDatabase:
        server = server or self.server
        database = server.fresh_database()
        self.addCleanup(database.drop)
        return database

    def private(self, **kwargs: Any) -> mariadb.MariaDBServer:
        """A server of this test's own (to stop, kill, restart)."""
        if mariadb.find_mariadbd() is None and os.environ.get(mariadb.ENV_DSN):
            self.skipTest("needs mariadbd (only the server of FIREWORQ_TEST_MYSQL_DSN is available)")
        server = mariadb.private_server(**kwargs)
        self.addCleanup(server.cleanup)
        return server

    async def stores(self, dsn: str, fence: bool = False, driver: Any = None):
        store, repository, leases = open_mysql(dsn, None, reactor, driver=driver, fence_grabs=fence)
        self.addCleanup(leases.stop)
        self.addCleanup(repository.stop)
        self.addCleanup(store.stop)
        await store.start()
        await repository.start()
        await leases.start()
        return store, repository, leases

    def grant_alter(self, database: str) -> Any:
        """Give the tests' user ALTER on ``database`` (beyond the documented grants)."""
        return self.sql(database, *[
            f"GRANT ALTER ON `{database}`.* TO '{mariadb.TEST_USER}'@'{host}'"
            for host in ("127.0.0.1", "localhost")
        ])

    def sql(self, database: str, *statements: Any, server: Any = None):
        """Fire with the rows of each statement (a str, or (sql, args))."""
        pairs = [(s, ()) if isinstance(s, str) else s for s in statements]
        return threads.deferToThread(_blocking, server or self.server, database, pairs)


class OriginalDatabaseTests(_MySQLCase):
    """A database the original Fireworq wrote is served as it is (A9)."""

    async def test_serves_original_rows(self) -> None:
        db = self.database()
        base = "FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000)"
        await self.sql(db.name, *ORIGINAL_DDL)
        await self.sql(
            db.name,
            "INSERT INTO `queue` VALUES ('legacy', 500, 5), ('throttled', 200, 10)",
            "INSERT INTO `queue_throttle` VALUES ('legacy', 0, 0), ('throttled', 2.5, 7)",
            "INSERT INTO `routing` VALUES ('legacy/cat', 'legacy')",
            "INSERT INTO `config_revision` VALUES ('queue_definition', 4), ('routing', 2)",
            # The original's insert_job.sql, its update on retry, and a job
            # it grabbed (grabber_id = CONNECTION_ID()) before it died.
            (
                "INSERT INTO `fireworq_jq(legacy)` (next_try, created_at, retry_count, retry_delay, "
                "fail_count, category, url, payload, timeout) VALUES "
                f"({base} - 5000, {base} - 5000, 3, 60, 0, 'legacy/cat', 'http://w.test/a', %s, 30), "
                f"({base} + 3600000, {base}, 1, 10, 2, 'legacy/cat', 'http://w.test/b', 'later', 0), "
                f"({base} - 9000, {base} - 9000, 0, 0, 0, 'legacy/cat', 'http://w.test/c', '', 5)",
                ('{"n":1}',),
            ),
            "UPDATE `fireworq_jq(legacy)` SET status = 'grabbed', grabber_id = 17 WHERE job_id = 3",
            (
                "INSERT INTO `fireworq_jq_fail(legacy)` (job_id, category, url, payload, result, "
                "fail_count, failed_at, created_at) VALUES "
                f"(99, 'legacy/cat', 'http://w.test/f', 'p', %s, 4, {base} - 1000, {base} - 86400000)",
                (json.dumps({"status": "failure", "code": 500, "message": "Internal Server Error"}),),
            ),
        )
        before = await self.sql(db.name, *[f"SHOW CREATE TABLE `{t}`" for t in (
            "fireworq_jq(legacy)", "fireworq_jq_fail(legacy)", "queue", "queue_throttle", "routing",
            "config_revision")])

        store, repository, _ = await self.stores(db.dsn)
        await store.prepare_queue("legacy")
        after = await self.sql(db.name, *[f"SHOW CREATE TABLE `{t}`" for t in (
            "fireworq_jq(legacy)", "fireworq_jq_fail(legacy)", "queue", "queue_throttle", "routing",
            "config_revision")])
        # Unchanged: with the grants docs/production.md asks for, the server
        # may not add our `attempts` column (bug 5) and serves the table as
        # it is (test_attempts_column_on_an_original_table has ALTER).
        self.assertEqual(after, before)

        self.assertEqual(await repository.list_queues(), [
            QueueDefinition("legacy", 500, 5), QueueDefinition("throttled", 200, 10, 2.5, 7)])
        self.assertEqual(await repository.list_routings(), [Routing("legacy/cat", "legacy")])
        self.assertEqual(await repository.revision(), "4.2")
        self.assertEqual(await store.count_jobs("legacy"), JobCounts(waiting=1, deferred=1, grabbed=1))

        first = await store.find_job("legacy", 1)
        self.assertEqual((first.payload, first.url, first.retry_count, first.max_retries, first.timeout,
                          first.status), ('{"n":1}', "http://w.test/a", 3, 3, 30, "claimed"))
        later = await store.find_job("legacy", 2)
        self.assertEqual((later.fail_count, later.retry_count, later.max_retries), (2, 1, 3))
        [failed] = (await store.list_failed("legacy", FailureOrder.FAILED, 10, None)).items
        self.assertEqual(failed.result, Result("failure", 500, "Internal Server Error"))
        self.assertEqual((failed.job_id, failed.fail_count, failed.max_retries), (99, 4, 0))

        # The job the original left grabbed comes back on takeover.
        self.assertEqual(await store.recover("legacy", FIRST_EPOCH), 1)
        grabbed = await store.grab("legacy", 10, FIRST_EPOCH)
        self.assertEqual(sorted(j.id for j in grabbed), [1, 3])
        # Attempts count from fail_count on a table without our column: the
        # job the original retried twice is attempt 3 at its next grab.
        self.assertEqual(sorted((j.id, j.attempt) for j in grabbed), [(1, 1), (3, 1)])
        self.assertEqual((later.attempts, later.attempt), (0, 3))
        await store.complete("legacy", [Completion(j, CompletionKind.FAIL, Result("failure", 503, "x"))
                                        for j in grabbed], FIRST_EPOCH)
        [pushed] = await store.push([PushEntry("legacy", job("new"))])
        self.assertEqual(pushed.id, 4)

        # What we wrote reads back the way the original reads it.
        rows = await self.sql(db.name, "SELECT job_id, result, fail_count FROM `fireworq_jq_fail(legacy)` "
                                       "ORDER BY failure_id")
        self.assertEqual([r[0] for r in rows[0]], [99, 1, 3])
        self.assertEqual(json.loads(rows[0][1][1])["code"], 503)
        self.assertEqual(json.loads(rows[0][1][1])["status"], "failure")

    async def test_our_tables_are_the_originals(self) -> None:
        """
        Our tables are the original's, but for the ``attempts`` column that
        we add to its job tables (bug 5): a table of ours is one of the
        original's once we prepared it.
        """
        theirs, ours = self.database(), self.database()
        await self.sql(theirs.name, *ORIGINAL_DDL)
        store, repository, _ = await self.stores(ours.dsn)
        await store.prepare_queue("legacy")
        await self.grant_alter(theirs.name)
        upgrader, _, _ = await self.stores(theirs.dsn)
        await upgrader.prepare_queue("legacy")
        tables = ("fireworq_jq(legacy)", "fireworq_jq_fail(legacy)", "queue", "queue_throttle", "routing",
                  "config_revision")
        shown = [f"SHOW CREATE TABLE `{t}`" for t in tables]
        expected = await self.sql(theirs.name, *shown)
        actual = await self.sql(ours.name, *shown)
        self.assertEqual(actual, expected)

    async def test_attempts_column_on_an_original_table(self) -> None:
        """
        A job table the original created gets our ``attempts`` column when a
        queue is prepared (two nodes at once, too); a job the original
        retried counts from its fail_count; the original's own statements
        keep working on the table and leave the count alone (bug 5).
        """
        db = self.database()
        await self.sql(db.name, *ORIGINAL_DDL)
        base = ORIGINAL_NOW
        insert = (  # the original's insert_job.sql: names its columns
            "INSERT INTO `fireworq_jq(legacy)` (next_try, created_at, retry_count, retry_delay, "
            "fail_count, category, url, payload, timeout) VALUES "
            f"({base} - 5, {base}, %s, 0, %s, 'c', 'http://w.test/', 'p', 0)"
        )
        await self.sql(db.name, (insert, (1, 2)))
        await self.grant_alter(db.name)
        a, _, _ = await self.stores(db.dsn)
        b, _, _ = await self.stores(db.dsn)
        await gatherResults([a.prepare_queue("legacy"), b.prepare_queue("legacy")])
        [[column]] = await self.sql(db.name, "SHOW COLUMNS FROM `fireworq_jq(legacy)` LIKE 'attempts'")
        field, kind, null, _, default = [_text(value) for value in column[:5]]
        self.assertEqual((field, null, default), ("attempts", "NO", "0"))
        self.assertIn("unsigned", kind)
        [retried] = await a.grab("legacy", 10, 5)
        self.assertEqual((retried.fail_count, retried.attempts, retried.attempt), (2, 3, 3))
        # The original's statements on a job we count: an insert (attempts
        # default 0), its retry update, its grab (launch_jobs.sql) and its
        # recovery leave our column as it is.
        await self.sql(
            db.name,
            (insert, (3, 0)),
            f"UPDATE `fireworq_jq(legacy)` SET grabber_id = NULL, status = 'claimed', "
            f"next_try = {base} - 5, retry_count = 0, fail_count = 3 WHERE job_id = 1",
            "UPDATE `fireworq_jq(legacy)` SET status = 'grabbed', grabber_id = CONNECTION_ID() "
            "WHERE job_id IN (1, 2)",
            "UPDATE `fireworq_jq(legacy)` USE INDEX (PRIMARY) SET status = 'claimed', grabber_id = NULL "
            "WHERE status = 'grabbed' AND grabber_id != CONNECTION_ID() AND job_id IN (1, 2)",
        )
        [rows] = await self.sql(db.name, "SELECT job_id, attempts FROM `fireworq_jq(legacy)` ORDER BY job_id")
        self.assertEqual([tuple(r) for r in rows], [(1, 3), (2, 0)])
        # Our grabber ids are lease epochs (from FIRST_EPOCH, above any
        # connection id): recovery returns only OLDER epochs' jobs (issue 19).
        await a.recover("legacy", FIRST_EPOCH)
        again = await a.grab("legacy", 10, FIRST_EPOCH)
        self.assertEqual(sorted((j.id, j.attempt) for j in again), [(1, 4), (2, 1)])

    async def test_original_table_without_alter_privilege(self) -> None:
        """
        With only the documented grants (no ALTER), an original job table is
        served as it is: attempts count from fail_count, as before bug 5's
        fix, and the server says once how to add the column.
        """
        db = self.database()
        await self.sql(db.name, *ORIGINAL_DDL)
        with capturedLogs() as events:
            store, _, _ = await self.stores(db.dsn)
            await store.prepare_queue("legacy")
        warnings = [e for e in events if "Cannot add the column `attempts`" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertIn("ALTER TABLE `fireworq_jq(legacy)` ADD COLUMN", warnings[0]["ddl"])
        [[]] = await self.sql(db.name, "SHOW COLUMNS FROM `fireworq_jq(legacy)` LIKE 'attempts'")
        pushed, direct = await store.push(
            [PushEntry("legacy", job("a", max_retries=1)), PushEntry("legacy", job("b"), grabber_id=9)]
        )
        self.assertEqual((direct.status, direct.attempt), ("grabbed", 1))
        grabbed = await store.grab("legacy", 10, 1)
        self.assertEqual([(j.id, j.attempt) for j in grabbed], [(pushed.id, 1)])
        await store.complete("legacy", [Completion(grabbed[0], CompletionKind.RETRY, Result("failure"))], 1)
        self.assertEqual((await store.find_job("legacy", pushed.id)).attempt, 2)
        page = await store.list_jobs("legacy", JobState.GRABBED, 10, None, False)
        self.assertEqual([j.id for j in page.items], [direct.id])
        self.assertEqual((await store.delete_job("legacy", direct.id)).id, direct.id)

    async def test_table_names(self) -> None:
        db = self.database()
        store, _, _ = await self.stores(db.dsn)
        await store.prepare_queue("My-Queue.1")
        [rows] = await self.sql(db.name, "SHOW TABLES")
        names = {r[0] for r in rows}
        for name in ("fireworq_jq(_y__ueue_1)", "fireworq_jq_fail(_y__ueue_1)", "queue", "queue_throttle",
                     "routing", "config_revision", "fireworq_lease", "fireworq_node"):
            self.assertIn(name, names)


class LongQueueNameTests(_MySQLCase):
    """Queue names whose table names would pass MySQL's 64 characters."""

    def test_keys(self) -> None:
        exact = "q" * KEY_MAX
        self.assertEqual(table_key(exact), exact)
        self.assertEqual(job_table(exact), f"`fireworq_jq({exact})`")
        long_a, long_b = "a" * 100 + "-x", "a" * 100 + "-y"
        for name in (long_a, long_b, "\u00e9" * 255):
            self.assertEqual(len(table_key(name)), KEY_MAX)
            self.assertLessEqual(len(failure_table(name)) - 2, 64)
            self.assertRegex(table_key(name), r"^[0-9a-z_]+$")
        self.assertNotEqual(table_key(long_a), table_key(long_b))
        self.assertEqual(table_key(long_a), table_key("a" * 100 + "-x"))

    async def test_long_names_work(self) -> None:
        db = self.database()
        store, _, _ = await self.stores(db.dsn)
        names = ["a" * 200 + "-one", "a" * 200 + "-two", "Q" * 47, "\u65e5\u672c" * 40]
        for name in names:
            await store.push([PushEntry(name, job(name))])
        for name in names:
            [grabbed] = await store.grab(name, 10, 1)
            self.assertEqual(grabbed.payload, name)
            await store.complete(name, [Completion(grabbed, CompletionKind.FAIL, Result("failure"))], 1)
            [failed] = (await store.list_failed(name, FailureOrder.FAILED, 10, None)).items
            self.assertEqual(failed.payload, name)


class InsertIdTests(_MySQLCase):
    """Ids of multi-row inserts, computed from LAST_INSERT_ID()."""

    async def concurrent_pushes(self, dsn: str) -> None:
        stores = []
        for _ in range(3):  # separate pools: truly concurrent transactions
            store, _, _ = await self.stores(dsn)
            stores.append(store)
        await stores[0].prepare_queue("q")
        batches = []
        for round_ in range(4):
            for n, store in enumerate(stores):
                for k in range(4):
                    size = 1 + (round_ * 7 + n * 3 + k * 11) % 40
                    entries = [PushEntry("q", job(f"{round_}.{n}.{k}.{i}")) for i in range(size)]
                    batches.append(store.push(entries))
        pushed = [j for batch in await gatherResults(batches) for j in batch]
        ids = [j.id for j in pushed]
        self.assertEqual(len(set(ids)), len(ids))
        for j in pushed:
            found = await stores[0].find_job("q", j.id)
            self.assertEqual(found, j)

    async def test_lock_mode_1(self) -> None:
        await self.concurrent_pushes(self.database().dsn)

    async def test_lock_mode_2_and_increment_3(self) -> None:
        server = self.private(durable=False, extra_args=[
            "--innodb-autoinc-lock-mode=2", "--auto-increment-increment=3", "--auto-increment-offset=2"])
        db = self.database(server)
        [[row]] = await self.sql(db.name, "SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment",
                                 server=server)
        self.assertEqual(tuple(int(v) for v in row), (2, 3))
        await self.concurrent_pushes(db.dsn)
        store, _, _ = await self.stores(db.dsn)
        jobs = await store.push([PushEntry("q2", job(str(i))) for i in range(5)])
        self.assertEqual([j.id - jobs[0].id for j in jobs], [0, 3, 6, 9, 12])

    async def test_big_batch_split_by_size(self) -> None:
        db = self.database()
        store, _, _ = await self.stores(db.dsn)
        payload = "x" * (1 << 20)
        jobs = await store.push([PushEntry("q", job(payload + str(i))) for i in range(10)])
        ids = [j.id for j in jobs]
        self.assertEqual(ids, sorted(set(ids)))
        for j in jobs:
            self.assertEqual((await store.find_job("q", j.id)).payload, j.payload)


class IndexUseTests(_MySQLCase):
    """The hot queries are served by the ``grab`` index, without a sort."""

    async def test_grab_and_lists_use_the_index(self) -> None:
        db = self.database()
        store, _, _ = await self.stores(db.dsn)
        await store.push([PushEntry("q", job(str(i), run_after=i % 3)) for i in range(200)])
        queries = [
            "SELECT job_id FROM `fireworq_jq(q)` FORCE INDEX (`grab`) WHERE status = 'claimed' "
            "AND next_try <= 99999999999999 ORDER BY next_try, job_id LIMIT 10",
            "SELECT job_id FROM `fireworq_jq(q)` FORCE INDEX (`grab`) WHERE status = 'grabbed' "
            "AND next_try <= 5 AND (next_try < 5 OR job_id <= 5) ORDER BY next_try DESC, job_id DESC LIMIT 11",
            "SELECT COUNT(*) FROM `fireworq_jq(q)` WHERE status = 'claimed' AND next_try > 5",
        ]
        for query in queries:
            [rows] = await self.sql(db.name, "EXPLAIN " + query)
            plan = " ".join(str(v) for row in rows for v in row)
            self.assertIn("grab", plan, query)
            self.assertNotIn("filesort", plan, query)
            self.assertNotIn("temporary", plan, query)


class ConnectionLossTests(_MySQLCase):
    """Lost connections are retried once; then StoreUnavailable, never a driver error."""

    async def test_killed_connections_retried_transparently(self) -> None:
        for driver in [d.name for d in available_drivers()]:
            db = self.database()
            store, repository, leases = await self.stores(db.dsn, driver=driver)
            [first] = await store.push([PushEntry("q", job("a"))])
            await repository.list_queues()
            await leases.heartbeat(NodeInfo("n", "h"), 1000)
            killed = await threads.deferToThread(self.server.kill_connections, db.name)
            self.assertGreaterEqual(killed, 2, driver)
            retried = store._pool.retried
            [second] = await store.push([PushEntry("q", job("b"))])
            self.assertGreater(second.id, first.id)
            self.assertEqual(store._pool.retried, retried + 1, driver)
            self.assertEqual(await repository.list_queues(), [])
            self.assertIn("n", await leases.heartbeat(NodeInfo("n", "h"), 1000))
            self.assertEqual(await store.count_jobs("q"), JobCounts(waiting=2))

    async def test_server_down_then_back(self) -> None:
        server = self.private()
        db = self.database(server)
        store, repository, leases = await self.stores(db.dsn)
        [before] = await store.push([PushEntry("q", job("before"))])
        await threads.deferToThread(server.stop)
        for call in (lambda: store.push([PushEntry("q", job("lost"))]),
                     lambda: store.grab("q", 10, 1),
                     lambda: store.ping(),
                     lambda: repository.revision(),
                     lambda: leases.acquire("q", NodeInfo("n", "h"), 1000)):
            error = await self.assertFailure(call(), StoreUnavailable)
            self.assertIn("the database cannot be used", str(error))
        await threads.deferToThread(server.start)
        self.assertIsNone(await store.ping())
        [after] = await store.push([PushEntry("q", job("after"))])
        self.assertGreater(after.id, before.id)
        self.assertEqual([j.payload for j in await store.grab("q", 10, 1)], ["before", "after"])

    async def test_restart_mid_run_loses_nothing_answered(self) -> None:
        server = self.private(durable=True)
        db = self.database(server)
        store, _, _ = await self.stores(db.dsn)
        await store.prepare_queue("q")
        from fireworq.store.mysql.pool import CommitOutcomeUnknown

        answered: List[Any] = []
        refused = 0
        unknown = 0  # cut off while committing: stored or not
        restarting = threads.deferToThread(server.restart, True)  # kill -9, start again
        while not restarting.called or len(answered) < 50:
            try:
                answered += await store.push([PushEntry("q", job(f"p{len(answered)}-{unknown}-{refused}"))])
            except StoreUnavailable as error:
                if isinstance(error, CommitOutcomeUnknown):
                    unknown += 1
                else:
                    refused += 1
                from twisted.internet.task import deferLater
                await deferLater(reactor, 0.05, lambda: None)
        await restarting
        for stored in answered:
            self.assertEqual(await store.find_job("q", stored.id), stored)
        waiting = (await store.count_jobs("q")).waiting
        self.assertGreaterEqual(waiting, len(answered))
        self.assertLessEqual(waiting, len(answered) + unknown)

    async def test_idle_connections_recycled_before_wait_timeout(self) -> None:
        server = self.private(durable=False, extra_args=["--wait-timeout=2"])
        db = self.database(server)
        store, _, _ = await self.stores(db.dsn)
        await store.ping()
        from twisted.internet.task import deferLater
        await deferLater(reactor, 2.5, lambda: None)  # the server closed the idle connection
        recycled, retried = store._pool.recycled, store._pool.retried
        await store.ping()
        self.assertEqual(store._pool.recycled, recycled + 1)
        self.assertEqual(store._pool.retried, retried)

    async def test_stopped_store_refuses(self) -> None:
        db = self.database()
        store, _, _ = await self.stores(db.dsn)
        await store.stop()
        await self.assertFailure(store.ping(), StoreUnavailable)


class SessionTests(_MySQLCase):
    """What every connection is set up with, and jobs too large for a statement."""

    async def session(self, store: MySQLJobStore, *names: str) -> tuple:
        def work(cursor: Any) -> tuple:
            cursor.execute("SELECT " + ", ".join(f"@@SESSION.{n}" for n in names))
            return cursor.fetchone()

        return await store._pool.run(work, idempotent=True, what="read session variables")

    async def test_dsn_system_variables_are_set(self) -> None:
        db = self.database()
        dsn = db.dsn + ("&" if "?" in db.dsn else "?") + "wait_timeout=321&sql_mode=%27NO_ZERO_DATE%27&parseTime=true"
        store, _, _ = await self.stores(dsn)
        wait_timeout, sql_mode, isolation = await self.session(
            store, "wait_timeout", "sql_mode", "tx_isolation"
        )
        self.assertEqual(int(wait_timeout), 321)
        # The store's own needs come after the DSN's: strict mode is added,
        # the isolation level is READ COMMITTED.
        self.assertEqual(set(str(sql_mode).split(",")), {"NO_ZERO_DATE", "STRICT_TRANS_TABLES"})
        self.assertEqual(isolation, "READ-COMMITTED")

    async def test_stopped_transaction_ended_by_the_server(self) -> None:
        # A process stopped inside a transaction (SIGSTOP) must not keep its
        # locks, such as a grab's shared lock on the lease row, for as long
        # as it stays stopped: MariaDB ends such a transaction.
        from fireworq.store.mysql.pool import IDLE_TRANSACTION_TIMEOUT

        store, _, _ = await self.stores(self.database().dsn)
        (idle,) = await self.session(store, "idle_transaction_timeout")
        self.assertEqual(int(idle), IDLE_TRANSACTION_TIMEOUT)
        self.assertLess(IDLE_TRANSACTION_TIMEOUT * 1000, 3000)  # within the default lease

    async def test_unknown_variable_is_a_clear_error(self) -> None:
        db = self.database()
        dsn = db.dsn + ("&" if "?" in db.dsn else "?") + "no_such_variable=1"
        store, _, _ = open_mysql(dsn, None, reactor)
        self.addCleanup(store.stop)
        error = await self.assertFailure(store.start(), StoreUnavailable)
        self.assertIn("no_such_variable", str(error))

    async def test_job_larger_than_a_statement_is_refused(self) -> None:
        db = self.database()
        store, _, _ = await self.stores(db.dsn)
        (packet,) = await self.session(store, "max_allowed_packet")
        big = "x" * int(packet)
        with self.assertRaises(JobTooLarge) as caught:
            await store.push([PushEntry("q", job("small")), PushEntry("q", job(big))])
        self.assertIn("max_allowed_packet", str(caught.exception))
        self.assertEqual(await store.count_jobs("q"), JobCounts())


class MySQLLeaseTests(_MySQLCase):
    """Lease rows on the database clock (B2)."""

    A = NodeInfo("node-a", "host-a")
    B = NodeInfo("node-b", "host-b")

    async def test_interface(self) -> None:
        _, _, leases = await self.stores(self.database().dsn)
        self.assertTrue(verifyObject(ILeaseStore, leases))
        self.assertIsInstance(leases, MySQLLeaseStore)

    async def test_acquire_renew_takeover(self) -> None:
        from twisted.internet.task import deferLater

        _, _, leases = await self.stores(self.database().dsn)
        grant = await leases.acquire("q", self.A, 400)
        self.assertEqual((grant.epoch, grant.taken_over), (FIRST_EPOCH, True))
        renewed = await leases.acquire("q", self.A, 400)
        self.assertEqual((renewed.epoch, renewed.taken_over), (FIRST_EPOCH, False))
        self.assertIsNone(await leases.acquire("q", self.B, 400))
        self.assertEqual(await leases.holder("q"), self.A)
        self.assertEqual(await leases.heartbeat(self.A, 1000), {"node-a": 1})
        await deferLater(reactor, 0.5, lambda: None)
        self.assertIsNone(await leases.holder("q"))
        # The same holder takes its expired lease back: same epoch.
        again = await leases.acquire("q", self.A, 400)
        self.assertEqual((again.epoch, again.taken_over), (FIRST_EPOCH, False))
        await leases.release("q", self.A)
        self.assertIsNone(await leases.holder("q"))
        taken = await leases.acquire("q", self.B, 400)
        self.assertEqual((taken.epoch, taken.taken_over), (FIRST_EPOCH + 1, True))
        self.assertEqual(await leases.holder("q"), self.B)
        await leases.release("q", self.A)  # not A's: nothing happens
        self.assertEqual(await leases.holder("q"), self.B)
        self.assertEqual(await leases.heartbeat(self.B, 1000), {"node-a": 0, "node-b": 1})
        self.assertEqual(await leases.heartbeat(self.A, 0), {"node-b": 1})

    async def test_concurrent_acquire_one_winner(self) -> None:
        db = self.database()
        stores = [await self.stores(db.dsn) for _ in range(3)]
        nodes = [NodeInfo(f"n{i}", "h") for i in range(6)]
        grants = await gatherResults([
            stores[i % 3][2].acquire("q", node, 5000) for i, node in enumerate(nodes)])
        self.assertEqual(sum(1 for g in grants if g is not None), 1)

    async def test_fenced_grabs(self) -> None:
        db = self.database()
        store, _, leases = await self.stores(db.dsn, fence=True)
        await store.push([PushEntry("q", job(str(i))) for i in range(4)])
        self.assertEqual(await store.grab("q", 10, FIRST_EPOCH), [])  # no lease yet
        grant = await leases.acquire("q", self.A, 60000)
        self.assertEqual(await store.grab("q", 1, grant.epoch + 7), [])
        [mine] = await store.grab("q", 1, grant.epoch)
        await leases.release("q", self.A)
        self.assertEqual(await store.grab("q", 10, grant.epoch), [])  # released: fenced
        taken = await leases.acquire("q", self.B, 60000)
        self.assertEqual(await store.recover("q", taken.epoch), 1)
        theirs = await store.grab("q", 10, taken.epoch)
        self.assertIn(mine.id, [j.id for j in theirs])
        # The old holder's late completion touches nothing.
        await store.complete("q", [Completion(mine, CompletionKind.SUCCESS, Result("success"))], grant.epoch)
        self.assertEqual(await store.count_jobs("q"), JobCounts(grabbed=4))


    async def test_grab_waits_for_a_takeover_in_progress(self) -> None:
        """
        A grab under the current epoch that meets a takeover not yet
        committed waits for it and then grabs nothing: it never leaves jobs
        grabbed under an epoch the new holder has already recovered.
        """
        import threading

        db = self.database()
        store, _, leases = await self.stores(db.dsn, fence=True)
        await store.push([PushEntry("q", job(str(i))) for i in range(3)])
        grant = await leases.acquire("q", self.A, 60000)
        updated, release = threading.Event(), threading.Event()

        def takeover() -> None:
            conn = self.server.admin_connect(db.name)
            try:
                with conn.cursor() as cursor:
                    cursor.execute("UPDATE fireworq_lease SET epoch = epoch + 1, holder = 'node-b' WHERE name = 'q'")
                    updated.set()
                    release.wait(10)
                conn.commit()
            finally:
                conn.close()

        taking = threads.deferToThread(takeover)
        await threads.deferToThread(updated.wait, 10)
        grabbing = store.grab("q", 10, grant.epoch)
        reactor.callLater(0.3, release.set)
        self.assertEqual(await grabbing, [])
        await taking
        self.assertEqual(await store.count_jobs("q"), JobCounts(waiting=3))

    async def test_fenced_direct_pushes(self) -> None:
        """A job is stored grabbed only under the queue's current lease epoch."""
        db = self.database()
        store, _, leases = await self.stores(db.dsn, fence=True)
        await store.prepare_queue("q")
        [early] = await store.push([PushEntry("q", job("early"), grabber_id=FIRST_EPOCH)])
        self.assertEqual((early.status, early.grabber_id), ("claimed", None))
        grant = await leases.acquire("q", self.A, 60000)
        [stale, fresh] = await store.push([
            PushEntry("q", job("stale"), grabber_id=grant.epoch + 1),
            PushEntry("q", job("fresh"), grabber_id=grant.epoch),
        ])
        self.assertEqual(stale.status, "claimed")
        self.assertEqual((fresh.status, fresh.grabber_id), ("grabbed", grant.epoch))
        self.assertEqual(await store.count_jobs("q"), JobCounts(waiting=2, grabbed=1))


class MySQLLeaseKeeperTests(_MySQLCase):
    """L{LeaseKeeper}s of two nodes on real lease rows and the reactor clock."""

    async def test_failover_between_nodes(self) -> None:
        import time

        from twisted.internet.task import deferLater

        from fireworq.lease.keeper import LeaseKeeper

        db = self.database()
        store, _, leases = await self.stores(db.dsn, fence=True)
        ttl_ms = 600
        a = LeaseKeeper("q", leases, store, NodeInfo("a", "ha"), reactor, ttl_ms, now=time.monotonic)
        b = LeaseKeeper("q", leases, store, NodeInfo("b", "hb"), reactor, ttl_ms, now=time.monotonic)
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        changes: List[Tuple[str, bool]] = []
        a.subscribe(lambda held: changes.append(("a", held)))
        b.subscribe(lambda held: changes.append(("b", held)))
        a.start()

        async def until(predicate, limit: float) -> float:
            started = time.monotonic()
            while not predicate():
                self.assertLess(time.monotonic() - started, limit, "timed out")
                await deferLater(reactor, 0.01, lambda: None)
            return time.monotonic() - started

        await until(a.held, 5)
        b.start()
        await store.push([PushEntry("q", job(str(i))) for i in range(3)])
        grabbed = await store.grab("q", 2, a.grabber_id)
        self.assertEqual(len(grabbed), 2)
        await deferLater(reactor, 1.0, lambda: None)
        self.assertTrue(a.held())
        self.assertFalse(b.held())
        # a freezes: it stops renewing without releasing.
        a._loop.stopService()
        frozen = time.monotonic()
        await until(lambda: not a.held(), ttl_ms / 1000)
        waited = await until(b.held, 5)
        self.assertLess(time.monotonic() - frozen, ttl_ms / 1000 + ttl_ms / 3000 + 0.5)
        self.assertGreater(waited, 0)
        self.assertEqual(b.grabber_id, a.grabber_id + 1)
        # b recovered a's grabbed jobs before it said held.
        self.assertEqual((await store.count_jobs("q")).grabbed, 0)
        self.assertEqual(len(await store.grab("q", 10, b.grabber_id)), 3)
        self.assertEqual(await b.holder(), NodeInfo("b", "hb"))
        await b.stop()
        self.assertIsNone(await leases.holder("q"))
        self.assertEqual(changes, [("a", True), ("a", False), ("b", True), ("b", False)])


# -- the pool's failure handling, with a scripted DB-API module ----------------------


class _FakeError(Exception):
    pass


class _FakeInterfaceError(_FakeError):
    pass


class _FakeOperationalError(_FakeError):
    pass


class _FakeProgrammingError(_FakeError):
    pass


class _FakeDBAPI:
    """A DB-API 2.0 module whose connections fail as a script says."""

    apilevel = "2.0"
    threadsafety = 1
    Error = _FakeError
    InterfaceError = _FakeInterfaceError
    OperationalError = _FakeOperationalError
    ProgrammingError = _FakeProgrammingError

    def __init__(self) -> None:
        self.connections: List["_FakeConnection"] = []
        self.refuse = 0
        self.commit_errors: List[BaseException] = []

    def connect(self, **kwargs: Any) -> "_FakeConnection":
        if self.refuse:
            self.refuse -= 1
            raise _FakeOperationalError(2003, "Can't connect to MySQL server")
        conn = _FakeConnection(self)
        self.connections.append(conn)
        return conn


class _FakeCursor:
    def __init__(self, conn: "_FakeConnection") -> None:
        self.conn = conn
        self._row: Any = None

    def execute(self, sql: str, args: Any = None) -> None:
        self.conn.executed.append(sql)
        self._row = (28800, 1, 16 << 20, 1, "10.11.19-MariaDB") if sql.startswith("SELECT @@") else None

    def fetchone(self) -> Any:
        return self._row

    def close(self) -> None:
        pass


class _FakeConnection:
    def __init__(self, module: _FakeDBAPI) -> None:
        self.module = module
        self.executed: List[str] = []
        self.commits = 0
        self.rollbacks = 0
        self.closed = False

    def cursor(self) -> _FakeCursor:
        return _FakeCursor(self)

    def commit(self) -> None:
        if self.module.commit_errors and self.executed and not self.executed[-1].startswith(("SELECT @@", "SET SESSION idle_transaction_timeout")):
            raise self.module.commit_errors.pop(0)
        self.commits += 1

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        if self.closed:
            raise _FakeError("Already closed")
        self.closed = True


class PoolFailureTests(TestCase):
    """L{MySQLPool.run}: retry once, StoreUnavailable, commit outcome unknown."""

    def setUp(self) -> None:
        import sys

        from fireworq.store.mysql.driver import Driver
        from fireworq.store.mysql.dsn import parse_dsn
        from fireworq.store.mysql.pool import MySQLPool

        self.module = _FakeDBAPI()
        sys.modules["fwq_fake_dbapi"] = self.module  # type: ignore[assignment]
        self.addCleanup(sys.modules.pop, "fwq_fake_dbapi", None)
        driver = Driver(name="pymysql", module="fwq_fake_dbapi")
        self.pool = MySQLPool(parse_dsn("u:p@tcp(127.0.0.1:1)/db"), driver, size=1, reactor=reactor)
        self.pool.retain()
        self.addCleanup(self.pool.release)

    def work(self, failures: List[BaseException], result: Any = "ok"):
        def work(cursor: Any) -> Any:
            cursor.execute("UPDATE t SET x = 1")
            if failures:
                raise failures.pop(0)
            return result

        return work

    async def test_lost_connection_retried_once(self) -> None:
        work = self.work([_FakeOperationalError(2013, "Lost connection to MySQL server during query")])
        self.assertEqual(await self.pool.run(work), "ok")
        self.assertEqual(self.pool.retried, 1)
        self.assertTrue(self.module.connections[0].closed)
        self.assertEqual(len(self.module.connections), 2)

    async def test_lost_twice_is_store_unavailable(self) -> None:
        work = self.work([_FakeOperationalError(2006, "MySQL server has gone away"),
                          _FakeInterfaceError(0, "")])
        error = await self.assertFailure(self.pool.run(work, what="push"), StoreUnavailable)
        self.assertEqual(str(error), "the database cannot be used (push): "
                                     "the connection was closed (_FakeInterfaceError)")
        self.assertEqual(self.pool.failed, 1)

    async def test_cannot_connect(self) -> None:
        self.module.refuse = 2
        error = await self.assertFailure(self.pool.run(self.work([])), StoreUnavailable)
        self.assertIn("MySQL error 2003: Can't connect", str(error))
        self.assertEqual(await self.pool.run(self.work([])), "ok")

    async def test_deadlock_retried(self) -> None:
        work = self.work([_FakeOperationalError(1213, "Deadlock found")])
        self.assertEqual(await self.pool.run(work), "ok")
        self.assertEqual(self.module.connections[0].rollbacks, 1)
        self.assertEqual(len(self.module.connections), 1)

    async def test_other_errors_not_retried(self) -> None:
        work = self.work([_FakeProgrammingError(1146, "Table 'x' doesn't exist")])
        error = await self.assertFailure(self.pool.run(work), StoreUnavailable)
        self.assertIn("MySQL error 1146", str(error))
        self.assertEqual(self.pool.retried, 0)
        self.assertEqual(self.module.connections[0].rollbacks, 1)

    async def test_bugs_are_not_hidden(self) -> None:
        await self.assertFailure(self.pool.run(self.work([KeyError("x")])), KeyError)
        self.assertEqual(self.module.connections[0].rollbacks, 1)

    async def test_lost_during_commit(self) -> None:
        self.module.commit_errors = [_FakeOperationalError(2013, "Lost connection")]
        error = await self.assertFailure(self.pool.run(self.work([]), what="push"), StoreUnavailable)
        from fireworq.store.mysql.pool import CommitOutcomeUnknown

        self.assertIsInstance(error, CommitOutcomeUnknown)
        self.assertIn("may or may not have been applied", str(error))
        # Idempotent work is simply run again.
        self.module.commit_errors = [_FakeOperationalError(2013, "Lost connection")]
        self.assertEqual(await self.pool.run(self.work([]), idempotent=True), "ok")

    async def test_grab_undone_when_commit_outcome_unknown(self) -> None:
        from fireworq.store.mysql.pool import CommitOutcomeUnknown

        calls: List[List[str]] = []

        class Cursor:
            def __init__(self) -> None:
                self.sql: List[str] = []
                calls.append(self.sql)
                self.rowcount = 2

            def execute(self, sql: str, args: Any = None) -> None:
                self.sql.append(sql)

            def fetchall(self) -> List[tuple]:
                # The grab asks first which priorities have due jobs (B7,
                # issue 12): one, priority 0, as a queue without priorities.
                if self.sql and self.sql[-1].startswith("SELECT priority, MIN(next_try)"):
                    return [(0, 1)]
                return [(5, b"c", b"u", b"p", b"claimed", 1, 1, 0, 0, 0, 0, None, 0, None),
                        (6, b"c", b"u", b"p", b"claimed", 1, 1, 0, 0, 0, 0, None, 0, None)]

        class Pool:
            settings = None

            def retain(self) -> "Pool":
                return self

            def run(self, work: Any, idempotent: bool = False, what: str = "") -> Any:
                result = work(Cursor())
                if "grab" in what:
                    return fail(CommitOutcomeUnknown("lost while committing"))
                return succeed(result)

        store = MySQLJobStore(Pool())  # type: ignore[arg-type]
        store._prepared[table_key("q")] = True
        await self.assertFailure(store.grab("q", 10, 42), StoreUnavailable)
        self.assertEqual(len(calls), 2)
        self.assertTrue(calls[1][0].startswith("UPDATE `fireworq_jq(q)` SET status = 'claimed'"))


class OriginalDatabaseJobOptionsTests(_MySQLCase):
    """
    A database the original created, served with job options (B7) and
    queue control (B9): with the ALTER grant our columns and index are
    added when a queue is prepared (and to ``queue`` when the repository
    starts); without it the database is served as it is and only what
    needs the missing columns is refused, naming the ALTER.
    """

    async def test_columns_added_to_original_tables(self) -> None:
        db = self.database()
        await self.sql(db.name, *ORIGINAL_DDL)
        await self.sql(db.name, "INSERT INTO `fireworq_jq(legacy)` (next_try, created_at, category, url, payload) "
                                f"VALUES ({ORIGINAL_NOW} - 5, {ORIGINAL_NOW}, 'c', 'http://w.test/', 'old')")
        await self.grant_alter(db.name)
        store, repository, _ = await self.stores(db.dsn)
        await store.prepare_queue("legacy")
        [rows] = await self.sql(db.name, "SHOW INDEX FROM `fireworq_jq(legacy)`")
        self.assertIn("grab_priority", {_text(r[2]) for r in rows})
        await store.push([PushEntry("legacy", job("new", options=JobOptions(priority=5, name="n")))])
        grabbed = await store.grab("legacy", 10, 1)
        self.assertEqual([(j.payload, j.options.priority) for j in grabbed], [("new", 5), ("old", None)])
        definition = QueueDefinition("legacy", 200, 20, defaults=QueueDefaults(priority=3), paused=True)
        await repository.put_queue(definition)
        self.assertEqual(await repository.find_queue("legacy"), definition)

    async def test_served_as_is_without_alter(self) -> None:
        db = self.database()
        await self.sql(db.name, *ORIGINAL_DDL)
        with capturedLogs() as events:
            store, repository, _ = await self.stores(db.dsn)
            await store.prepare_queue("legacy")
        warnings = [e for e in events if "job options' columns" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertIn("ADD COLUMN `priority`", warnings[0]["ddl"])
        [plain] = await store.push([PushEntry("legacy", job("a"))])
        failure = await self.assertFailure(
            store.push([PushEntry("legacy", job("b", options=JobOptions(priority=1)))]), StoreUnavailable)
        self.assertIn("ALTER TABLE", str(failure))
        self.assertEqual([j.id for j in await store.grab("legacy", 10, 1)], [plain.id])
        await repository.put_queue(QueueDefinition("legacy", 200, 20))
        self.assertEqual(await repository.find_queue("legacy"), QueueDefinition("legacy", 200, 20))
        for refused in (QueueDefinition("legacy", 200, 20, defaults=QueueDefaults(priority=1)),
                        QueueDefinition("legacy", 200, 20, paused=True)):
            failure = await self.assertFailure(repository.put_queue(refused), StoreUnavailable)
            self.assertIn("ALTER TABLE `queue`", str(failure))
