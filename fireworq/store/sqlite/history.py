"""
Kept finished jobs (protocol B8) in SQLite: one table per queue,
``fireworq_jq_done(<key>)``, created with the queue's other tables.

A row is the job id, its state, when it finished and when its retention
ends (columns, indexed for ``/completed`` and the clean-up), and the rest
as the JSON of L{fireworq.history.record.encode_record}.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from fireworq.history.interface import IJobHistory
from fireworq.history.record import FinishedState, KeptJob, decode_record, encode_record, kept_completions, kept_job
from fireworq.model import Completion, Page, PageKey

_COLUMNS = "job_id, state, finished_at, expires_at, record"


def done_table(key: str) -> str:
    """The quoted name of the kept-job table of the table key ``key``."""
    return f'"fireworq_jq_done({key})"'


def done_table_of(jobs: str) -> str:
    """The kept-job table beside the job table ``jobs`` (a quoted name)."""
    return jobs.replace('"fireworq_jq(', '"fireworq_jq_done(', 1)


def history_schema(key: str) -> List[str]:
    """The statements that create the queue's kept-job table and its indexes."""
    table = done_table(key)
    return [
        f"""CREATE TABLE IF NOT EXISTS {table} (
            job_id INTEGER PRIMARY KEY,
            state TEXT NOT NULL,
            finished_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            record TEXT NOT NULL
        )""",
        f'CREATE INDEX IF NOT EXISTS "fireworq_jq_done({key})_finished" ON {table} (state, finished_at, job_id)',
        f'CREATE INDEX IF NOT EXISTS "fireworq_jq_done({key})_expiry" ON {table} (expires_at)',
    ]


def keep_finished(
    conn: sqlite3.Connection, jobs: str, completions: Sequence[Completion], grabber_id: int, now: int
) -> None:
    """
    In a completion's transaction, before its deletes: keep the jobs of
    ``completions`` that ask for it and are still grabbed by ``grabber_id``.
    """
    kept = kept_completions(completions)
    if not kept:
        return
    ids = list(kept)
    rows = conn.execute(
        f"SELECT job_id, canceling FROM {jobs} WHERE job_id IN ({', '.join('?' * len(ids))})"
        " AND status = 'grabbed' AND grabber_id = ?",
        ids + [grabber_id],
    ).fetchall()
    values = []
    for job_id, canceling in rows:
        job = kept_job(kept[job_id], now, bool(canceling))
        values.append((job.id, job.state, job.finished_at, job.expires_at, encode_record(job)))
    if values:
        conn.executemany(f"INSERT OR REPLACE INTO {done_table_of(jobs)} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", values)


def _row(row: Sequence[Any]) -> KeptJob:
    return decode_record(int(row[0]), row[1], int(row[2]), int(row[3]), row[4])


@implementer(IJobHistory)
class SqliteHistory:
    """
    The kept-job methods of L{fireworq.store.sqlite.jobs.SqliteJobStore} (a
    mixin: it uses the store's C{_run} and C{_clock}).
    """

    def find_kept(self, queue_name: str, job_id: int) -> "Deferred[Optional[KeptJob]]":
        """The kept finished job ``job_id``, or None."""

        def query(conn: sqlite3.Connection, jobs: str, failures: str) -> Optional[KeptJob]:
            row = conn.execute(f"SELECT {_COLUMNS} FROM {done_table_of(jobs)} WHERE job_id = ?", (job_id,)).fetchone()
            return None if row is None else _row(row)

        return self._run(queue_name, query)  # type: ignore[attr-defined]

    def list_kept(self, queue_name: str, limit: int, start: Optional[PageKey]) -> "Deferred[Page[KeptJob]]":
        """One page of the kept completed jobs, newest first by (finished_at, job id)."""
        if limit <= 0:
            return fail(ValueError("limit must be positive"))

        def query(conn: sqlite3.Connection, jobs: str, failures: str) -> Page:
            where = "state = ?"
            args: List[Any] = [FinishedState.COMPLETED.value]
            if start is not None:
                where += " AND (finished_at < ? OR (finished_at = ? AND job_id <= ?))"
                args += [start[0], start[0], start[1]]
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM {done_table_of(jobs)} WHERE {where}"
                " ORDER BY finished_at DESC, job_id DESC LIMIT ?",
                args + [limit + 1],
            ).fetchall()
            items = [_row(row) for row in rows[:limit]]
            next_key = (int(rows[limit][2]), int(rows[limit][0])) if len(rows) > limit else None
            return Page(items, next_key)

        return self._run(queue_name, query)  # type: ignore[attr-defined]

    def delete_expired_history(self, queue_name: str, limit: int) -> "Deferred[int]":
        """Delete up to ``limit`` kept jobs whose retention ended; fire with how many."""
        now = self._clock()  # type: ignore[attr-defined]

        def delete(conn: sqlite3.Connection, jobs: str, failures: str) -> int:
            table = done_table_of(jobs)
            return conn.execute(
                f"DELETE FROM {table} WHERE job_id IN (SELECT job_id FROM {table}"
                " WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, limit),
            ).rowcount

        return self._run(queue_name, delete)  # type: ignore[attr-defined]

    def count_kept(self, queue_name: str) -> "Deferred[Dict[str, int]]":
        """How many kept jobs the queue has, by state."""

        def count(conn: sqlite3.Connection, jobs: str, failures: str) -> Dict[str, int]:
            counts = {state.value: 0 for state in FinishedState}
            for state, number in conn.execute(f"SELECT state, COUNT(*) FROM {done_table_of(jobs)} GROUP BY state"):
                counts[state] = int(number)
            return counts

        return self._run(queue_name, count)  # type: ignore[attr-defined]
