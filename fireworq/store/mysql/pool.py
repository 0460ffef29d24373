"""
A pool of MySQL connections on L{twisted.enterprise.adbapi}, with the
failure handling the store needs.

L{MySQLPool.run} runs one unit of work -- a function of a cursor -- as one
transaction in a pool thread and fires with its result.  Around it:

  - every connection is set up once: READ COMMITTED (no gap locks, so grabs
    and completions never block pushes), UTC session time zone, utf8mb4,
    autocommit off, a short lock wait timeout;
  - a connection idle for nearly the server's ``wait_timeout`` (or older
    than L{MAX_LIFETIME}) is replaced before use, so the server never closes
    one under us in the normal course of things;
  - when the connection turns out to be gone anyway (server restarted,
    connection killed) or the server rolled the transaction back (deadlock,
    lock wait timeout), the work is retried once on a new connection;
  - what still fails reaches the caller as
    L{fireworq.store.interface.StoreUnavailable} with a one-line message --
    never as a driver exception, and nothing is logged with a traceback.

A lost connection during COMMIT leaves the outcome unknown: the work is
retried only when it says it is safe to repeat (C{idempotent=True});
otherwise L{CommitOutcomeUnknown} (a L{StoreUnavailable}) is raised.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Set

from twisted.enterprise import adbapi
from twisted.internet import threads
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger

from fireworq.store.interface import CommitOutcomeUnknown, StoreUnavailable
from fireworq.store.mysql.driver import Driver, ErrorKind
from fireworq.store.mysql.dsn import DSN

#: Seconds after which a connection is replaced even if it is busy all the
#: time (lets a load balancer or a failed-over server take new connections).
MAX_LIFETIME = 3600.0

#: Seconds of idleness short of ``wait_timeout`` at which a connection is
#: replaced before use.
IDLE_MARGIN = 5.0

#: Seconds a statement waits for a row lock before the server gives up
#: (the default 50 s would hold pool threads far too long).
LOCK_WAIT_TIMEOUT = 10

Work = Callable[[Any], Any]


class ServerSettings:
    """What the store needs to know of the server's settings."""

    __slots__ = ("auto_increment_increment", "max_allowed_packet", "autoinc_lock_mode")

    def __init__(self, auto_increment_increment: int = 1, max_allowed_packet: int = 16 << 20,
                 autoinc_lock_mode: int = 1) -> None:
        #: Distance between consecutive auto-increment values.
        self.auto_increment_increment = auto_increment_increment
        #: The largest statement the server accepts, in bytes.
        self.max_allowed_packet = max_allowed_packet
        #: InnoDB's auto-increment lock mode (0, 1 or 2).
        self.autoinc_lock_mode = autoinc_lock_mode


class _ConnectionInfo:
    __slots__ = ("created", "last_used", "idle_limit")

    def __init__(self, created: float, idle_limit: float) -> None:
        self.created = created
        self.last_used = created
        self.idle_limit = idle_limit


