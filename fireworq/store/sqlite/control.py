"""
Queue-level operations of the SQLite job store (L{SqliteQueueControl}):
purge a queue, cancel a job and read the cancel marks, retry a
failure-log entry, delete expired idempotency keys.

A mixin of L{SqliteJobStore <fireworq.store.sqlite.jobs.SqliteJobStore>},
which provides C{_run}, C{_clock}, C{event_hooks}, C{_push},
C{_insert_hook_jobs} and C{_find_failed}.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from twisted.internet.defer import Deferred

from fireworq.model import FailedJob, Job, PushEntry
from fireworq.store.common import check_storable
from fireworq.store.sqlite.rows import JOB_COLUMNS, job_from_row
from fireworq.store.sqlite.schema import keys_table, table_key

#: Expired idempotency keys one cleanup statement deletes at most.
KEYS_DELETE_BATCH = 1000


class SqliteQueueControl:
    """Purges, cancels, retries of failed jobs and the idempotency keys' cleanup."""

    # Provided by SqliteJobStore.
    _run: Any
    _clock: Any
    _push: Any
    _insert_hook_jobs: Any
    _find_failed: Any
    event_hooks: Any

    def purge(self, queue_name: str) -> Deferred:
        """Delete the queue's waiting and deferred jobs; fire with how many."""
        return self._run(queue_name, self._purge)

    @staticmethod
    def _purge(conn, jobs, failures) -> int:
        return conn.execute(f"DELETE FROM {jobs} WHERE status = 'claimed'").rowcount

    def cancel_job(self, queue_name: str, job_id: int) -> Deferred:
        """Delete a claimed job or mark a grabbed one canceled; fire with it as it was, or None."""
        hooks = self.event_hooks
        if hooks is not None and hooks.wants(queue_name):
            def work(conn, jobs, failures, job_id: int) -> Optional[Job]:
                job = self._cancel_job(conn, jobs, failures, job_id)
                if job is not None and job.status != "grabbed":
                    now = self._clock()
                    self._insert_hook_jobs(conn, hooks, hooks.canceled(queue_name, job, now), now)
                return job

            return self._run(queue_name, work, job_id)
        return self._run(queue_name, self._cancel_job, job_id)

    @staticmethod
    def _cancel_job(conn, jobs, failures, job_id: int) -> Optional[Job]:
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM {jobs} WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        job = job_from_row(row)
        if job.status == "grabbed":
            conn.execute(f"UPDATE {jobs} SET canceling = 1 WHERE job_id = ?", (job_id,))
        else:
            conn.execute(f"DELETE FROM {jobs} WHERE job_id = ?", (job_id,))
        return job

    def canceling_jobs(self, queue_name: str, grabber_id: int) -> Deferred:
        """Ids of the jobs grabbed by ``grabber_id`` that are marked canceled."""
        return self._run(queue_name, self._canceling_jobs, grabber_id)

    @staticmethod
    def _canceling_jobs(conn, jobs, failures, grabber_id: int) -> List[int]:
        return [
            row[0]
            for row in conn.execute(
                f"SELECT job_id FROM {jobs} WHERE status = 'grabbed' AND grabber_id = ?"
                " AND canceling <> 0 ORDER BY job_id",
                (grabber_id,),
            )
        ]
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
        job = self._push(conn, [entry], now)[0]
        hooks = self.event_hooks
        if hooks is not None:
            self._insert_hook_jobs(conn, hooks, hooks.pushed(queue_name, job, now), now)  # B12
        return failed, job

    def delete_expired_keys(self, queue_name: str) -> Deferred:
        """Forget the queue's idempotency keys whose window ended, in batches; fire with how many."""
        table = keys_table(table_key(queue_name))
        return self._run(queue_name, self._delete_expired_keys, table, self._clock())

    @staticmethod
    def _delete_expired_keys(conn, jobs, failures, table: str, now: int) -> int:
        deleted = 0
        while True:
            cursor = conn.execute(
                f"DELETE FROM {table} WHERE idempotency_key IN (SELECT idempotency_key FROM {table}"
                " WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, KEYS_DELETE_BATCH),
            )
            deleted += cursor.rowcount
            if cursor.rowcount < KEYS_DELETE_BATCH:
                return deleted
