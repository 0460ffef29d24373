"""
Queue-level operations of the MySQL job store (L{MySQLQueueControl}):
purge a queue, cancel a job and read the cancel marks, retry a failure-log
entry, delete expired idempotency keys.  Nothing here is on the hot path.

A mixin of L{MySQLJobStore <fireworq.store.mysql.jobs.MySQLJobStore>},
which provides C{_run}, C{_now}, C{_columns}, C{_optioned}, C{_insert} and
C{_insert_hook_jobs}.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed

from fireworq.model import FailedJob, Job, JobStatus
from fireworq.store.mysql.clock import clock_ms
from fireworq.store.mysql.idempotency import delete_expired
from fireworq.store.mysql.inspection import take_failed
from fireworq.store.mysql.rows import job_from_row
from fireworq.store.mysql.schema import failure_table, job_table

#: Jobs one purge statement deletes at most (B9); within Galera's usual
#: wsrep_max_ws_rows.
PURGE_BATCH = 5000

#: How many expired idempotency keys one cleanup deletes at most (in batches).
KEYS_DELETE_MAX = 100_000


class MySQLQueueControl:
    """Purges, cancels, retries of failed jobs and the idempotency keys' cleanup."""

    # Provided by MySQLJobStore.
    _run: Any
    _now: Any
    _columns: Any
    _optioned: Any
    _insert: Any
    _insert_hook_jobs: Any
    event_hooks: Any

    def purge(self, queue_name: str) -> Deferred:
        """
        Delete the queue's waiting and deferred jobs, L{PURGE_BATCH} per
        transaction (a big queue is never one huge transaction); fire with
        how many.
        """
        table = job_table(queue_name)
        total = [0]

        def work(cursor: Any) -> int:
            cursor.execute(f"DELETE FROM {table} WHERE status = 'claimed' LIMIT {PURGE_BATCH}")
            return int(cursor.rowcount)

        def more(deleted: int) -> Any:
            total[0] += deleted
            if deleted < PURGE_BATCH:
                return total[0]
            d = self._run([queue_name], work, idempotent=True, what=f"purge {queue_name!r}")
            d.addCallback(more)
            return d

        d = self._run([queue_name], work, idempotent=True, what=f"purge {queue_name!r}")
        d.addCallback(more)
        return d

    def cancel_job(self, queue_name: str, job_id: int) -> Deferred:
        """
        Delete a claimed job, or mark a grabbed one canceled (its holder
        aborts the delivery); fire with the job as it was, or None.  A
        table without the job options' columns (an original's, not
        altered) has no mark: a grabbed job is deleted there, and its
        delivery runs on (its outcome is then not written).
        """
        table = job_table(queue_name)

        def work(cursor: Any) -> Optional[Job]:
            cursor.execute(
                f"SELECT {self._columns(queue_name)} FROM {table} WHERE job_id = %s FOR UPDATE", (job_id,)
            )
            row = cursor.fetchone()
            if row is None:
                return None
            job = job_from_row(row)
            if job.status == JobStatus.GRABBED.value and self._optioned(queue_name):
                cursor.execute(f"UPDATE {table} SET canceling = 1 WHERE job_id = %s", (job_id,))
            else:
                cursor.execute(f"DELETE FROM {table} WHERE job_id = %s", (job_id,))
                if hooks is not None and job.status != JobStatus.GRABBED.value:
                    now = clock_ms(cursor, self._now())
                    self._insert_hook_jobs(cursor, hooks, hooks.canceled(queue_name, job, now), now)
            return job

        hooks = self.event_hooks
        queues = [queue_name] if hooks is None else [queue_name, hooks.queue_name]
        return self._run(queues, work, idempotent=False, what=f"cancel a job of {queue_name!r}")

    def canceling_jobs(self, queue_name: str, grabber_id: int) -> Deferred:
        """Ids of the jobs grabbed by ``grabber_id`` that are marked canceled."""
        if not self._optioned(queue_name):
            return succeed([])

        def work(cursor: Any) -> List[int]:
            cursor.execute(
                f"SELECT job_id FROM {job_table(queue_name)} "
                "WHERE status = 'grabbed' AND grabber_id = %s AND canceling <> 0",
                (grabber_id,),
            )
            return sorted(int(row[0]) for row in cursor.fetchall())

        return self._run([queue_name], work, idempotent=True, what=f"read cancel marks of {queue_name!r}")

    # -- the failure log -------------------------------------------------------------

    def retry_failed(self, queue_name: str, failure_id: int) -> Deferred:
        table = failure_table(queue_name)
        clock_now = self._now()

        def work(cursor: Any) -> Optional[Tuple[FailedJob, Job]]:
            failed = take_failed(cursor, table, failure_id)
            if failed is None:
                return None
            job = failed.as_new_job()
            now = clock_ms(cursor, clock_now)
            stored = job.stored(self._insert(cursor, queue_name, [(job, None)], now), now)
            if hooks is not None:
                self._insert_hook_jobs(cursor, hooks, hooks.pushed(queue_name, stored, now), now)  # B12
            return failed, stored

        hooks = self.event_hooks
        queues = [queue_name] if hooks is None else [queue_name, hooks.queue_name]
        return self._run(queues, work, idempotent=False, what=f"retry a failed job of {queue_name!r}")

    # -- idempotency keys -------------------------------------------------------------

    def delete_expired_keys(self, queue_name: str) -> Deferred:
        """
        Delete the queue's idempotency keys whose window ended, in batches
        of L{fireworq.store.mysql.idempotency.DELETE_BATCH} rows, one
        transaction each (short locks); fire with how many.
        """
        now = self._now()

        def work(cursor: Any) -> int:
            return delete_expired(cursor, queue_name, now)

        total = [0]

        def more(deleted: int) -> Any:
            total[0] += deleted
            if deleted >= 1000 and total[0] < KEYS_DELETE_MAX:
                return self._run([queue_name], work, idempotent=True, what=f"delete expired keys of {queue_name!r}").addCallback(more)
            return total[0]

        d = self._run([queue_name], work, idempotent=True, what=f"delete expired keys of {queue_name!r}")
        d.addCallback(more)
        return d
