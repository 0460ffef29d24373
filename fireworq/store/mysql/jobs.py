"""
L{MySQLJobStore}: the jobs of every queue in the original Fireworq's tables
``fireworq_jq(<key>)`` and ``fireworq_jq_fail(<key>)`` (protocol A9).

This module holds the store's state, life cycle and transaction runner;
its operations live in mixins, one job each:

  - L{fireworq.store.mysql.tables}: creating a queue's tables and the
    columns they lack;
  - L{fireworq.store.mysql.push}: push (one multi-row INSERT per queue
    table, one COMMIT for everything; idempotency keys and hook jobs in the
    same transaction);
  - L{fireworq.store.mysql.grab}: grab, release, recover;
  - L{fireworq.store.mysql.complete}: successes, retries and failures;
  - L{fireworq.store.mysql.control}: purge, cancel, retry a failed job,
    expired idempotency keys;
  - L{fireworq.store.mysql.inspection} and L{fireworq.store.mysql.history}:
    look-ups, listings and kept finished jobs.

Every operation is one transaction with as few statements as its work
allows (design.md, "Performance principles").  Connections use READ
COMMITTED, so locking reads take no gap locks and never block pushes.
Times come from the database clock.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.store.idempotency import DEFAULT_WINDOW_MS
from fireworq.store.interface import IJobStore, StoreUnavailable
from fireworq.store.mysql.complete import MySQLCompletion
from fireworq.store.mysql.control import MySQLQueueControl
from fireworq.store.mysql.grab import MySQLGrab
from fireworq.store.mysql.history import MySQLHistory
from fireworq.store.mysql.inspection import MySQLInspection
from fireworq.store.mysql.pool import GaleraInfo, MySQLPool
from fireworq.store.mysql.push import MySQLPush
from fireworq.store.mysql.schema import LEASE_DDL, NOW_MS, table_key
from fireworq.store.mysql.tables import MySQLQueueTables


@implementer(IJobStore)
class MySQLJobStore(
    MySQLQueueTables, MySQLPush, MySQLGrab, MySQLCompletion, MySQLQueueControl, MySQLHistory, MySQLInspection
):
    """
    Jobs and failure logs in MySQL (or MariaDB).

    @param pool: the connection pool of the queue DSN (see
        L{fireworq.store.mysql.open_mysql_stores}, which builds it).
    @param fence_grabs: grab only while the lease row of the queue
        (C{fireworq_lease}, same database) is unexpired with C{epoch} equal
        to the grabber id.  Use it when dispatch is driven by
        L{fireworq.lease.keeper.LeaseKeeper}: a node that lost its lease without
        noticing yet (paused, slow) then cannot grab even once.
    @param clock: for tests only: milliseconds since the epoch to use
        instead of the database clock for job times (so the store contract's
        time-moving tests run on MySQL too).  Servers leave it None: every
        node must read the same clock, the database's.
    """

    name = "mysql"

    _log = Logger()

    def __init__(
        self, pool: MySQLPool, fence_grabs: bool = False, clock: Optional[Callable[[], int]] = None
    ) -> None:
        self._pool = pool.retain()
        self._fence = fence_grabs
        self._clock = clock
        self._prepared: Dict[str, bool] = {}
        #: Table key -> whether its job table has our ``attempts`` column.
        self._attempts: Dict[str, bool] = {}
        #: Table key -> the ALTER its job table lacks for the job options
        #: (B7), "" when it has their columns and index.
        self._options_ddl: Dict[str, str] = {}
        #: How long an idempotency key is remembered (ms).
        self.idempotency_window_ms = DEFAULT_WINDOW_MS
        #: The hook matcher (B12, L{fireworq.hooks.matcher.HookMatcher}) while
        #: a hook is defined, else None: events' hook jobs are inserted in
        #: the transaction of the change they report.
        self.event_hooks: Any = None
        self._preparing: Dict[str, List[Deferred]] = {}
        self._stopped = False
        #: Queue -> the one priority of its claimed jobs at its last grab
        #: that found jobs (L{MySQLGrab.grab}: the next grab tries it in one
        #: statement); absent after a grab that saw several or none.
        self._lone_priority: Dict[str, int] = {}

    def storage_key(self, queue_name: str) -> str:
        """
        The key of the queue's tables, the original's (protocol A9): names
        that differ only in characters outside ``[0-9a-z_]`` share it.
        """
        return table_key(queue_name)

    def _now(self) -> str:
        """The SQL of "now" in ms: the database clock (or the test clock)."""
        return NOW_MS if self._clock is None else str(int(self._clock()))

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> Deferred:
        def create(cursor: Any) -> None:
            if self._fence:
                for ddl in LEASE_DDL:
                    cursor.execute(ddl)
            else:
                cursor.execute("SELECT 1")

        d = self._go(create, idempotent=True, what="start")
        d.addCallback(lambda _: self._pool.detect())
        d.addCallback(self._detected)
        return d

    def _detected(self, galera: Optional[GaleraInfo]) -> None:
        if galera is None:
            return
        self._log.info(
            "The MySQL store is on Galera node {node} ({state}) of a {status} cluster of {size}; "
            "conflicts are retried, recoveries read with wsrep_sync_wait, "
            "wsrep_max_ws_rows={rows}, wsrep_max_ws_size={size_limit}",
            node=galera.node_name, state=galera.state, status=galera.cluster_status,
            size=galera.cluster_size, rows=galera.max_ws_rows, size_limit=galera.max_ws_size,
        )

    @property
    def galera(self) -> Optional[GaleraInfo]:
        """The Galera node found at L{start}, or None on a single server."""
        return getattr(self._pool, "galera", None)  # test doubles of the pool may lack it

    def stop(self) -> Deferred:
        """Let go of the connection pool; later calls fail with StoreUnavailable."""
        if self._stopped:
            return succeed(None)
        self._stopped = True
        return self._pool.release()

    def ping(self) -> Deferred:
        def ping(cursor: Any) -> None:
            cursor.execute("SELECT 1")
            cursor.fetchall()

        return self._go(ping, idempotent=True, what="ping")

    def _go(self, work: Any, idempotent: bool, what: str, causal: bool = False) -> Deferred:
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL job store is stopped ({what})"))
        if causal:
            return self._pool.run(work, idempotent=idempotent, what=what, causal=True)
        return self._pool.run(work, idempotent=idempotent, what=what)

    def _run(
        self, queue_names: Sequence[str], work: Any, idempotent: bool, what: str, causal: bool = False
    ) -> Deferred:
        """Run ``work`` once the queues' tables exist (C{causal}: see L{MySQLPool.run})."""
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL job store is stopped ({what})"))
        missing = [q for q in queue_names if not self._prepared.get(table_key(q))]
        if not missing:
            return self._go(work, idempotent=idempotent, what=what, causal=causal)
        d = succeed(None)
        for queue_name in dict.fromkeys(missing):
            d.addCallback(lambda _, q=queue_name: self.prepare_queue(q))
        d.addCallback(lambda _: self._go(work, idempotent=idempotent, what=what, causal=causal))
        return d
