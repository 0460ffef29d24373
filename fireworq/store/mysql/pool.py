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
    connection killed) or the server rolled the transaction back after a
    lock wait timeout, the work is retried once on a new connection;
  - work that lost a conflict (error 1213: a deadlock on one server, a
    certification conflict on a Galera cluster, where two nodes may change
    the same row at once and the later commit loses) is run again up to
    L{CONFLICT_RETRIES} times, after the one backoff policy of the server
    (L{fireworq.backoff.policy}) -- nothing was applied, so this is safe
    for every unit of work, even when the conflict surfaces at COMMIT;
  - on Galera, work that must see every commit made on any node before it
    (C{causal=True}) runs with ``wsrep_sync_wait`` set; L{MySQLPool.detect}
    finds out whether the server is a Galera node and its limits;
  - what still fails reaches the caller as
    L{fireworq.store.interface.StoreUnavailable} with a one-line message --
    never as a driver exception, and nothing is logged with a traceback.

A lost connection during COMMIT leaves the outcome unknown (so does a
Galera node that answers COMMIT with 1047 or 1180, having left the primary
component meanwhile): the work is retried only when it says it is safe to
repeat (C{idempotent=True}); otherwise L{CommitOutcomeUnknown} (a
L{StoreUnavailable}) is raised.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Set

import attr
from twisted.enterprise import adbapi
from twisted.internet import threads
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger

from fireworq import backoff
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

#: Seconds a MariaDB session may sit idle inside a transaction before the
#: server ends it (``idle_transaction_timeout``).  The store's transactions
#: run their statements back to back and always end, so only a process
#: that stopped mid-transaction (SIGSTOP, a frozen VM) reaches it; its
#: locks, such as a grab's shared lock on the lease row, would otherwise
#: keep the backup's takeover waiting for as long as the process stays
#: stopped.  Within a lease's time to live, so that a takeover finds the
#: row free (leases of 1 s and more).  MySQL has no such variable; there
#: it is not set.
IDLE_TRANSACTION_TIMEOUT = 1

#: How many times work that lost a conflict (1213) is run again before the
#: caller gets L{StoreUnavailable}.  On a Galera cluster two nodes grabbing,
#: completing or taking leases at once conflict now and then; a handful of
#: tries after short random delays resolves that, and a bound keeps a
#: pathological hot spot from holding a pool thread.
CONFLICT_RETRIES = 5

#: Seconds to wait before the n-th rerun after a conflict (n = 0, 1, ...):
#: 10 ms doubling up to 0.4 s, with up to 100 % jitter so that the two
#: losers of a conflict do not collide again in lock step.
conflict_delay = backoff.policy(initial=0.01, maximum=0.4, factor=2.0, jitter=1.0)

#: ``wsrep_sync_wait`` for causal work: wait for the node to apply every
#: write set committed anywhere in the cluster before reads (1),
#: UPDATE/DELETE (2) and INSERT/REPLACE (4) of the work.
CAUSAL_SYNC_WAIT = 7

Work = Callable[[Any], Any]

#: Errors a Galera node answers to COMMIT when it lost the primary component
#: while replicating it -- not ready (1047), error during commit (1180): the
#: write set may have reached the rest of the cluster, so the outcome is
#: unknown, as after a connection lost during COMMIT.
_GALERA_COMMIT_UNKNOWN = frozenset({1047, 1180})


class RetryWork(Exception):
    """
    Raised by a unit of work that found it cannot finish correctly right now
    (e.g. the Galera cluster changed size, and with it the auto-increment
    step, in the middle of a push): the pool rolls the transaction back and
    runs the work again, as after a conflict.
    """


