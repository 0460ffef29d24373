"""
L{SqliteJobStore}: the jobs and failure logs of every queue in a
L{SqliteDatabase}, one pair of tables per queue (L{fireworq.store.sqlite.schema}).

Every call is one function run on the database thread inside the current
group-commit transaction.  This module holds the store's state and the
runner of those functions; the operations live in mixins, one job each:
L{fireworq.store.sqlite.push} (push, idempotency keys, hook jobs),
L{fireworq.store.sqlite.grab} (grab, release, recover),
L{fireworq.store.sqlite.complete} (successes, retries, failures),
L{fireworq.store.sqlite.control} (purge, cancel, retry a failed job,
expired keys), L{fireworq.store.sqlite.inspection} (look-ups, listings,
counts) and L{fireworq.store.sqlite.history} (kept finished jobs).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.store.common import Clock, system_clock
from fireworq.store.idempotency import DEFAULT_WINDOW_MS
from fireworq.store.interface import IJobStore
from fireworq.store.sqlite.complete import SqliteCompletion
from fireworq.store.sqlite.control import SqliteQueueControl
from fireworq.store.sqlite.database import Operation, SqliteDatabase
from fireworq.store.sqlite.grab import SqliteGrab
from fireworq.store.sqlite.history import SqliteHistory
from fireworq.store.sqlite.inspection import SqliteInspection
from fireworq.store.sqlite.push import SqlitePush
from fireworq.store.sqlite.schema import failures_table, jobs_table, table_key


@implementer(IJobStore)
class SqliteJobStore(SqlitePush, SqliteGrab, SqliteCompletion, SqliteQueueControl, SqliteInspection, SqliteHistory):
    """
    L{IJobStore} over a L{SqliteDatabase}.

    @param db: the database (shared with a L{SqliteRepository}).
    @param clock: returns the time in milliseconds since the epoch; it stamps
        ``created_at``, ``next_try`` and ``failed_at``.
    """

    name = "sqlite"

    def __init__(
        self, db: SqliteDatabase, clock: Optional[Clock] = None, idempotency_window_ms: int = DEFAULT_WINDOW_MS
    ) -> None:
        self.db = db
        self._clock: Clock = clock or system_clock
        #: How long an idempotency key is remembered (ms).
        self.idempotency_window_ms = idempotency_window_ms
        #: The hook matcher (B12, L{fireworq.hooks.matcher.HookMatcher}) while
        #: a hook is defined, else None: events' hook jobs are stored in the
        #: transaction of the change they report.
        self.event_hooks: Any = None

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
