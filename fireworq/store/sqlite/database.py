"""
The sqlite driver (B1): jobs, failure logs, queue definitions and routings in
one durable database file.

Usage::

    job_store, repository = open_sqlite("./fireworq.sqlite3")
    yield job_store.start()      # opens the file; the repository works too
    ...
    yield job_store.stop()       # pending calls finish, then the file closes

L{open_sqlite} builds one L{SqliteDatabase} (the file, its connection and
the one thread that uses it) shared by a L{SqliteJobStore} and a
L{SqliteRepository}.  The database is open while at least one of them is
started: starting either opens it, stopping the last one closes it.

Layout, mirroring the original MySQL schema (protocol A9):

  - ``"fireworq_jq(<key>)"`` and ``"fireworq_jq_fail(<key>)"`` per queue,
    ``<key>`` being L{table_key} of the queue name: the original's
    L{fireworq.names.storage_key} when that is the name itself, else made
    unique to the exact name by a hash, so that ``queueA`` and ``queueB``
    (or ``my-q`` and ``my.q``) keep their jobs apart; job and
    failure ids are ``INTEGER PRIMARY KEY AUTOINCREMENT`` (positive,
    increasing, never reused); an index on ``(status, next_try)`` (sqlite
    appends the id) serves grabs, counts and the job lists, one on
    ``created_at`` the failure log.  Tables stay when a queue's definition
    is deleted.
  - ``queue``, ``queue_throttle``, ``routing`` and ``config_revision``.
  - ``PRAGMA user_version`` is L{LAYOUT_VERSION}.  Opening a file of an
    earlier version (whose tables were named by the bare storage key)
    renames the tables of each defined queue whose name is not its storage
    key to the queue's L{table_key} (L{_adopt_legacy_tables}).

Durability: WAL journal, ``synchronous=FULL``; a Deferred fires only after
the COMMIT that holds its change.  All sqlite calls run on one dedicated
thread.  Calls that arrive while a transaction runs are committed together
in the next one (group commit), each inside its own savepoint so that one
failing call leaves the others of its transaction unharmed.

Exclusivity: L{SqliteDatabase.start} takes an exclusive ``flock`` on
``<path>.lock``; while another process holds it, start fails with
L{DatabaseInUse}, so two processes never dispatch the same file.

Errors: sqlite I/O, locking and corruption errors surface as
L{StoreUnavailable}; a call on a database that is not open fails at once.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import os
import sqlite3
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from fireworq.model import (
    Completion,
    CompletionKind,
    FailedJob,
    FailureOrder,
    Job,
    JobCounts,
    JobState,
    Page,
    PageKey,
    PushEntry,
    QueueDefinition,
    Routing,
    decode_failure_result,
)
from fireworq.names import storage_key
from fireworq.store.interface import IJobStore, IRepository, StoreUnavailable
from fireworq.store.memory import (
    Clock,
    check_storable,
    failure_result_text,
    normalize_definition,
    system_clock,
)

#: Seconds a statement waits for a lock held by another connection (an
#: administrator's sqlite3 shell, say) before failing with StoreUnavailable.
BUSY_TIMEOUT = 5.0

#: The most calls committed in one transaction.
MAX_BATCH = 500

#: Ids bound in one ``IN (...)`` list.
_CHUNK = 500

#: The file layout (``PRAGMA user_version``): 1 = tables keyed by
#: L{table_key}; 0 = an older file, keyed by the bare storage key.
LAYOUT_VERSION = 1

#: Hex digits of the name's hash that end the key of a non-plain name.
_HASH_DIGITS = 16

_SHARED_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS queue (
        name TEXT NOT NULL PRIMARY KEY,
        polling_interval INTEGER NOT NULL,
        max_workers INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS queue_throttle (
        name TEXT NOT NULL PRIMARY KEY,
        max_dispatches_per_second REAL NOT NULL,
        max_burst_size INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS routing (
        job_category TEXT NOT NULL PRIMARY KEY,
        queue_name TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS config_revision (
        name TEXT NOT NULL PRIMARY KEY,
        revision INTEGER NOT NULL
    )""",
)

