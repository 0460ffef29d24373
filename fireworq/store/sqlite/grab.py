"""
Dispatching from the SQLite job store: L{SqliteGrab} grabs due jobs and
gives grabbed jobs back (released by their holder, recovered after a
restart).  A grab asks which priorities have claimed jobs (one index seek
per priority, L{fireworq.store.priority}), then SELECTs the due jobs of
each, highest first, through the ``(status, priority, next_try)`` index
until it has enough, and UPDATEs their status.

A mixin of L{SqliteJobStore <fireworq.store.sqlite.jobs.SqliteJobStore>},
which provides C{_run} and C{_clock}.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from twisted.internet.defer import Deferred, succeed

from fireworq.model import Job
from fireworq.store.common import attempts_at_grab
from fireworq.store.priority import due_priorities, sqlite_grab_sql, sqlite_priorities_sql
from fireworq.store.sqlite.rows import JOB_COLUMNS, OWNED, chunks, job_from_row


class SqliteGrab:
    """Grabbing due jobs, and returning grabbed ones to the queue."""

    # Provided by SqliteJobStore.
    _run: Any
    _clock: Any

    def grab(self, queue_name: str, limit: int, grabber_id: int) -> Deferred:
        if limit <= 0:
            return succeed([])
        return self._run(queue_name, self._grab, limit, grabber_id, self._clock())

    @staticmethod
    def _grab(conn, jobs, failures, limit: int, grabber_id: int, now: int) -> List[Job]:
        # Highest priority first, due order within one (B7): one index
        # range per priority that has due jobs, until the grab is full.
        rows: list = []
        for priority in due_priorities(conn.execute(sqlite_priorities_sql(jobs)).fetchall(), now):
            rows += conn.execute(
                sqlite_grab_sql(jobs, JOB_COLUMNS), (priority, now, limit - len(rows))
            ).fetchall()
            if len(rows) >= limit:
                break
        ids = [row[0] for row in rows]
        for chunk in chunks(ids):
            conn.execute(
                f"UPDATE {jobs} SET status = 'grabbed', grabber_id = ?,"
                " attempts = MAX(attempts, fail_count) + 1"
                f" WHERE job_id IN ({','.join('?' * len(chunk))})",
                [grabber_id, *chunk],
            )
        # The attempt is counted with the grab (common.attempts_at_grab).
        return [
            job_from_row(
                row[:4] + ("grabbed",) + row[5:11]
                + (grabber_id, attempts_at_grab(row[12], row[8])) + row[13:]
            )
            for row in rows
        ]
    def release(self, queue_name: str, job_ids: Sequence[int], grabber_id: int) -> Deferred:
        ids = sorted(set(job_ids))
        if not ids:
            return succeed(0)
        return self._run(queue_name, self._release, ids, grabber_id)

    @staticmethod
    def _release(conn, jobs, failures, ids: List[int], grabber_id: int) -> int:
        owned = [(job_id, grabber_id) for job_id in ids]
        # Canceled before it was sent (B9): deleted, not returned.
        deleted = conn.executemany(f"DELETE FROM {jobs} WHERE {OWNED} AND canceling <> 0", owned).rowcount
        cursor = conn.executemany(
            f"UPDATE {jobs} SET status = 'claimed', grabber_id = NULL WHERE {OWNED}", owned
        )
        return cursor.rowcount + max(deleted, 0)

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        return self._run(queue_name, self._recover, grabber_id)

    @staticmethod
    def _recover(conn, jobs, failures, grabber_id: int) -> int:
        # Canceled while its holder died (B9): deleted, not returned.
        deleted = conn.execute(
            f"DELETE FROM {jobs} WHERE status = 'grabbed' AND canceling <> 0"
            " AND (grabber_id IS NULL OR grabber_id <> ?)",
            (grabber_id,),
        ).rowcount
        cursor = conn.execute(
            f"UPDATE {jobs} SET status = 'claimed', grabber_id = NULL"
            " WHERE status = 'grabbed' AND (grabber_id IS NULL OR grabber_id <> ?)",
            (grabber_id,),
        )
        return cursor.rowcount + deleted
