"""
The tables of a queue in the MySQL job store: L{MySQLQueueTables}
creates them (once per queue and store), adds the columns a table of the
original or of an older version lacks (``attempts``, the job options'),
and remembers which of them each table has.

A mixin of L{MySQLJobStore <fireworq.store.mysql.jobs.MySQLJobStore>},
which provides C{_go}, C{_pool}, C{_log} and the dicts filled here.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from twisted.internet.defer import Deferred, succeed

from fireworq.store.mysql.history import history_ddl
from fireworq.store.mysql.idempotency import idempotency_ddl
from fireworq.store.mysql.rows import job_columns
from fireworq.store.mysql.schema import add_attempts_ddl, job_table, queue_tables_ddl, table_key
from fireworq.store.priority import mysql_add_columns_ddl

#: Errors of a statement the user may not run (ER_TABLEACCESS_DENIED_ERROR,
#: ER_DBACCESS_DENIED_ERROR).
_DENIED_CODES = frozenset({1142, 1044})


def _job_table_shape(cursor: Any, queue_name: str) -> Tuple[List[str], List[str]]:
    """The names of the columns and of the keys of the queue's job table."""
    cursor.execute(f"SHOW COLUMNS FROM {job_table(queue_name)}")
    columns = [_text(row[0]) for row in cursor.fetchall()]
    cursor.execute(f"SHOW INDEX FROM {job_table(queue_name)}")
    keys = sorted({_text(row[2]) for row in cursor.fetchall()})
    return columns, keys


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _missing_options_ddl(cursor: Any, queue_name: str) -> str:
    """The ALTER that gives the job table what the job options need ("" when it has it all)."""
    columns, keys = _job_table_shape(cursor, queue_name)
    return mysql_add_columns_ddl(job_table(queue_name), columns, keys)


def _has_attempts_column(cursor: Any, queue_name: str) -> bool:
    cursor.execute(f"SHOW COLUMNS FROM {job_table(queue_name)} LIKE 'attempts'")
    return bool(cursor.fetchall())


class MySQLQueueTables:
    """Creating a queue's tables, and what the store knows of their columns."""

    # Provided by MySQLJobStore.
    _go: Any
    _pool: Any
    _log: Any
    _prepared: Dict[str, bool]
    _preparing: Dict[str, List[Deferred]]
    _attempts: Dict[str, bool]
    _options_ddl: Dict[str, str]

    def prepare_queue(self, queue_name: str) -> Deferred:
        key = table_key(queue_name)
        if self._prepared.get(key):
            return succeed(None)
        waiting = self._preparing.get(key)
        if waiting is not None:
            d: Deferred = Deferred()
            waiting.append(d)
            return d
        self._preparing[key] = []

        def create(cursor: Any) -> None:
            for ddl in queue_tables_ddl(queue_name):
                cursor.execute(ddl)
            cursor.execute(idempotency_ddl(queue_name))
            cursor.execute(history_ddl(queue_name))
            self._attempts[key] = self._ensure_attempts_column(cursor, queue_name)
            self._options_ddl[key] = self._ensure_options_columns(cursor, queue_name)

        def created(_: Any) -> None:
            self._prepared[key] = True
            for d in self._preparing.pop(key, []):
                d.callback(None)

        def failed(failure: Any) -> Any:
            for d in self._preparing.pop(key, []):
                d.errback(failure)
            return failure

        d = self._go(create, idempotent=True, what=f"create tables of queue {queue_name!r}")
        d.addCallbacks(created, failed)
        return d

    def _ensure_attempts_column(self, cursor: Any, queue_name: str) -> bool:
        """
        Give a job table the original created our ``attempts`` column (an
        instant change on MariaDB >= 10.3 and MySQL >= 8.0); return whether
        the table has it.  Another node may add it at the same moment: an
        ALTER failing is fine if the column is there afterwards.  Without
        the ALTER privilege the table is served as it is, attempts counted
        from ``fail_count`` as before (logged once per queue).
        """
        if _has_attempts_column(cursor, queue_name):
            return True
        try:
            cursor.execute(add_attempts_ddl(queue_name))
        except Exception as e:
            if _has_attempts_column(cursor, queue_name):
                return True
            if self._pool.driver.error_code(e) not in _DENIED_CODES:
                raise
            self._log.warn(
                "Cannot add the column `attempts` to the job table of queue {queue} ({error}): "
                "X-Fireworq-Attempt of its jobs will not count deliveries cut short by a dying "
                "node. Grant ALTER to the server's user, or run as an administrator: {ddl}",
                queue=queue_name, error=self._pool.driver.describe(e), ddl=add_attempts_ddl(queue_name),
            )
            return False
        return True

    def _ensure_options_columns(self, cursor: Any, queue_name: str) -> str:
        """
        Give a job table the original (or an older version of this server)
        created the columns and index of the job options (one online ALTER
        of what is missing); return the ALTER still missing ("" when the
        table has it all).  As for ``attempts``, another node may be adding
        them at the same moment, and without the ALTER privilege the table
        is served as it is: grabbed by due time only, and pushes with
        options to it are refused (never stored stripped of them).
        """
        ddl = _missing_options_ddl(cursor, queue_name)
        if not ddl:
            return ""
        try:
            cursor.execute(ddl)
        except Exception as e:
            ddl = _missing_options_ddl(cursor, queue_name)
            if not ddl:
                return ""
            if self._pool.driver.error_code(e) not in _DENIED_CODES:
                raise
            self._log.warn(
                "Cannot add the job options' columns to the job table of queue {queue} ({error}): "
                "its jobs are grabbed by due time only and pushes with job options are refused. "
                "Grant ALTER and INDEX to the server's user, or run as an administrator: {ddl}",
                queue=queue_name, error=self._pool.driver.describe(e), ddl=ddl,
            )
            return ddl
        return ""

    def _counts(self, queue_name: str) -> bool:
        """Whether the queue's job table has our ``attempts`` column."""
        return self._attempts.get(table_key(queue_name), True)

    def _optioned(self, queue_name: str) -> bool:
        """Whether the queue's job table has the job options' columns and index."""
        return not self._options_ddl.get(table_key(queue_name), "")

    def _columns(self, queue_name: str) -> str:
        """The job columns to select from the queue's table (L{JOB_COLUMNS})."""
        return job_columns(self._counts(queue_name), self._optioned(queue_name))