_JOB_COLUMNS = (
    "job_id, category, url, payload, status, created_at, next_try, timeout,"
    " fail_count, retry_count, retry_delay, grabber_id"
)
_FAILED_COLUMNS = (
    "failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at"
)
_OWNED = "job_id = ? AND status = 'grabbed' AND grabber_id = ?"


class DatabaseInUse(StoreUnavailable):
    """Another process holds the database file's lock."""


@functools.lru_cache(maxsize=4096)
def table_key(queue_name: str) -> str:
    """
    The key that names the queue's tables, unique to the exact name: the
    original's L{storage_key} when it equals the name (a plain lowercase
    name such as ``jobs_2``), else the storage key, ``-`` and 16 hex digits
    of the SHA-256 of the name (``queueA`` -> ``queue_-...``).  ``-`` never
    occurs in a storage key, so the two kinds never meet, and sqlite's
    case-insensitive identifiers see only lowercase.  (Cached: every push,
    grab and completion asks.)
    """
    key = storage_key(queue_name)
    if key == queue_name:
        return key
    digest = hashlib.sha256(queue_name.encode("utf-8")).hexdigest()[:_HASH_DIGITS]
    return f"{key}-{digest}"


def jobs_table(key: str) -> str:
    """The quoted name of the job table of the table key ``key``."""
    return f'"fireworq_jq({key})"'


def failures_table(key: str) -> str:
    """The quoted name of the failure-log table of the table key ``key``."""
    return f'"fireworq_jq_fail({key})"'


