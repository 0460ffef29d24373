"""
Kept finished jobs (protocol B8) in MySQL: one table per queue,
``fireworq_jq_done(<key>)``, created with the queue's tables.  The
original Fireworq never reads a table it did not create, so the table is
invisible to it (docs/storage.md, "The rule that binds MySQL").

A row is the job id, its state, when it finished and when its retention
ends (columns: ``KEY completed (state, finished_at, job_id)`` serves
``/completed`` newest first, ``KEY expiry (expires_at)`` the clean-up),
and the rest as the JSON of L{fireworq.history.record.encode_record}.
Jobs are kept in the completion's own transaction, so a job is either
still in the job table or kept (never both, never neither).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from fireworq.history.interface import IJobHistory
from fireworq.history.record import FinishedState, KeptJob, decode_record, encode_record, kept_completions, kept_job
from fireworq.model import Completion, Page, PageKey
from fireworq.store.mysql.rows import placeholders
from fireworq.store.mysql.schema import job_table, table_key

_COLUMNS = "job_id, state, finished_at, expires_at, record"


def history_table(queue_name: str) -> str:
    """The quoted name of the queue's kept-job table (as long as the failure log's name)."""
    return f"`fireworq_jq_done({table_key(queue_name)})`"


def history_ddl(queue_name: str) -> str:
    """CREATE TABLE IF NOT EXISTS of the queue's kept-job table."""
    return f"""
CREATE TABLE IF NOT EXISTS {history_table(queue_name)} (
  `job_id` BIGINT UNSIGNED NOT NULL,
  `state` VARCHAR(16) NOT NULL,
  `finished_at` BIGINT UNSIGNED NOT NULL,
  `expires_at` BIGINT UNSIGNED NOT NULL,
  `record` MEDIUMBLOB NOT NULL,
  PRIMARY KEY (`job_id`),
  KEY `completed` (`state`, `finished_at`, `job_id`),
  KEY `expiry` (`expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=binary"""


def keep_finished(
    cursor: Any, queue_name: str, completions: Sequence[Completion], grabber_id: int, now: str, cancelable: bool
) -> None:
    """
    In a completion's transaction, before its deletes: keep the jobs of
    ``completions`` that ask for it and are still grabbed by ``grabber_id``
    (locked, so a concurrent recovery cannot move them meanwhile).

    @param now: the store's clock as SQL (digits or the database clock).
    """
    kept = kept_completions(completions)
    if not kept:
        return
    ids = sorted(kept)
    cursor.execute(
        f"SELECT job_id, {'canceling' if cancelable else '0'}, {now} FROM {job_table(queue_name)} "
        f"WHERE job_id IN ({placeholders(len(ids))}) AND status = 'grabbed' AND grabber_id = %s FOR UPDATE",
        ids + [grabber_id],
    )
    rows = cursor.fetchall()
    if not rows:
        return
    values: List[str] = []
    args: List[Any] = []
    for job_id, canceling, clock in rows:
        job = kept_job(kept[int(job_id)], int(clock), bool(canceling))
        values.append("(%s, %s, %s, %s, %s)")
        args += [job.id, job.state, job.finished_at, job.expires_at, encode_record(job).encode("utf-8")]
    cursor.execute(
        f"INSERT INTO {history_table(queue_name)} ({_COLUMNS}) VALUES {', '.join(values)} "
        "ON DUPLICATE KEY UPDATE state = VALUES(state), finished_at = VALUES(finished_at), "
        "expires_at = VALUES(expires_at), record = VALUES(record)",
        args,
    )


def _row(row: Sequence[Any]) -> KeptJob:
    state = row[1].decode("utf-8") if isinstance(row[1], (bytes, bytearray)) else str(row[1])
    return decode_record(int(row[0]), state, int(row[2]), int(row[3]), row[4])


@implementer(IJobHistory)
class MySQLHistory:
    """
    The kept-job methods of L{fireworq.store.mysql.jobs.MySQLJobStore} (a
    mixin: it uses the store's C{_run} and C{_now}).
    """

    def find_kept(self, queue_name: str, job_id: int) -> "Deferred[Optional[KeptJob]]":
        """The kept finished job ``job_id``, or None."""

        def work(cursor: Any) -> Optional[KeptJob]:
            cursor.execute(f"SELECT {_COLUMNS} FROM {history_table(queue_name)} WHERE job_id = %s", (job_id,))
            row = cursor.fetchone()
            return None if row is None else _row(row)

        return self._run([queue_name], work, idempotent=True, what=f"find a kept job of {queue_name!r}")  # type: ignore[attr-defined]

    def list_kept(self, queue_name: str, limit: int, start: Optional[PageKey]) -> "Deferred[Page[KeptJob]]":
        """One page of the kept completed jobs, newest first by (finished_at, job id)."""
        if limit <= 0:
            return fail(ValueError("limit must be positive"))

        def work(cursor: Any) -> Page:
            where = "state = %s"
            args: List[Any] = [FinishedState.COMPLETED.value]
            if start is not None:
                where += " AND (finished_at, job_id) <= (%s, %s)"
                args += [start[0], start[1]]
            cursor.execute(
                f"SELECT {_COLUMNS} FROM {history_table(queue_name)} WHERE {where} "
                "ORDER BY finished_at DESC, job_id DESC LIMIT %s",
                args + [limit + 1],
            )
            rows = cursor.fetchall()
            items = [_row(row) for row in rows[:limit]]
            next_key = (int(rows[limit][2]), int(rows[limit][0])) if len(rows) > limit else None
            return Page(items, next_key)

        return self._run([queue_name], work, idempotent=True, what=f"list kept jobs of {queue_name!r}")  # type: ignore[attr-defined]

    def delete_expired_history(self, queue_name: str, limit: int) -> "Deferred[int]":
        """Delete up to ``limit`` kept jobs whose retention ended (one short transaction); fire with how many."""
        now = self._now()  # type: ignore[attr-defined]

        def work(cursor: Any) -> int:
            cursor.execute(
                f"DELETE FROM {history_table(queue_name)} WHERE expires_at <= {now} "
                f"ORDER BY expires_at LIMIT {int(limit)}"
            )
            return int(cursor.rowcount)

        return self._run([queue_name], work, idempotent=True, what=f"delete expired history of {queue_name!r}")  # type: ignore[attr-defined]

    def count_kept(self, queue_name: str) -> "Deferred[Dict[str, int]]":
        """How many kept jobs the queue has, by state."""

        def work(cursor: Any) -> Dict[str, int]:
            counts = {state.value: 0 for state in FinishedState}
            cursor.execute(f"SELECT state, COUNT(*) FROM {history_table(queue_name)} GROUP BY state")
            for state, number in cursor.fetchall():
                name = state.decode("utf-8") if isinstance(state, (bytes, bytearray)) else str(state)
                counts[name] = int(number)
            return counts

        return self._run([queue_name], work, idempotent=True, what=f"count kept jobs of {queue_name!r}")  # type: ignore[attr-defined]
