"""
The sqlite driver: the store contract, plus what only a durable file store
promises: commits survive closing and a killed process, one process at a
time, errors instead of hangs.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

import fireworq
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
)
from fireworq.store.interface import StoreUnavailable
from fireworq.store.sqlite import (
    SHARED_SCHEMA,
    LAYOUT_VERSION,
    DatabaseInUse,
    SqliteDatabase,
    SqliteJobStore,
    SqliteRepository,
    failures_table,
    jobs_table,
    open_sqlite,
    queue_schema,
    table_key,
)
from fireworq.store.sqlite.schema import ATTEMPTS_COLUMN
from tests.store_contract import (
    ContractClock,
    ExactNameContractMixin,
    JobOptionsContractMixin,
    QueueDefaultsContractMixin,
    RepositoryContractMixin,
)

#: Seconds a test waits for a child process before giving up.
DEADLINE = 30


def job(payload: str = "", **fields) -> NewJob:
    """A job with a fixed category and URL."""
    return NewJob(category="c", url="http://worker.test/", payload=payload, **fields)


class _SqliteStores:
    driverName = "sqlite"

    def makeStores(self, clock: ContractClock):
        store, repository = open_sqlite(self.databasePath(), clock=clock)
        self.addCleanup(store.stop)
        return store.start().addCallback(lambda _: (store, repository))

    def databasePath(self) -> str:
        directory = self.mktemp()
        os.makedirs(directory)
        return os.path.join(directory, "fireworq.sqlite3")


class SqliteJobStoreContractTests(_SqliteStores, ExactNameContractMixin, TestCase):
    """L{SqliteJobStore} keeps the job store contract."""


class SqliteRepositoryContractTests(_SqliteStores, RepositoryContractMixin, TestCase):
    """L{SqliteRepository} keeps the repository contract."""


class SqliteJobOptionsContractTests(_SqliteStores, JobOptionsContractMixin, TestCase):
    """L{SqliteJobStore} keeps the job options contract (B7)."""


class SqliteQueueDefaultsContractTests(_SqliteStores, QueueDefaultsContractMixin, TestCase):
    """L{SqliteRepository} keeps queue job defaults (B7)."""


class SqliteDatabaseTests(_SqliteStores, TestCase):
    """What the sqlite driver promises beyond the contract."""

    def setUp(self) -> None:
        self.path = self.databasePath()

    async def opened(self, path: Optional[str] = None):
        store, repository = open_sqlite(path or self.path)
        self.addCleanup(store.stop)
        await store.start()
        return store, repository

    async def test_durable_across_reopen(self) -> None:
        store, repository = await self.opened()
        await store.prepare_queue("q")
        jobs = await store.push([PushEntry("q", job("p\u00e9")), PushEntry("q", job(run_after=60))])
        [grabbed] = await store.grab("q", 1, 1)
        await store.complete("q", [Completion(grabbed, CompletionKind.FAIL, Result("failure"))], 1)
        await repository.put_queue(QueueDefinition("q", 200, 20, 1.5, 2))
        await repository.put_routing(Routing("c", "q"))
        revision = await repository.revision()
        failures = (await store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        await store.stop()

        store, repository = await self.opened()
        self.assertIsNone(await store.find_job("q", jobs[0].id))
        self.assertEqual(await store.find_job("q", jobs[1].id), jobs[1])
        self.assertEqual((await store.list_failed("q", FailureOrder.FAILED, 10, None)).items,
                         failures)
        self.assertEqual(await repository.list_queues(), [QueueDefinition("q", 200, 20, 1.5, 2)])
        self.assertEqual(await repository.list_routings(), [Routing("c", "q")])
        self.assertEqual(await repository.revision(), revision)
        [later] = await store.push([PushEntry("q", job())])
        self.assertGreater(later.id, jobs[1].id)

    async def test_ids_not_reused_after_reopen(self) -> None:
        store, _ = await self.opened()
        jobs = await store.push([PushEntry("q", job()) for _ in range(3)])
        await store.delete_job("q", jobs[-1].id)
        await store.stop()
        store, _ = await self.opened()
        [later] = await store.push([PushEntry("q", job())])
        self.assertGreater(later.id, jobs[-1].id)

    async def test_second_store_refused(self) -> None:
        first, _ = await self.opened()
        second, _ = open_sqlite(self.path)
        error = await self.assertFailure(second.start(), DatabaseInUse)
        self.assertIn(f"another fireworq process uses {self.path}", str(error))
        self.assertIsInstance(error, StoreUnavailable)
        await self.assertFailure(second.ping(), StoreUnavailable)
        self.assertIsNone(await first.ping())
        await first.stop()
        await second.start()
        self.addCleanup(second.stop)
        self.assertIsNone(await second.ping())

    async def test_calls_fail_unless_open(self) -> None:
        store, repository = open_sqlite(self.path)
        await self.assertFailure(store.ping(), StoreUnavailable)
        await self.assertFailure(store.push([PushEntry("q", job())]), StoreUnavailable)
        await self.assertFailure(repository.list_queues(), StoreUnavailable)
        await store.start()
        await store.stop()
        await self.assertFailure(store.grab("q", 1, 1), StoreUnavailable)
        await self.assertFailure(repository.revision(), StoreUnavailable)
        self.assertIsNone(await store.stop())

    async def test_unusable_files(self) -> None:
        missing_directory = os.path.join(self.path + ".d", "no", "such", "db")
        directory = self.path + ".dir"
        os.makedirs(directory)
        garbage = self.path + ".garbage"
        with open(garbage, "wb") as f:
            f.write(b"this is not a database file, not at all" * 100)
        for path in (missing_directory, directory, garbage):
            store, _ = open_sqlite(path)
            for attempt in range(2):  # the failed start released the lock
                error = await self.assertFailure(store.start(), StoreUnavailable)
                self.assertNotIsInstance(error, DatabaseInUse)
                self.assertIn(path, str(error))
            await self.assertFailure(store.ping(), StoreUnavailable)

    async def test_errors_become_store_unavailable(self) -> None:
        store, _ = await self.opened()

        def broken(conn):
            raise sqlite3.OperationalError("disk I/O error")

        error = await self.assertFailure(store.db.run(broken), StoreUnavailable)
        self.assertIn("disk I/O error", str(error))
        self.assertIsNone(await store.ping())

    async def test_wal_and_full_sync(self) -> None:
        store, _ = await self.opened()
        modes = await store.db.run(
            lambda conn: (conn.execute("PRAGMA journal_mode").fetchone()[0],
                          conn.execute("PRAGMA synchronous").fetchone()[0])
        )
        self.assertEqual(modes, ("wal", 2))

    async def tables(self, store: SqliteJobStore) -> List[str]:
        return await store.db.run(
            lambda conn: sorted(row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"))
        )

    async def test_tables_named_like_the_original(self) -> None:
        store, _ = await self.opened()
        await store.prepare_queue("my_queue_1")
        await store.prepare_queue("My-Queue.1")
        names = await self.tables(store)
        for name in ("fireworq_jq(my_queue_1)", "fireworq_jq_fail(my_queue_1)", "queue",
                     "queue_throttle", "routing", "config_revision"):
            self.assertIn(name, names)
        # A name that is not its own storage key gets a hash of the exact name.
        key = table_key("My-Queue.1")
        self.assertRegex(key, r"^_y__ueue_1-[0-9a-f]{16}$")
        self.assertEqual(store.storage_key("My-Queue.1"), key)
        self.assertIn(f"fireworq_jq({key})", names)
        self.assertIn(f"fireworq_jq_fail({key})", names)
        self.assertNotIn("fireworq_jq(_y__ueue_1)", names)
        self.assertEqual(table_key("my_queue_1"), "my_queue_1")
        self.assertNotEqual(table_key("My-Queue.1"), table_key("my-queue.1"))

    async def test_names_alike_stay_apart_across_reopen(self) -> None:
        store, _ = await self.opened()
        names = ["queueA", "queueB", "queue_", "QUEUEA"]
        pushed = {}
        for name in names:
            pushed[name] = await store.push([PushEntry(name, job(name)) for _ in range(2)])
        await store.stop()
        store, _ = await self.opened()
        for name in names:
            self.assertEqual(
                (await store.list_jobs(name, JobState.WAITING, 10, None, False)).items,
                pushed[name],
            )
            [later] = await store.push([PushEntry(name, job())])
            self.assertGreater(later.id, pushed[name][-1].id)

    def write_legacy_file(self) -> None:
        """
        A file as the server wrote it before tables were keyed by exact name
        (layout 0): tables named by the bare storage key.
        """
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in SHARED_SCHEMA:
            conn.execute(statement)
        for name in ("queueA", "my_q", "my.q2"):
            conn.execute("INSERT INTO queue VALUES (?, 100, 2)", (name,))
        for key in ("queue_", "my_q", "gone_", "my_q2"):
            for statement in queue_schema(key):
                conn.execute(statement)
            for i in range(3):
                conn.execute(
                    f"INSERT INTO {jobs_table(key)} (next_try, status, created_at, category,"
                    " url, payload) VALUES (1, 'claimed', 1, 'c', 'http://worker.test/', ?)",
                    (f"{key}#{i}",),
                )
            conn.execute(f"DELETE FROM {jobs_table(key)} WHERE payload = ?", (f"{key}#2",))
            conn.execute(
                f"INSERT INTO {failures_table(key)} (job_id, category, url, payload, result,"
                " fail_count, failed_at, created_at) VALUES (9, 'c', 'u', ?, NULL, 1, 1, 1)",
                (f"{key}!",),
            )
        conn.close()

    async def test_layout_1_job_tables_get_the_attempts_column(self) -> None:
        """
        A file of layout 1 (job tables without ``attempts``) is upgraded on
        open: its jobs read with attempts 0 and their next grab counts from
        their fail_count (bug 5).
        """
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in SHARED_SCHEMA:
            conn.execute(statement)
        key = table_key("q")
        for statement in queue_schema(key):
            conn.execute(statement.replace(f",\n            {ATTEMPTS_COLUMN}", ""))
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({jobs_table(key)})")]
        self.assertNotIn("attempts", columns)  # the layout-1 table, as it was
        conn.execute(
            f"INSERT INTO {jobs_table(key)} (next_try, status, created_at, retry_count,"
            " fail_count, category, url, payload) VALUES (1, 'claimed', 1, 1, 2, 'c', 'u', 'p')"
        )
        conn.execute("PRAGMA user_version = 1")
        conn.close()
        store, _ = await self.opened()
        version = await store.db.run(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])
        self.assertEqual(version, LAYOUT_VERSION)
        [old] = (await store.list_jobs("q", JobState.WAITING, 10, None, False)).items
        self.assertEqual((old.fail_count, old.attempts, old.attempt), (2, 0, 3))
        [grabbed] = await store.grab("q", 1, 1)
        self.assertEqual((grabbed.id, grabbed.attempts, grabbed.attempt), (old.id, 3, 3))
        self.assertEqual((await store.find_job("q", old.id)).attempts, 3)

    async def test_layout_2_gets_the_job_options_columns(self) -> None:
        """
        A file of layout 2 (job tables and ``queue`` without the columns of
        the job options) is upgraded on open: its jobs read without options,
        jobs with options are kept and grabbed by priority, and queue job
        defaults are stored (issue 12).
        """
        from fireworq.joboptions.values import NO_OPTIONS, JobOptions, QueueDefaults
        from fireworq.model import QueueDefinition
        from fireworq.store.priority import SQLITE_JOB_COLUMNS

        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in SHARED_SCHEMA:
            conn.execute(statement)
        key = table_key("q")
        b7 = ",\n            " + ", ".join(ddl for _, ddl in SQLITE_JOB_COLUMNS)
        for statement in queue_schema(key):
            if "priority" in statement and "CREATE INDEX" in statement:
                continue  # the grab-by-priority index of layout 3
            if "fireworq_jq_idem" in statement:
                continue  # the key table of layout 3
            conn.execute(statement.replace(b7, ""))
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({jobs_table(key)})")]
        self.assertNotIn("priority", columns)  # the layout-2 table, as it was
        conn.execute(
            f"INSERT INTO {jobs_table(key)} (next_try, status, created_at, category, url, payload)"
            " VALUES (1, 'claimed', 1, 'c', 'u', 'old')"
        )
        conn.execute("INSERT INTO queue VALUES ('q', 100, 2)")
        conn.execute("PRAGMA user_version = 2")
        conn.close()
        store, repository = await self.opened()
        version = await store.db.run(lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])
        self.assertEqual(version, LAYOUT_VERSION)
        [old] = (await store.list_jobs("q", JobState.WAITING, 10, None, False)).items
        self.assertEqual(old.options, NO_OPTIONS)
        [high] = await store.push([PushEntry("q", job("new", options=JobOptions(priority=9)))])
        grabbed = await store.grab("q", 10, 1)
        self.assertEqual([j.id for j in grabbed], [high.id, old.id])
        self.assertEqual(await repository.find_queue("q"), QueueDefinition("q", 100, 2))
        defined = QueueDefinition("q", 100, 2, defaults=QueueDefaults(priority=4))
        await repository.put_queue(defined)
        self.assertEqual(await repository.find_queue("q"), defined)

    async def test_legacy_tables_of_defined_queues_are_adopted(self) -> None:
        self.write_legacy_file()
        store, repository = await self.opened()
        payloads = lambda page: [j.payload for j in page.items]

        async def contents(name):
            jobs = await store.list_jobs(name, JobState.WAITING, 10, None, False)
            failures = await store.list_failed(name, FailureOrder.FAILED, 10, None)
            return payloads(jobs), payloads(failures)

        tables = await self.tables(store)
        self.assertNotIn("fireworq_jq(queue_)", tables)
        self.assertNotIn("fireworq_jq_fail(queue_)", tables)
        self.assertIn(f"fireworq_jq({table_key('queueA')})", tables)
        indexes = await store.db.run(
            lambda conn: sorted((row[0], row[1]) for row in conn.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
                " AND name LIKE 'fireworq%'"))
        )
        key = table_key("queueA")
        self.assertIn((f"fireworq_jq({key})_status", f"fireworq_jq({key})"), indexes)
        self.assertIn((f"fireworq_jq_fail({key})_created_at", f"fireworq_jq_fail({key})"),
                      indexes)
        self.assertNotIn("fireworq_jq(queue_)_status", [name for name, _ in indexes])
        version = await store.db.run(
            lambda conn: conn.execute("PRAGMA user_version").fetchone()[0])
        self.assertEqual(version, LAYOUT_VERSION)

        # queueA, the one defined queue of key queue_, gets that key's tables.
        self.assertEqual(await contents("queueA"), (["queue_#0", "queue_#1"], ["queue_!"]))
        [later] = await store.push([PushEntry("queueA", job())])
        self.assertEqual(later.id, 4)  # the AUTOINCREMENT counter came along
        self.assertEqual(await contents("queue_"), ([], []))
        # A defined plain name keeps its tables; an alike name starts empty.
        self.assertEqual(await contents("my_q"), (["my_q#0", "my_q#1"], ["my_q!"]))
        self.assertEqual(await contents("my.q"), ([], []))
        # my.q2 is its key's only defined queue: adopted too.
        self.assertEqual(await contents("my.q2"), (["my_q2#0", "my_q2#1"], ["my_q2!"]))
        # No defined queue has the key gone_: its tables stay where they are.
        self.assertEqual(await contents("gone_"), (["gone_#0", "gone_#1"], ["gone_!"]))
        self.assertEqual(await contents("goneA"), ([], []))

        # Once only: the tables of queue_ now are that plain name's, and stay
        # so when queueB becomes its key's only defined queue.
        await repository.delete_queue("queueA")
        await repository.put_queue(QueueDefinition("queueB", 100, 2))
        await store.push([PushEntry("queue_", job("plain"))])
        await store.stop()
        store, _ = await self.opened()
        self.assertEqual(await contents("queue_"), (["plain"], []))
        self.assertEqual(await contents("queueB"), ([], []))
        self.assertEqual(
            await contents("queueA"), (["queue_#0", "queue_#1", ""], ["queue_!"])
        )

    async def test_index_serves_grab_and_lists(self) -> None:
        store, _ = await self.opened()
        await store.prepare_queue("q")
        table = '"fireworq_jq(q)"'
        queries = [
            f"SELECT * FROM {table} WHERE status = 'claimed' AND next_try <= 5"
            " ORDER BY next_try, job_id LIMIT 10",
            f"SELECT * FROM {table} WHERE status = 'grabbed' AND (next_try, job_id) <= (5, 5)"
            " ORDER BY next_try DESC, job_id DESC LIMIT 10",
            f"SELECT count(*) FROM {table} WHERE status = 'claimed' AND next_try > 5",
        ]
        for query in queries:
            plan = await store.db.run(
                lambda conn, q=query: " ".join(
                    row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + q))
            )
            self.assertIn("USING", plan)
            self.assertIn("INDEX", plan)
            self.assertNotIn("TEMP B-TREE", plan)
            self.assertNotIn("SCAN", plan)

    async def test_batch_is_atomic_in_the_database(self) -> None:
        store, _ = await self.opened()
        too_big = job("overflow", run_after=2**70)
        entries = [PushEntry("q1", job("a")), PushEntry("q2", job("b")), PushEntry("q1", too_big)]
        await self.assertFailure(store.push(entries), OverflowError)
        for name in ("q1", "q2"):
            self.assertEqual(await store.count_jobs(name), JobCounts())

    async def test_concurrent_calls_fail_alone(self) -> None:
        store, _ = await self.opened()
        await store.prepare_queue("q")
        good = [store.push([PushEntry("q", job(str(i)))]) for i in range(5)]
        bad = store.push([PushEntry("q", job("x")), PushEntry("q", job(run_after=2**70))])
        more = [store.push([PushEntry("q", job(str(i)))]) for i in range(5, 10)]
        await self.assertFailure(bad, OverflowError)
        pushed = await gatherResults(good + more)
        ids = [jobs[0].id for jobs in pushed]
        self.assertEqual(ids, sorted(set(ids)))
        listed = (await store.list_jobs("q", JobState.WAITING, 100, None, False)).items
        self.assertEqual([j.payload for j in listed], [str(i) for i in range(10)])

    async def test_stop_lets_pending_calls_finish(self) -> None:
        store, _ = open_sqlite(self.path)
        await store.start()
        pushes = [store.push([PushEntry("q", job(str(i)))]) for i in range(20)]
        stopped = store.stop()
        await self.assertFailure(store.ping(), StoreUnavailable)
        pushed = await gatherResults(pushes)
        await stopped
        store, _ = await self.opened()
        for [stored] in pushed:
            self.assertEqual(await store.find_job("q", stored.id), stored)

    async def test_overlapping_start_and_stop(self) -> None:
        store, repository = open_sqlite(self.path)
        starting = store.start()
        stopping = store.stop()  # while opening: closes once open
        await starting
        await stopping
        self.assertFalse(store.db.is_open)
        other, _ = await self.opened()  # the lock was released
        await other.stop()

        await store.start()
        stopping = store.stop()
        restarting = store.start()  # while closing: opens again after
        await stopping
        await restarting
        self.addCleanup(store.stop)
        self.assertTrue(store.db.is_open)
        self.assertIsNone(await store.ping())
        self.assertEqual(await repository.list_queues(), [])

    async def test_shared_database(self) -> None:
        db = SqliteDatabase(self.path)
        store, repository = SqliteJobStore(db), SqliteRepository(db)
        await store.start()
        await repository.start()
        await store.stop()
        self.assertTrue(await repository.put_queue(QueueDefinition("q", 200, 20)))
        await repository.stop()
        self.assertFalse(db.is_open)
        await self.assertFailure(repository.list_queues(), StoreUnavailable)
        await repository.start()
        self.addCleanup(repository.stop)
        self.assertEqual(await repository.list_queues(), [QueueDefinition("q", 200, 20)])

    async def test_killed_process_keeps_every_answered_push(self) -> None:
        child = _PushingChild(wanted=60)
        args = [sys.executable, "-c", _CHILD, self.path]
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(fireworq.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
        reactor.spawnProcess(child, sys.executable, args, env=env)
        self.addCleanup(child.kill)

        await child.ready.addTimeout(DEADLINE, reactor)
        other, _ = open_sqlite(self.path)
        await self.assertFailure(other.start(), DatabaseInUse)
        await child.enough.addTimeout(DEADLINE, reactor)
        reason = await child.kill().addTimeout(DEADLINE, reactor)
        self.assertIsInstance(reason, ProcessTerminated)
        self.assertEqual(reason.signal, 9, child.stderr)

        answered = [line.split() for line in child.lines]
        self.assertGreaterEqual(len(answered), 60)
        store, _ = await self.opened()
        for job_id, payload in answered:
            found = await store.find_job("crash", int(job_id))
            self.assertIsNotNone(found, f"job {job_id} was answered but is lost")
            self.assertEqual(found.payload, payload)
        counts = await store.count_jobs("crash")
        self.assertGreaterEqual(counts.waiting, len(answered))


#: The child of the crash test: push jobs to queue "crash" four at a time,
#: printing "<id> <payload>" after each push's Deferred fired.
_CHILD = r"""
import sys
from twisted.internet import reactor
from fireworq.model import NewJob, PushEntry
from fireworq.store.sqlite import open_sqlite

