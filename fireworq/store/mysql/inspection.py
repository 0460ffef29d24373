"""
Inspection queries of the MySQL job store: find, list and delete jobs and
failure-log entries, and count a queue's jobs by state.

L{MySQLInspection} is a mixin of L{MySQLJobStore
<fireworq.store.mysql.jobs.MySQLJobStore>}, which provides C{_run},
C{_columns} and C{_now}; the push and dispatch paths are the mixins
of C{push.py}, C{grab.py} and C{complete.py}.  Nothing here is on the hot path.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.defer import Deferred

from fireworq.model import FailedJob, FailureOrder, Job, JobCounts, JobState, Page, PageKey
from fireworq.store.common import count_jobs_sql, failure_page_key, job_page_key, page_of
from fireworq.store.mysql.rows import FAILED_COLUMNS, failed_from_row, job_from_row
from fireworq.store.mysql.schema import failure_table, job_table


def take_row(cursor: Any, table: str, columns: str, key: str, value: int) -> Optional[tuple]:
    """Delete the row whose ``key`` is ``value`` (in the cursor's transaction); return it as it was."""
    cursor.execute(f"SELECT {columns} FROM {table} WHERE {key} = %s FOR UPDATE", (value,))
    row = cursor.fetchone()
    if row is not None:
        cursor.execute(f"DELETE FROM {table} WHERE {key} = %s", (value,))
    return row


def take_failed(cursor: Any, table: str, failure_id: int) -> Optional[FailedJob]:
    """Delete a failure-log entry (in the cursor's transaction); return it as it was."""
    row = take_row(cursor, table, FAILED_COLUMNS, "failure_id", failure_id)
    return failed_from_row(row) if row is not None else None


class MySQLInspection:
    """Look-ups, listings, deletions and counts of one MySQL job store."""

    # Provided by MySQLJobStore.
    _run: Any
    _columns: Any
    _now: Any

    def find_job(self, queue_name: str, job_id: int) -> Deferred:
        def work(cursor: Any) -> Optional[Job]:
            cursor.execute(
                f"SELECT {self._columns(queue_name)} FROM {job_table(queue_name)} WHERE job_id = %s", (job_id,)
            )
            row = cursor.fetchone()
            return job_from_row(row) if row else None

        return self._run([queue_name], work, idempotent=True, what=f"find a job of {queue_name!r}")

    def delete_job(self, queue_name: str, job_id: int) -> Deferred:
        table = job_table(queue_name)

        def work(cursor: Any) -> Optional[Job]:
            row = take_row(cursor, table, self._columns(queue_name), "job_id", job_id)
            return job_from_row(row) if row is not None else None

        return self._run([queue_name], work, idempotent=False, what=f"delete a job of {queue_name!r}")

    def list_jobs(
        self,
        queue_name: str,
        state: JobState,
        limit: int,
        start: Optional[PageKey],
        descending: bool,
    ) -> Deferred:
        state = JobState(state)
        now = self._now()
        conditions = []
        args: List[Any] = []
        if state == JobState.GRABBED:
            conditions.append("status = 'grabbed'")
        elif state == JobState.WAITING:
            conditions.append(f"status = 'claimed' AND next_try <= {now}")
        else:
            conditions.append(f"status = 'claimed' AND next_try > {now}")
        if start is not None:
            time_key, id_key = int(start[0]), int(start[1])
            if descending:
                conditions.append("next_try <= %s AND (next_try < %s OR job_id <= %s)")
            else:
                conditions.append("next_try >= %s AND (next_try > %s OR job_id >= %s)")
            args += [time_key, time_key, id_key]
        direction = "DESC" if descending else "ASC"
        limit = max(0, int(limit))
        sql = (
            "SELECT {columns} FROM " + job_table(queue_name) + " FORCE INDEX (`grab`) "
            f"WHERE {' AND '.join(conditions)} "
            f"ORDER BY next_try {direction}, job_id {direction} LIMIT {limit + 1}"
        )

        def work(cursor: Any) -> Page:
            cursor.execute(sql.replace("{columns}", self._columns(queue_name), 1), args)
            return page_of([job_from_row(row) for row in cursor.fetchall()], limit, job_page_key)

        return self._run([queue_name], work, idempotent=True, what=f"list jobs of {queue_name!r}")

    def find_failed(self, queue_name: str, failure_id: int) -> Deferred:
        def work(cursor: Any) -> Optional[FailedJob]:
            cursor.execute(
                f"SELECT {FAILED_COLUMNS} FROM {failure_table(queue_name)} WHERE failure_id = %s",
                (failure_id,),
            )
            row = cursor.fetchone()
            return failed_from_row(row) if row else None

        return self._run([queue_name], work, idempotent=True, what=f"find a failed job of {queue_name!r}")

    def delete_failed(self, queue_name: str, failure_id: int) -> Deferred:
        table = failure_table(queue_name)

        def work(cursor: Any) -> Optional[FailedJob]:
            return take_failed(cursor, table, failure_id)

        return self._run([queue_name], work, idempotent=False, what=f"delete a failed job of {queue_name!r}")

    def list_failed(
        self, queue_name: str, order: FailureOrder, limit: int, start: Optional[PageKey]
    ) -> Deferred:
        order = FailureOrder(order)
        conditions: List[str] = []
        args: List[Any] = []
        if order == FailureOrder.FAILED:
            if start is not None:
                conditions.append("failure_id <= %s")
                args.append(int(start[1]))
            order_by = "failure_id DESC"
        else:
            if start is not None:
                conditions.append("created_at <= %s AND (created_at < %s OR failure_id <= %s)")
                args += [int(start[0]), int(start[0]), int(start[1])]
            order_by = "created_at DESC, failure_id DESC"
        limit = max(0, int(limit))
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        sql = (
            f"SELECT {FAILED_COLUMNS} FROM {failure_table(queue_name)} {where}"
            f"ORDER BY {order_by} LIMIT {limit + 1}"
        )

        def work(cursor: Any) -> Page:
            cursor.execute(sql, args)
            return page_of([failed_from_row(row) for row in cursor.fetchall()], limit, failure_page_key)

        return self._run([queue_name], work, idempotent=True, what=f"list failed jobs of {queue_name!r}")

    def count_jobs(self, queue_name: str) -> Deferred:
        table = job_table(queue_name)
        now = self._now()
        sql = count_jobs_sql(table, now)

        def work(cursor: Any) -> JobCounts:
            cursor.execute(sql)
            waiting, deferred, grabbed = cursor.fetchone()
            return JobCounts(waiting=int(waiting), deferred=int(deferred), grabbed=int(grabbed))

        return self._run([queue_name], work, idempotent=True, what=f"count jobs of {queue_name!r}")
