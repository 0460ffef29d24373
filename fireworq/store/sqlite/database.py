"""
L{SqliteDatabase}: one sqlite database file, its connection and the one
thread that uses it, shared by the job store and the repository.

Durability: WAL journal, ``synchronous=FULL``; a Deferred fires only after
the COMMIT that holds its change.  All sqlite calls run on one dedicated
thread.  Calls that arrive while a transaction runs are committed together
in the next one (group commit), each inside its own savepoint so that one
failing call leaves the others of its transaction unharmed.

Exclusivity: L{SqliteDatabase.start} takes the file's lock
(L{fireworq.store.sqlite.lockfile}); while another process holds it, start
fails with L{DatabaseInUse}, so two processes never dispatch the same file.

Errors: sqlite I/O, locking and corruption errors surface as
L{StoreUnavailable}; a call on a database that is not open fails at once.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from fireworq.store.interface import StoreUnavailable
from fireworq.store.sqlite.lockfile import DatabaseInUse, lock_database, unlock_database
from fireworq.store.sqlite.schema import prepare_file, queue_schema

__all__ = ["BUSY_TIMEOUT", "MAX_BATCH", "DatabaseInUse", "Operation", "SqliteDatabase"]

#: Seconds a statement waits for a lock held by another connection (an
#: administrator's sqlite3 shell, say) before failing with StoreUnavailable.
BUSY_TIMEOUT = 5.0

#: The most calls committed in one transaction.
MAX_BATCH = 500

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
        self._lock_fd = lock_database(self.path)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            unlock_database(self._lock_fd)
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
            prepare_file(conn)
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