class MySQLPool(adbapi.ConnectionPool):
    """
    An adbapi connection pool for one DSN.

    @param dsn: where to connect.
    @param driver: the DB-API driver to use.
    @param size: the most connections (= pool threads) open at once.
    @param reactor: the reactor whose thread receives the results.
    @param name: a name for the thread pool and the log.
    """

    log = Logger()

    def __init__(self, dsn: DSN, driver: Driver, size: int, reactor: Any, name: str = "mysql") -> None:
        self.driver = driver
        self.dsn_info = dsn
        self.size = size
        self._variables = dsn.variables
        self._info: Dict[int, _ConnectionInfo] = {}
        self._pending: Set[Deferred] = set()
        self._closed = False
        self._users = 0
        #: Settings read from the server by the latest new connection.
        self.settings = ServerSettings()
        #: Counters for metrics and tests: connections replaced before use
        #: because they were stale, work retried after a lost connection or
        #: a rollback by the server, work that failed with StoreUnavailable.
        self.recycled = 0
        self.retried = 0
        self.failed = 0
        super().__init__(
            driver.module,
            cp_min=1,
            cp_max=size,
            cp_name=f"fireworq-{name}",
            cp_noisy=False,
            cp_openfun=self._setup_connection,
            cp_reconnect=True,
            cp_reactor=reactor,
            **driver.connect_kwargs(dsn),
        )
        self.reactor = reactor

    # -- connections (pool threads only) --------------------------------------

    def _setup_connection(self, conn: Any) -> None:
        cursor = conn.cursor()
        try:
            # The DSN's system variables first (as the Go driver sets them),
            # then what the store relies on, which they must not change.
            for name, value in self._variables:
                cursor.execute(f"SET SESSION {name} = {value}")
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.execute(
                "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_TRANS_TABLES')"
            )
            cursor.execute(
                "SET SESSION time_zone = '+00:00', "
                f"SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT}"
            )
            cursor.execute(
                "SELECT @@SESSION.wait_timeout, @@SESSION.auto_increment_increment, "
                "@@SESSION.max_allowed_packet, @@GLOBAL.innodb_autoinc_lock_mode"
            )
            wait_timeout, increment, max_packet, lock_mode = cursor.fetchone()
        finally:
            cursor.close()
        conn.commit()
        self.settings = ServerSettings(
            auto_increment_increment=int(increment),
            max_allowed_packet=int(max_packet),
            autoinc_lock_mode=int(lock_mode),
        )
        idle_limit = max(1.0, float(wait_timeout) - IDLE_MARGIN)
        if float(wait_timeout) <= IDLE_MARGIN * 2:
            idle_limit = max(0.5, float(wait_timeout) / 2)
        self._info[id(conn)] = _ConnectionInfo(time.monotonic(), idle_limit)

    def _close(self, conn: Any) -> None:
        # adbapi logs a traceback when closing a dead connection fails; a
        # dead connection is expected here, so close quietly.
        self._info.pop(id(conn), None)
        try:
            conn.close()
        except Exception:
            pass

    def _discard(self) -> None:
        """Drop this thread's connection (if any) without a word."""
        conn = self.connections.pop(self.threadID(), None)
        if conn is not None:
            self._close(conn)

    def _fresh_connection(self) -> Any:
        """This thread's connection, replaced first if it is stale."""
        conn = self.connections.get(self.threadID())
        if conn is not None:
            info = self._info.get(id(conn))
            now = time.monotonic()
            if info is None or now - info.last_used > info.idle_limit or now - info.created > MAX_LIFETIME:
                self.recycled += 1
                self._discard()
        return self.connect()

    # -- running work -----------------------------------------------------------

    def _run_in_thread(self, work: Work, idempotent: bool, what: str) -> Any:
        for attempt in (1, 2):
            committing = False
            try:
                conn = self._fresh_connection()
                cursor = conn.cursor()
                try:
                    result = work(cursor)
                finally:
                    try:
                        cursor.close()
                    except Exception:
                        pass
                committing = True
                conn.commit()
                info = self._info.get(id(conn))
                if info is not None:
                    info.last_used = time.monotonic()
                return result
            except BaseException as error:
                kind = self.driver.classify(error)
                if kind is None or kind == ErrorKind.OTHER or kind == ErrorKind.REFUSED:
                    self._rollback_quietly()
                elif kind == ErrorKind.LOST:
                    self._discard()
                else:  # TRANSIENT: the server rolled back already
                    self._rollback_quietly()
                if kind is None:
                    raise
                description = self.driver.describe(error)
                retriable = kind in (ErrorKind.LOST, ErrorKind.TRANSIENT)
                if attempt == 1 and retriable and (idempotent or not committing):
                    self.retried += 1
                    continue
                self.failed += 1
                if committing and kind == ErrorKind.LOST and not idempotent:
                    raise CommitOutcomeUnknown(
                        f"the database connection was lost while committing ({what}); "
                        f"the change may or may not have been applied: {description}"
                    ) from error
                raise StoreUnavailable(f"the database cannot be used ({what}): {description}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _rollback_quietly(self) -> None:
        conn = self.connections.get(self.threadID())
        if conn is None:
            return
        try:
            conn.rollback()
        except Exception:
            self._discard()

    def run(self, work: Work, idempotent: bool = False, what: str = "query") -> Deferred:
        """
        Run ``work(cursor)`` in a pool thread as one transaction (committed
        when it returns) and fire with its result.

        @param idempotent: the work may be repeated after a connection was
            lost during COMMIT (it would change nothing the second time).
        @param what: names the operation in error messages.
        @raise StoreUnavailable: (asynchronously) when the database cannot be
            used even after one retry, or the pool is closed.
        """
        if self._closed:
            return fail(StoreUnavailable(f"the database pool is closed ({what})"))
        if not self.running:
            self.start()
        d = threads.deferToThreadPool(self.reactor, self.threadpool, self._run_in_thread, work, idempotent, what)
        self._pending.add(d)

        def done(result: Any) -> Any:
            self._pending.discard(d)
            return result

        d.addBoth(done)
        return d

    def retain(self) -> "MySQLPool":
        """Count one more user (a store) of the pool; see L{release}."""
        self._users += 1
        return self

    def release(self) -> Deferred:
        """
        One user is done with the pool; the last one shuts it down
        (L{shutdown}).
        """
        self._users -= 1
        if self._users > 0:
            return succeed(None)
        return self.shutdown()

    def shutdown(self) -> Deferred:
        """
        Refuse new work, let pending work finish, then close every
        connection and stop the threads.
        """
        if self._closed and not self._pending:
            return succeed(None)
        self._closed = True
        pending = list(self._pending)
        if not pending:
            self._close_now()
            return succeed(None)
        d = DeferredList(pending, consumeErrors=False)
        d.addCallback(lambda _: self._close_now())
        return d

    def _close_now(self) -> None:
        if self.running or self.shutdownID or self.startID:
            self.close()