store, _ = open_sqlite(sys.argv[1])
counter = [0]

def die(failure):
    sys.stderr.write(failure.getTraceback())
    reactor.stop()

def push_next(_=None):
    counter[0] += 1
    payload = "p%d" % counter[0]
    d = store.push([PushEntry("crash", NewJob(category="c", url="http://w.test/", payload=payload))])
    def stored(jobs):
        sys.stdout.write("%d %s\n" % (jobs[0].id, payload))
        sys.stdout.flush()
        push_next()
    d.addCallbacks(stored, die)

def started(_):
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for _ in range(4):
        push_next()

store.start().addCallbacks(started, die)
reactor.run()
"""


class _PushingChild(ProcessProtocol):
    """Collects the child's answered pushes; fires when it has enough."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.lines: List[str] = []
        self.stderr = ""
        self._buffer = b""
        self.ready: Deferred = Deferred()
        self.enough: Deferred = Deferred()
        self.reason: Optional[Failure] = None
        self._ended: List[Deferred] = []

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for line in complete:
            text = line.decode("utf-8")
            if text == "ready":
                self.ready.callback(None)
            else:
                self.lines.append(text)
        if len(self.lines) >= self.wanted and not self.enough.called:
            self.enough.callback(None)

    def errReceived(self, data: bytes) -> None:
        self.stderr += data.decode("utf-8", "replace")

    def kill(self) -> Deferred:
        """SIGKILL the child; fire with why it ended (an exception), once it has."""
        if self.reason is None:
            self.transport.signalProcess("KILL")
        return self.whenEnded()

    def whenEnded(self) -> Deferred:
        """Fire with why the child ended (an exception), once it has."""
        if self.reason is not None:
            return succeed(self.reason.value)
        waiter: Deferred = Deferred()
        self._ended.append(waiter)
        return waiter

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        for waiting in (self.ready, self.enough):
            if not waiting.called:
                waiting.errback(Exception(f"the child ended early: {self.stderr}"))
        waiters, self._ended = self._ended, []
        for waiter in waiters:
            waiter.callback(reason.value)
