"""
Inspection queries of the SQLite job store (L{SqliteInspection}): find,
list and delete jobs and failure-log entries, and count a queue's jobs by
state.  Nothing here is on the hot path.

A mixin of L{SqliteJobStore <fireworq.store.sqlite.jobs.SqliteJobStore>},
which provides C{_run} and C{_clock}.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.defer import Deferred, fail

from fireworq.model import FailedJob, FailureOrder, Job, JobCounts, JobState, Page, PageKey
from fireworq.store.common import count_jobs_sql, failure_page_key, job_page_key, page_of
from fireworq.store.sqlite.rows import FAILED_COLUMNS, JOB_COLUMNS, failed_from_row, job_from_row


class SqliteInspection:
    """Look-ups, listings, deletions and counts of one SQLite job store."""

    # Provided by SqliteJobStore.
    _run: Any
    _clock: Any

    def find_job(self, queue_name: str, job_id: int) -> Deferred:
        return self._run(queue_name, self._find_job, job_id, False)

    def delete_job(self, queue_name: str, job_id: int) -> Deferred:
        return self._run(queue_name, self._find_job, job_id, True)

    @staticmethod
    def _find_job(conn, jobs, failures, job_id: int, delete: bool) -> Optional[Job]:
        row = conn.execute(
            f"SELECT {JOB_COLUMNS} FROM {jobs} WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        if delete:
            conn.execute(f"DELETE FROM {jobs} WHERE job_id = ?", (job_id,))
        return job_from_row(row)

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
                f"SELECT {JOB_COLUMNS} FROM {jobs} WHERE {' AND '.join(conditions)}"
                f" ORDER BY next_try {direction}, job_id {direction} LIMIT ?",
                params,
            ).fetchall()
            return page_of([job_from_row(row) for row in rows], limit, job_page_key)

        return self._run(queue_name, query)

    def find_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._find_failed, failure_id, False)

    def delete_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._find_failed, failure_id, True)

    @staticmethod
    def _find_failed(conn, jobs, failures, failure_id: int, delete: bool) -> Optional[FailedJob]:
        row = conn.execute(
            f"SELECT {FAILED_COLUMNS} FROM {failures} WHERE failure_id = ?", (failure_id,)
        ).fetchone()
        if row is None:
            return None
        if delete:
            conn.execute(f"DELETE FROM {failures} WHERE failure_id = ?", (failure_id,))
        return failed_from_row(row)

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
                f"SELECT {FAILED_COLUMNS} FROM {failures} {where} ORDER BY {order_by} LIMIT ?",
                params,
            ).fetchall()
            return page_of([failed_from_row(row) for row in rows], limit, failure_page_key)

        return self._run(queue_name, query)

    def count_jobs(self, queue_name: str) -> Deferred:
        return self._run(queue_name, self._count_jobs, self._clock())

    @staticmethod
    def _count_jobs(conn, jobs, failures, now: int) -> JobCounts:
        waiting, deferred, grabbed = conn.execute(count_jobs_sql(jobs, "?"), (now, now)).fetchone()
        return JobCounts(waiting=waiting, deferred=deferred, grabbed=grabbed)