def queue_schema(key: str) -> List[str]:
    """The statements that create a queue's tables and indexes."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {jobs_table(key)} (
            job_id INTEGER PRIMARY KEY AUTOINCREMENT,
            next_try INTEGER NOT NULL,
            grabber_id INTEGER,
            status TEXT NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'grabbed')),
            created_at INTEGER NOT NULL,
            retry_count INTEGER NOT NULL DEFAULT 0,
            retry_delay INTEGER NOT NULL DEFAULT 0,
            fail_count INTEGER NOT NULL DEFAULT 0,
            category TEXT NOT NULL,
            url TEXT NOT NULL,
            payload TEXT,
            timeout INTEGER NOT NULL DEFAULT 0
        )""",
        f"CREATE INDEX IF NOT EXISTS {_jobs_index(key)} ON {jobs_table(key)} (status, next_try)",
        f"""CREATE TABLE IF NOT EXISTS {failures_table(key)} (
            failure_id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL,
            category TEXT NOT NULL,
            url TEXT NOT NULL,
            payload TEXT,
            result TEXT,
            fail_count INTEGER NOT NULL DEFAULT 0,
            failed_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {_failures_index(key)} ON {failures_table(key)} (created_at)",
    ]


def _jobs_index(key: str) -> str:
    return f'"fireworq_jq({key})_status"'


def _failures_index(key: str) -> str:
    return f'"fireworq_jq_fail({key})_created_at"'


def _adopt_legacy_tables(conn: sqlite3.Connection) -> None:
    """
    Upgrade a file of layout 0, whose queue tables were named by the bare
    storage key (its server refused to define a second queue with the same
    key): the tables of each defined queue whose name is not its storage
    key become that queue's, renamed to its L{table_key} (ids, and so the
    AUTOINCREMENT counters, unchanged).  The tables of a key whose plain
    name is defined stay that queue's; those of a key that no defined queue
    has stay where they are.
    """
    tables = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    claimants: Dict[str, List[str]] = {}
    for (name,) in conn.execute("SELECT name FROM queue").fetchall():
        claimants.setdefault(storage_key(name), []).append(name)
    for key, names in claimants.items():
        if key in names or len(names) != 1:
            continue
        new = table_key(names[0])
        pairs = [(table(key), table(new)) for table in (jobs_table, failures_table)]
        if any(target.strip('"') in tables for _, target in pairs):
            continue
        legacy = [(source, target) for source, target in pairs if source.strip('"') in tables]
        if not legacy:
            continue
        for source, target in legacy:
            conn.execute(f"ALTER TABLE {source} RENAME TO {target}")
        # Renamed tables keep their indexes' names: make them anew.
        conn.execute(f"DROP INDEX IF EXISTS {_jobs_index(key)}")
        conn.execute(f"DROP INDEX IF EXISTS {_failures_index(key)}")
        for statement in queue_schema(new):
            conn.execute(statement)


def _chunks(ids: Sequence[int]):
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _job(row: tuple) -> Job:
    values = list(row)
    if values[3] is None:
        values[3] = ""
    return Job(*values)


def _failed(row: tuple) -> FailedJob:
    (failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at) = row
    result, max_retries, retry_delay, timeout = decode_failure_result(result or "")
    return FailedJob(
        id=failure_id,
        job_id=job_id,
        category=category,
        url=url,
        payload=payload or "",
        result=result,
        fail_count=fail_count,
        failed_at=failed_at,
        created_at=created_at,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
    )


#: A function run on the database thread with the connection, inside a
#: transaction.
Operation = Callable[..., Any]


class SqliteDatabase:
    """
    One sqlite database file, its connection and the one thread that uses it.

    Calls go through L{run}, which runs a function with the connection on
    the database thread inside a transaction and fires once it committed.

    @param path: the database file; created when missing.
    @param reactor: the reactor (default: the global one).
    """

    def __init__(self, path: str, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        self.path = path
        self._reactor = reactor
        self._state = "closed"  # closed, opening, open, closing
        self._users = 0
        self._waiters: List[Deferred] = []
        self._idle: List[Deferred] = []
        self._closed: List[Deferred] = []
        self._pending: List[Tuple[Operation, tuple, Deferred]] = []
        self._busy = False
        self._pool: Optional[ThreadPool] = None
        self._trigger: Any = None
        self._lock_fd: Optional[int] = None
        # Used on the database thread only:
        self._conn: Optional[sqlite3.Connection] = None
        self._known: set = set()

    # Lifecycle (reactor thread)

    @property
    def is_open(self) -> bool:
        """Whether calls are accepted."""
        return self._state == "open"

    def start(self) -> Deferred:
        """
        Open the database (or count one more user of the open database).

        @return: fires when open; fails with L{DatabaseInUse} when another
            process holds the file's lock, with L{StoreUnavailable} when the
            file cannot be opened as a WAL database.
        """
        if self._state == "open":
            self._users += 1
            return succeed(None)
        if self._state == "opening":
            self._users += 1
            waiter: Deferred = Deferred()
            self._waiters.append(waiter)
            return waiter
        if self._state == "closing":
            reopen: Deferred = Deferred()
            self._closed.append(reopen)
            return reopen.addCallback(lambda _: self.start())
        try:
            self._lock()
        except StoreUnavailable:
            return fail()
        self._state = "opening"
        self._users = 1
        self._pool = ThreadPool(1, 1, name=f"sqlite {self.path}")
        self._pool.start()
        self._trigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._emergency_shutdown
        )
        d = deferToThreadPool(self._reactor, self._pool, self._connect)
        d.addBoth(self._opened)
        return d

    def _opened(self, result: Any) -> Any:
        waiters, self._waiters = self._waiters, []
        if isinstance(result, Failure):
            self._users = 0
            self._shutdown_pool()
            self._state = "closed"
            for waiter in waiters:
                waiter.errback(result)
            return result
        self._state = "open"
        for waiter in waiters:
            waiter.callback(None)
        return None

    def stop(self) -> Deferred:
        """
        Count one user less; when none is left, let pending calls finish,
        close the connection, stop the thread and release the lock.
        """
        if self._state == "opening":
            opened: Deferred = Deferred()
            self._waiters.append(opened)
            return opened.addBoth(lambda _: self.stop())
        if self._state == "closing":
            closed_: Deferred = Deferred()
            self._closed.append(closed_)
            return closed_
        if self._state != "open":
            return succeed(None)
        self._users -= 1
        if self._users > 0:
            return succeed(None)
        self._state = "closing"
        idle: Deferred = Deferred()
        self._idle.append(idle)
        self._kick()
        idle.addCallback(
            lambda _: deferToThreadPool(self._reactor, self._pool, self._disconnect)
        )

        def closed(result: Any) -> Any:
            self._shutdown_pool()
            self._state = "closed"
            waiters, self._closed = self._closed, []
            for waiter in waiters:
                waiter.callback(None)
            return None if not isinstance(result, Failure) else result

        idle.addBoth(closed)
        return idle

    def _lock(self) -> None:
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreUnavailable(f"cannot open the lock file {lock_path}: {e.strerror}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            try:
                holder = os.read(fd, 32).decode("ascii", "replace").strip()
            except OSError:
                pass
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DatabaseInUse(
                    f"another fireworq process uses {self.path}"
                    + (f" (pid {holder})" if holder else "")
                    + f"; its lock file is {lock_path}"
                )
            raise StoreUnavailable(f"cannot lock {lock_path}: {e.strerror}")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _shutdown_pool(self) -> None:
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        if self._pool is not None:
            self._pool.stop()  # the thread is idle: this returns at once
            self._pool = None
        self._unlock()

    def _emergency_shutdown(self) -> None:
        # The reactor stops while the database is open: close it anyway.
        self._trigger = None
        if self._pool is not None:
            self._pool.callInThread(self._disconnect)
        self._state = "closed"
        self._shutdown_pool()

    # Database thread

    def _unavailable(self, e: BaseException) -> BaseException:
        """Translate a sqlite error into the exception a caller sees."""
        if isinstance(e, StoreUnavailable):
            return e
        if isinstance(e, (sqlite3.OperationalError, sqlite3.InternalError)) or (
            type(e) is sqlite3.DatabaseError
        ):
            unavailable = StoreUnavailable(f"sqlite database {self.path}: {e}")
            unavailable.__cause__ = e
            return unavailable
        return e

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=512,
            )
        except sqlite3.Error as e:
            raise self._unavailable(e)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(
                    f"sqlite database {self.path} cannot use the WAL journal (got {mode})"
                )
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SHARED_SCHEMA:
                conn.execute(statement)
            if conn.execute("PRAGMA user_version").fetchone()[0] < LAYOUT_VERSION:
                _adopt_legacy_tables(conn)
                conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
            conn.execute("COMMIT")
        except Exception as e:
            conn.close()
            raise self._unavailable(e)
        self._conn = conn
        self._known = set()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def ensure_queue(self, conn: sqlite3.Connection, key: str) -> None:
        """
        On the database thread: create the tables of the table key ``key``
        unless this connection already did.
        """
        if key in self._known:
            return
        for statement in queue_schema(key):
            conn.execute(statement)
        self._known.add(key)

    def _run_batch(self, operations: List[Tuple[Operation, tuple]]) -> List[Tuple[bool, Any]]:
        conn = self._conn
        if conn is None:
            gone = StoreUnavailable(f"sqlite database {self.path} is closed")
            return [(False, gone)] * len(operations)
        results: List[Tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for function, args in operations:
                conn.execute("SAVEPOINT call")
                try:
                    value = function(conn, *args)
                except Exception as e:
                    if not conn.in_transaction:
                        raise  # sqlite rolled the whole transaction back
                    conn.execute("ROLLBACK TO call")
                    conn.execute("RELEASE call")
                    self._known.clear()  # its CREATE TABLEs were undone
                    results.append((False, self._unavailable(e)))
                else:
                    conn.execute("RELEASE call")
                    results.append((True, value))
            conn.execute("COMMIT")
        except Exception as e:
            self._known.clear()
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            # Nothing of this transaction was committed: every call fails,
            # with its own error when it had one.
            error = self._unavailable(e)
            return [
                results[i] if i < len(results) and not results[i][0] else (False, error)
                for i in range(len(operations))
            ]
        return results

    # Calls (reactor thread)

    def run(self, function: Operation, *args: Any) -> Deferred:
        """
        Run ``function(connection, *args)`` on the database thread inside a
        transaction; fire with its result after the COMMIT, or fail with its
        exception (its changes undone).  Fails at once with
        L{StoreUnavailable} when the database is not open.
        """
        if self._state != "open":
            return fail(StoreUnavailable(f"sqlite database {self.path} is not open"))
        d: Deferred = Deferred()
        self._pending.append((function, args, d))
        self._kick()
        return d

    def _kick(self) -> None:
        if self._busy:
            return
        if self._pool is None:  # shut down with the reactor
            pending, self._pending = self._pending, []
            for _, _, waiter in pending:
                waiter.errback(StoreUnavailable(f"sqlite database {self.path} is closed"))
            return
        if not self._pending:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)
            return
        batch = self._pending[:MAX_BATCH]
        del self._pending[:MAX_BATCH]
        self._busy = True
        d = deferToThreadPool(
            self._reactor, self._pool, self._run_batch, [(f, a) for f, a, _ in batch]
        )
        d.addBoth(self._batch_done, [waiter for _, _, waiter in batch])

    def _batch_done(self, results: Any, waiters: List[Deferred]) -> None:
        if isinstance(results, Failure):
            results = [(False, results.value)] * len(waiters)
        for (ok, value), waiter in zip(results, waiters):
            if ok:
                waiter.callback(value)
            else:
                waiter.errback(Failure(value))
        self._busy = False
        self._kick()


@implementer(IJobStore)
class SqliteJobStore:
    """
    L{IJobStore} over a L{SqliteDatabase}.

    @param db: the database (shared with a L{SqliteRepository}).
    @param clock: returns the time in milliseconds since the epoch; it stamps
        ``created_at``, ``next_try`` and ``failed_at``.
    """

    name = "sqlite"

    def __init__(self, db: SqliteDatabase, clock: Optional[Clock] = None) -> None:
        self.db = db
        self._clock: Clock = clock or system_clock

    def start(self) -> Deferred:
        return self.db.start()

    def stop(self) -> Deferred:
        return self.db.stop()

    def ping(self) -> Deferred:
        return self.db.run(lambda conn: conn.execute("SELECT 1").fetchone() and None)

    def storage_key(self, queue_name: str) -> str:
        """The queue's L{table_key}: every exact name has tables of its own."""
        return table_key(queue_name)

    def _run(self, queue_name: str, function: Operation, *args: Any) -> Deferred:
        key = table_key(queue_name)

        def call(conn: sqlite3.Connection) -> Any:
            self.db.ensure_queue(conn, key)
            return function(conn, jobs_table(key), failures_table(key), *args)

        return self.db.run(call)

    def prepare_queue(self, queue_name: str) -> Deferred:
        return self._run(queue_name, lambda conn, jobs, failures: None)

    def push(self, entries: Sequence[PushEntry]) -> Deferred:
        entries = list(entries)
        try:
            for entry in entries:
                check_storable(entry)
        except ValueError:
            return fail()
        return self.db.run(self._push, entries, self._clock())

    def _push(self, conn: sqlite3.Connection, entries: List[PushEntry], now: int) -> List[Job]:
        stored = []
        for entry in entries:
            key = table_key(entry.queue_name)
            self.db.ensure_queue(conn, key)
            new = entry.job
            next_try = now + new.run_after * 1000
            status = "claimed" if entry.grabber_id is None else "grabbed"
            cursor = conn.execute(
                f"INSERT INTO {jobs_table(key)} (next_try, grabber_id, status, created_at,"
                " retry_count, retry_delay, fail_count, category, url, payload, timeout)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (next_try, entry.grabber_id, status, now, new.max_retries, new.retry_delay,
                 new.category, new.url, new.payload, new.timeout),
            )
            stored.append(new.stored(cursor.lastrowid, now, entry.grabber_id))
        return stored

    def grab(self, queue_name: str, limit: int, grabber_id: int) -> Deferred:
        if limit <= 0:
            return succeed([])
        return self._run(queue_name, self._grab, limit, grabber_id, self._clock())

    @staticmethod
    def _grab(conn, jobs, failures, limit: int, grabber_id: int, now: int) -> List[Job]:
        rows = conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM {jobs} WHERE status = 'claimed' AND next_try <= ?"
            " ORDER BY next_try, job_id LIMIT ?",
            (now, limit),
        ).fetchall()
        ids = [row[0] for row in rows]
        for chunk in _chunks(ids):
            conn.execute(
                f"UPDATE {jobs} SET status = 'grabbed', grabber_id = ?"
                f" WHERE job_id IN ({','.join('?' * len(chunk))})",
                [grabber_id, *chunk],
            )
        return [_job(row[:4] + ("grabbed",) + row[5:11] + (grabber_id,)) for row in rows]

    def complete(
        self, queue_name: str, completions: Sequence[Completion], grabber_id: int
    ) -> Deferred:
        if not completions:
            return succeed(None)
        return self._run(queue_name, self._complete, list(completions), grabber_id, self._clock())

    @staticmethod
    def _complete(conn, jobs, failures, completions: List[Completion], grabber_id: int, now: int) -> None:
        success, retry, failed = [], [], []
        for completion in completions:
            owned = (completion.job.id, grabber_id)
            if completion.kind == CompletionKind.SUCCESS:
                success.append(owned)
            elif completion.kind == CompletionKind.RETRY:
                retry.append((now,) + owned)
            else:
                result = failure_result_text(completion.job, completion.result)
                failed.append((result, now) + owned)
        if failed:
            conn.executemany(
                f"INSERT INTO {failures} (job_id, category, url, payload, result, fail_count,"
                " failed_at, created_at) SELECT job_id, category, url, payload, ?,"
                f" fail_count + 1, ?, created_at FROM {jobs} WHERE {_OWNED}",
                failed,
            )
        if success or failed:
            conn.executemany(
                f"DELETE FROM {jobs} WHERE {_OWNED}", success + [row[2:] for row in failed]
            )
        if retry:
            conn.executemany(
                f"UPDATE {jobs} SET status = 'claimed', grabber_id = NULL,"
                " next_try = ? + retry_delay * 1000, retry_count = MAX(retry_count - 1, 0),"
                f" fail_count = fail_count + 1 WHERE {_OWNED}",
                retry,
            )

    def release(self, queue_name: str, job_ids: Sequence[int], grabber_id: int) -> Deferred:
        ids = sorted(set(job_ids))
        if not ids:
            return succeed(0)
        return self._run(queue_name, self._release, ids, grabber_id)

    @staticmethod
    def _release(conn, jobs, failures, ids: List[int], grabber_id: int) -> int:
        cursor = conn.executemany(
            f"UPDATE {jobs} SET status = 'claimed', grabber_id = NULL WHERE {_OWNED}",
            [(job_id, grabber_id) for job_id in ids],
        )
        return cursor.rowcount

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        return self._run(queue_name, self._recover, grabber_id)

    @staticmethod
    def _recover(conn, jobs, failures, grabber_id: int) -> int:
        cursor = conn.execute(
            f"UPDATE {jobs} SET status = 'claimed', grabber_id = NULL"
            " WHERE status = 'grabbed' AND (grabber_id IS NULL OR grabber_id <> ?)",
            (grabber_id,),
        )
        return cursor.rowcount

    def find_job(self, queue_name: str, job_id: int) -> Deferred:
        return self._run(queue_name, self._find_job, job_id, False)

    def delete_job(self, queue_name: str, job_id: int) -> Deferred:
        return self._run(queue_name, self._find_job, job_id, True)

    @staticmethod
    def _find_job(conn, jobs, failures, job_id: int, delete: bool) -> Optional[Job]:
        row = conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM {jobs} WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        if delete:
            conn.execute(f"DELETE FROM {jobs} WHERE job_id = ?", (job_id,))
        return _job(row)

    def list_jobs(
        self,
        queue_name: str,
        state: JobState,
        limit: int,
        start: Optional[PageKey],
        descending: bool,
    ) -> Deferred:
        if limit <= 0:
            return fail(ValueError("limit must be positive"))
        conditions = ["status = ?"]
        params: List[Any] = ["grabbed" if state == JobState.GRABBED else "claimed"]
        if state == JobState.WAITING:
            conditions.append("next_try <= ?")
            params.append(self._clock())
        elif state == JobState.DEFERRED:
            conditions.append("next_try > ?")
            params.append(self._clock())
        if start is not None:
            conditions.append(f"(next_try, job_id) {'<=' if descending else '>='} (?, ?)")
            params.extend(start)
        direction = "DESC" if descending else "ASC"
        params.append(limit + 1)

        def query(conn, jobs, failures) -> Page:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM {jobs} WHERE {' AND '.join(conditions)}"
                f" ORDER BY next_try {direction}, job_id {direction} LIMIT ?",
                params,
            ).fetchall()
            items = [_job(row) for row in rows]
            if len(items) > limit:
                return Page(items[:limit], (items[limit].next_try, items[limit].id))
            return Page(items, None)

        return self._run(queue_name, query)

    def find_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._find_failed, failure_id, False)

    def delete_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._find_failed, failure_id, True)

    def retry_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._retry_failed, queue_name, failure_id, self._clock())

    def _retry_failed(
        self, conn, jobs, failures, queue_name: str, failure_id: int, now: int
    ) -> Optional[Tuple[FailedJob, Job]]:
        failed = self._find_failed(conn, jobs, failures, failure_id, True)
        if failed is None:
            return None
        entry = PushEntry(queue_name, failed.as_new_job())
        check_storable(entry)
        return failed, self._push(conn, [entry], now)[0]

    @staticmethod
    def _find_failed(conn, jobs, failures, failure_id: int, delete: bool) -> Optional[FailedJob]:
        row = conn.execute(
            f"SELECT {_FAILED_COLUMNS} FROM {failures} WHERE failure_id = ?", (failure_id,)
        ).fetchone()
        if row is None:
            return None
        if delete:
            conn.execute(f"DELETE FROM {failures} WHERE failure_id = ?", (failure_id,))
        return _failed(row)

    def list_failed(
        self, queue_name: str, order: FailureOrder, limit: int, start: Optional[PageKey]
    ) -> Deferred:
        if limit <= 0:
            return fail(ValueError("limit must be positive"))
        params: List[Any] = []
        if order == FailureOrder.FAILED:
            where = "WHERE failure_id <= ?" if start is not None else ""
            if start is not None:
                params.append(start[1])
            order_by = "failure_id DESC"
        else:
            where = "WHERE (created_at, failure_id) <= (?, ?)" if start is not None else ""
            if start is not None:
                params.extend(start)
            order_by = "created_at DESC, failure_id DESC"
        params.append(limit + 1)

        def query(conn, jobs, failures) -> Page:
            rows = conn.execute(
                f"SELECT {_FAILED_COLUMNS} FROM {failures} {where} ORDER BY {order_by} LIMIT ?",
                params,
            ).fetchall()
            items = [_failed(row) for row in rows]
            if len(items) > limit:
                return Page(items[:limit], (items[limit].created_at, items[limit].id))
            return Page(items, None)

        return self._run(queue_name, query)

    def count_jobs(self, queue_name: str) -> Deferred:
        return self._run(queue_name, self._count_jobs, self._clock())

    @staticmethod
    def _count_jobs(conn, jobs, failures, now: int) -> JobCounts:
        waiting, deferred, grabbed = conn.execute(
            f"SELECT (SELECT count(*) FROM {jobs} WHERE status = 'claimed' AND next_try <= ?),"
            f" (SELECT count(*) FROM {jobs} WHERE status = 'claimed' AND next_try > ?),"
            f" (SELECT count(*) FROM {jobs} WHERE status = 'grabbed')",
            (now, now),
        ).fetchone()
        return JobCounts(waiting=waiting, deferred=deferred, grabbed=grabbed)


