"""
Completing grabbed jobs in the SQLite job store: L{SqliteCompletion}
applies a batch of outcomes with one statement per kind of outcome, each
touching only jobs still grabbed by the caller; failures go to the
failure log, and the events' hook jobs are stored in the same transaction.

A mixin of L{SqliteJobStore <fireworq.store.sqlite.jobs.SqliteJobStore>},
which provides C{_run}, C{_clock}, C{event_hooks} and C{_insert_hook_jobs}.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from twisted.internet.defer import Deferred, succeed

from fireworq.model import Completion, CompletionKind
from fireworq.store.common import failure_result_text
from fireworq.store.sqlite.history import keep_finished
from fireworq.store.sqlite.rows import OWNED


class SqliteCompletion:
    """Writing the outcomes of deliveries: done, retried later, or failed into the failure log."""

    # Provided by SqliteJobStore.
    _run: Any
    _clock: Any
    _insert_hook_jobs: Any
    event_hooks: Any

    def complete(
        self, queue_name: str, completions: Sequence[Completion], grabber_id: int
    ) -> Deferred:
        if not completions:
            return succeed(None)
        hooks = self.event_hooks
        if hooks is not None and hooks.wants(queue_name):
            return self._run(queue_name, self._complete_hooked, hooks, queue_name, list(completions), grabber_id,
                             self._clock())
        return self._run(queue_name, self._complete, list(completions), grabber_id, self._clock())

    def _complete_hooked(self, conn, jobs, failures, hooks: Any, queue_name: str, completions: List[Completion],
                         grabber_id: int, now: int) -> None:
        # B12: the hook jobs of the completions that apply (jobs still
        # grabbed by us), in the completions' transaction.
        ids = [c.job.id for c in completions]
        owned = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            owned.update(conn.execute(
                f"SELECT job_id, canceling FROM {jobs} WHERE job_id IN ({','.join('?' * len(chunk))})"
                " AND status = 'grabbed' AND grabber_id = ?",
                chunk + [grabber_id],
            ).fetchall())
        extra = []
        for completion in completions:
            if completion.job.id in owned:
                extra += hooks.finished(queue_name, completion, now, bool(owned[completion.job.id]))
        self._complete(conn, jobs, failures, completions, grabber_id, now)
        self._insert_hook_jobs(conn, hooks, extra, now)

    @staticmethod
    def _complete(conn, jobs, failures, completions: List[Completion], grabber_id: int, now: int) -> None:
        keep_finished(conn, jobs, completions, grabber_id, now)  # B8, before the deletes
        success, retry, failed = [], [], []
        for completion in completions:
            owned = (completion.job.id, grabber_id)
            if completion.kind == CompletionKind.SUCCESS or completion.kind == CompletionKind.CANCEL:
                success.append(owned)
            elif completion.kind == CompletionKind.RETRY:
                retry.append((now, completion.retry_wait_ms) + owned)
            else:
                result = failure_result_text(completion.job, completion.result)
                failed.append((result, now) + owned)
        if failed:
            # A job canceled meanwhile (B9) is not logged, only deleted.
            conn.executemany(
                f"INSERT INTO {failures} (job_id, category, url, payload, result, fail_count,"
                " failed_at, created_at) SELECT job_id, category, url, payload, ?,"
                f" fail_count + 1, ?, created_at FROM {jobs} WHERE {OWNED} AND canceling = 0",
                failed,
            )
        if success or failed:
            conn.executemany(
                f"DELETE FROM {jobs} WHERE {OWNED}", success + [row[2:] for row in failed]
            )
        if retry:
            # The wait is the completion's (B7 backoff, Retry-After) when
            # given, else the job's retry_delay (A1).  A job canceled
            # meanwhile (B9) is deleted instead of retried.
            conn.executemany(
                f"UPDATE {jobs} SET status = 'claimed', grabber_id = NULL,"
                " next_try = ? + COALESCE(?, retry_delay * 1000), retry_count = MAX(retry_count - 1, 0),"
                f" fail_count = fail_count + 1 WHERE {OWNED} AND canceling = 0",
                retry,
            )
            conn.executemany(
                f"DELETE FROM {jobs} WHERE {OWNED} AND canceling <> 0", [row[2:] for row in retry]
            )