@attr.s(frozen=True, slots=True, auto_attribs=True)
class GaleraInfo:
    """What L{MySQLPool.detect} found about a Galera node (None elsewhere)."""

    #: The node's name (``wsrep_node_name``).
    node_name: str = ""
    #: ``wsrep_cluster_size``: nodes in the node's component.
    cluster_size: int = 0
    #: ``wsrep_cluster_status``: C{Primary} when the node may take writes.
    cluster_status: str = ""
    #: ``wsrep_local_state_comment``: C{Synced} normally.
    state: str = ""
    #: ``wsrep_provider_version``.
    provider_version: str = ""
    #: ``wsrep_max_ws_rows``: rows one transaction may change (0: no limit).
    max_ws_rows: int = 0
    #: ``wsrep_max_ws_size``: bytes of one transaction's write set.
    max_ws_size: int = 2 << 30
    #: The session's ``wsrep_sync_wait`` (0: reads may lag other nodes).
    sync_wait: int = 0

    def as_dict(self) -> Dict[str, Any]:
        """The fields by name."""
        return attr.asdict(self)

    def describe(self) -> str:
        """One line for C{/settings} and the log."""
        return (
            f"on: node {self.node_name or '?'} ({self.state}) of a {self.cluster_status} cluster of "
            f"{self.cluster_size} at start; wsrep_max_ws_rows={self.max_ws_rows}, "
            f"wsrep_max_ws_size={self.max_ws_size}, wsrep_sync_wait={self.sync_wait}"
        )


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
        #: What L{detect} found: the Galera node's details, None for a plain
        #: server (or before detection).
        self.galera: Optional[GaleraInfo] = None
        self._detected = False
        #: Counters for metrics and tests: connections replaced before use
        #: because they were stale, work retried after a lost connection or
        #: a rollback by the server, work that failed with StoreUnavailable.
        self.recycled = 0
        self.retried = 0
        self.failed = 0
        #: Work run again after losing a conflict (1213), and work that
        #: still lost after L{CONFLICT_RETRIES} reruns.
        self.conflicts = 0
        self.conflicts_failed = 0
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
                "@@SESSION.max_allowed_packet, @@GLOBAL.innodb_autoinc_lock_mode, @@version"
            )
            wait_timeout, increment, max_packet, lock_mode, version = cursor.fetchone()
            if "mariadb" in str(version).lower():
                cursor.execute(f"SET SESSION idle_transaction_timeout = {IDLE_TRANSACTION_TIMEOUT}")
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

    def _run_in_thread(self, work: Work, idempotent: bool, what: str, causal: bool = False) -> Any:
        conflicts = 0
        retried = False
        while True:
            committing = False
            try:
                conn = self._fresh_connection()
                cursor = conn.cursor()
                try:
                    if causal and not self._detected:
                        self._detect_with(cursor)
                    if causal and self.galera is not None:
                        result = self._causally(cursor, work)
                    else:
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
                kind = ErrorKind.CONFLICT if isinstance(error, RetryWork) else self.driver.classify(error)
                if committing and self.galera is not None and self.driver.error_code(error) in _GALERA_COMMIT_UNKNOWN:
                    # The node left the primary component while replicating
                    # the commit: the cluster may or may not have it.
                    kind = ErrorKind.LOST
                if kind == ErrorKind.LOST:
                    self._discard()
                else:
                    self._rollback_quietly()
                if kind is None:
                    raise
                description = self.driver.describe(error)
                if kind == ErrorKind.CONFLICT and conflicts < CONFLICT_RETRIES:
                    # Known outcome: nothing was applied, even at COMMIT.
                    time.sleep(conflict_delay(conflicts))
                    conflicts += 1
                    self.conflicts += 1
                    continue
                if kind == ErrorKind.CONFLICT:
                    self.conflicts_failed += 1
                retriable = kind in (ErrorKind.LOST, ErrorKind.TRANSIENT)
                if not retried and retriable and (idempotent or not committing):
                    retried = True
                    self.retried += 1
                    continue
                self.failed += 1
                if committing and kind == ErrorKind.LOST and not idempotent:
                    raise CommitOutcomeUnknown(
                        f"the database connection was lost while committing ({what}); "
                        f"the change may or may not have been applied: {description}"
                    ) from error
                raise StoreUnavailable(f"the database cannot be used ({what}): {description}") from error

    def _causally(self, cursor: Any, work: Work) -> Any:
        """Run ``work`` with ``wsrep_sync_wait`` on, then put the session's value back."""
        galera = self.galera
        assert galera is not None
        restore = f"SET SESSION wsrep_sync_wait = {int(galera.sync_wait)}"
        cursor.execute(f"SET SESSION wsrep_sync_wait = {CAUSAL_SYNC_WAIT}")
        try:
            result = work(cursor)
        except BaseException:
            try:
                cursor.execute(restore)
            except Exception:
                self._discard()  # the session is in doubt: do not reuse it
            raise
        cursor.execute(restore)
        return result

    def _rollback_quietly(self) -> None:
        conn = self.connections.get(self.threadID())
        if conn is None:
            return
        try:
            conn.rollback()
        except Exception:
            self._discard()

    def run(self, work: Work, idempotent: bool = False, what: str = "query", causal: bool = False) -> Deferred:
        """
        Run ``work(cursor)`` in a pool thread as one transaction (committed
        when it returns) and fire with its result.

        @param idempotent: the work may be repeated after a connection was
            lost during COMMIT (it would change nothing the second time).
        @param what: names the operation in error messages.
        @param causal: on a Galera node, the work must see every transaction
            committed on any node before it started (C{wsrep_sync_wait}); a
            no-op on a single server, where every read sees every commit.
        @raise StoreUnavailable: (asynchronously) when the database cannot be
            used even after the retries, or the pool is closed.
        """
        if self._closed:
            return fail(StoreUnavailable(f"the database pool is closed ({what})"))
        if not self.running:
            self.start()
        d = threads.deferToThreadPool(
            self.reactor, self.threadpool, self._run_in_thread, work, idempotent, what, causal
        )
        self._pending.add(d)

        def done(result: Any) -> Any:
            self._pending.discard(d)
            return result

        d.addBoth(done)
        return d

    def detect(self) -> Deferred:
        """
        Find out whether the server is a Galera node (C{@@wsrep_on}; the
        query also works on MySQL, which has no such variable) and fire with
        its L{GaleraInfo}, or None for a plain server.  The result is kept in
        L{galera}, where causal work and batch sizes look.
        """
        return self.run(self._detect_with, idempotent=True, what="detect Galera")

    def _detect_with(self, cursor: Any) -> Optional[GaleraInfo]:
        cursor.execute(
            "SHOW VARIABLES WHERE Variable_name IN "
            "('wsrep_on', 'wsrep_max_ws_rows', 'wsrep_max_ws_size', 'wsrep_sync_wait', 'wsrep_node_name')"
        )
        variables = {_text(name): _text(value) for name, value in cursor.fetchall()}
        info: Optional[GaleraInfo] = None
        if variables.get("wsrep_on", "OFF").upper() in ("ON", "1"):
            cursor.execute("SHOW STATUS LIKE 'wsrep\\_%'")
            status = {_text(name): _text(value) for name, value in cursor.fetchall()}
            info = GaleraInfo(
                node_name=variables.get("wsrep_node_name", ""),
                cluster_size=_int(status.get("wsrep_cluster_size"), 0),
                cluster_status=status.get("wsrep_cluster_status", ""),
                state=status.get("wsrep_local_state_comment", ""),
                provider_version=status.get("wsrep_provider_version", ""),
                max_ws_rows=_int(variables.get("wsrep_max_ws_rows"), 0),
                max_ws_size=_int(variables.get("wsrep_max_ws_size"), 2 << 30),
                sync_wait=_int(variables.get("wsrep_sync_wait"), 0),
            )
        self.galera = info
        self._detected = True
        return info

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


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def _int(value: Optional[str], default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