_QUEUE_SELECT = (
    "SELECT q.name, q.polling_interval, q.max_workers, t.max_dispatches_per_second,"
    " t.max_burst_size FROM queue q LEFT JOIN queue_throttle t ON t.name = q.name"
)


def _definition(row: tuple) -> QueueDefinition:
    name, polling_interval, max_workers, rate, burst = row
    return normalize_definition(
        QueueDefinition(
            name=name,
            polling_interval=polling_interval,
            max_workers=max_workers,
            max_dispatches_per_second=float(rate or 0.0),
            max_burst_size=burst or 0,
        )
    )


def _bump(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("INSERT OR IGNORE INTO config_revision (name, revision) VALUES (?, 0)", (name,))
    conn.execute("UPDATE config_revision SET revision = revision + 1 WHERE name = ?", (name,))


@implementer(IRepository)
class SqliteRepository:
    """
    L{IRepository} over a L{SqliteDatabase}.  The revision is made of the
    ``config_revision`` rows ``queue_definition`` and ``routing``, bumped in
    the transaction of every change.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def start(self) -> Deferred:
        """Open the database, as L{SqliteJobStore.start} does."""
        return self.db.start()

    def stop(self) -> Deferred:
        """Release the database, as L{SqliteJobStore.stop} does."""
        return self.db.stop()

    def list_queues(self) -> Deferred:
        return self.db.run(
            lambda conn: [
                _definition(row)
                for row in conn.execute(_QUEUE_SELECT + " ORDER BY q.name").fetchall()
            ]
        )

    @staticmethod
    def _find_queue(conn: sqlite3.Connection, name: str) -> Optional[QueueDefinition]:
        row = conn.execute(_QUEUE_SELECT + " WHERE q.name = ?", (name,)).fetchone()
        return None if row is None else _definition(row)

    def find_queue(self, name: str) -> Deferred:
        return self.db.run(self._find_queue, name)

    def put_queue(self, definition: QueueDefinition) -> Deferred:
        definition = normalize_definition(definition)

        def put(conn: sqlite3.Connection) -> bool:
            if self._find_queue(conn, definition.name) == definition:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO queue (name, polling_interval, max_workers)"
                " VALUES (?, ?, ?)",
                (definition.name, definition.polling_interval, definition.max_workers),
            )
            if definition.throttled:
                conn.execute(
                    "INSERT OR REPLACE INTO queue_throttle"
                    " (name, max_dispatches_per_second, max_burst_size) VALUES (?, ?, ?)",
                    (definition.name, definition.max_dispatches_per_second,
                     definition.max_burst_size),
                )
            else:
                conn.execute("DELETE FROM queue_throttle WHERE name = ?", (definition.name,))
            _bump(conn, "queue_definition")
            return True

        return self.db.run(put)

    def delete_queue(self, name: str) -> Deferred:
        def delete(conn: sqlite3.Connection) -> Optional[QueueDefinition]:
            definition = self._find_queue(conn, name)
            if definition is not None:
                conn.execute("DELETE FROM queue WHERE name = ?", (name,))
                conn.execute("DELETE FROM queue_throttle WHERE name = ?", (name,))
                _bump(conn, "queue_definition")
            return definition

        return self.db.run(delete)

    def list_routings(self) -> Deferred:
        return self.db.run(
            lambda conn: [
                Routing(*row)
                for row in conn.execute(
                    "SELECT job_category, queue_name FROM routing ORDER BY job_category"
                ).fetchall()
            ]
        )

    @staticmethod
    def _find_routing(conn: sqlite3.Connection, category: str) -> Optional[Routing]:
        row = conn.execute(
            "SELECT job_category, queue_name FROM routing WHERE job_category = ?", (category,)
        ).fetchone()
        return None if row is None else Routing(*row)

    def find_routing(self, category: str) -> Deferred:
        return self.db.run(self._find_routing, category)

    def put_routing(self, routing: Routing) -> Deferred:
        def put(conn: sqlite3.Connection) -> bool:
            if self._find_routing(conn, routing.job_category) == routing:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO routing (job_category, queue_name) VALUES (?, ?)",
                (routing.job_category, routing.queue_name),
            )
            _bump(conn, "routing")
            return True

        return self.db.run(put)

    def delete_routing(self, category: str) -> Deferred:
        def delete(conn: sqlite3.Connection) -> Optional[Routing]:
            routing = self._find_routing(conn, category)
            if routing is not None:
                conn.execute("DELETE FROM routing WHERE job_category = ?", (category,))
                _bump(conn, "routing")
            return routing

        return self.db.run(delete)

    def revision(self) -> Deferred:
        def read(conn: sqlite3.Connection) -> str:
            revisions = dict(
                conn.execute(
                    "SELECT name, revision FROM config_revision"
                    " WHERE name IN ('queue_definition', 'routing')"
                ).fetchall()
            )
            return f"{revisions.get('queue_definition', 0)}.{revisions.get('routing', 0)}"

        return self.db.run(read)


def open_sqlite(
    path: str, clock: Optional[Clock] = None, reactor: Any = None
) -> Tuple[SqliteJobStore, SqliteRepository]:
    """
    The job store and the repository of the database file ``path``, sharing
    one L{SqliteDatabase}.  Start the job store (or the repository) before
    use; stop what you started.
    """
    db = SqliteDatabase(path, reactor=reactor)
    return SqliteJobStore(db, clock=clock), SqliteRepository(db)
