"""
Completing grabbed jobs in the MySQL job store: L{MySQLCompletion} applies
a batch of outcomes with one DELETE for successes and failures, one UPDATE
per retry wait, and one multi-row INSERT into the failure log -- each
touching only jobs still grabbed by the caller, so a rerun after an unknown
COMMIT outcome changes nothing.

A mixin of L{MySQLJobStore <fireworq.store.mysql.jobs.MySQLJobStore>},
which provides C{_run}, C{_now}, C{_optioned} and C{_insert_hook_jobs}.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred, succeed

from fireworq.model import Completion, CompletionKind
from fireworq.store.common import failure_result_text
from fireworq.store.mysql.clock import clock_ms
from fireworq.store.mysql.history import keep_finished
from fireworq.store.mysql.rows import placeholders
from fireworq.store.mysql.schema import failure_table, job_table


class MySQLCompletion:
    """Writing the outcomes of deliveries: done, retried later, or failed into the failure log."""

    # Provided by MySQLJobStore.
    _run: Any
    _now: Any
    _optioned: Any
    _insert_hook_jobs: Any
    event_hooks: Any

    def complete(self, queue_name: str, completions: Sequence[Completion], grabber_id: int) -> Deferred:
        completions = list(completions)
        if not completions:
            return succeed(None)
        table = job_table(queue_name)
        fail_table = failure_table(queue_name)
        done_ids = [
            c.job.id for c in completions
            if c.kind == CompletionKind.SUCCESS or c.kind == CompletionKind.CANCEL
        ]
        # Retries by wait: None = the job's retry_delay (A1), else the
        # completion's own wait in ms (B7 backoff, Retry-After).
        retry_ids: Dict[Optional[int], List[int]] = {}
        for c in completions:
            if c.kind == CompletionKind.RETRY:
                retry_ids.setdefault(c.retry_wait_ms, []).append(c.job.id)
        failed = {c.job.id: c for c in completions if c.kind == CompletionKind.FAIL}
        now = self._now()
        # A job canceled while grabbed (B9) is deleted whatever its outcome.
        cancelable = self._optioned(queue_name)
        hooks = self.event_hooks
        if hooks is not None and not hooks.wants(queue_name):
            hooks = None

        def work(cursor: Any) -> None:
            if hooks is not None:
                # B12: the hook jobs of the completions that apply (jobs
                # still grabbed by us), in the completions' transaction; a
                # rerun after an unknown commit finds none of them ours.
                ids = [c.job.id for c in completions]
                cursor.execute(
                    f"SELECT job_id{', canceling' if cancelable else ''} FROM {table} "
                    f"WHERE job_id IN ({placeholders(len(ids))}) "
                    "AND status = 'grabbed' AND grabber_id = %s FOR UPDATE",
                    ids + [grabber_id],
                )
                owned = {int(row[0]): bool(cancelable and row[1]) for row in cursor.fetchall()}
                if owned:
                    at = clock_ms(cursor, now)
                    extra: List[Any] = []
                    for c in completions:
                        if c.job.id in owned:
                            extra += hooks.finished(queue_name, c, at, owned[c.job.id])
                    self._insert_hook_jobs(cursor, hooks, extra, at)
            keep_finished(cursor, queue_name, completions, grabber_id, now, cancelable)  # B8, before the deletes
            delete_ids = list(done_ids)
            if failed:
                ids = list(failed)
                cursor.execute(
                    f"SELECT job_id{', canceling' if cancelable else ''} FROM {table} "
                    f"WHERE job_id IN ({placeholders(len(ids))}) "
                    "AND status = 'grabbed' AND grabber_id = %s FOR UPDATE",
                    ids + [grabber_id],
                )
                rows = cursor.fetchall()
                delete_ids += [int(row[0]) for row in rows if cancelable and row[1]]
                ours = sorted(int(row[0]) for row in rows if not (cancelable and row[1]))
                if ours:
                    values = []
                    args: List[Any] = []
                    for job_id in ours:
                        c = failed[job_id]
                        values.append(f"(%s, %s, %s, %s, %s, %s, {now}, %s)")
                        args += [
                            job_id, c.job.category, c.job.url, c.job.payload,
                            failure_result_text(c.job, c.result),
                            c.job.fail_count + 1, c.job.created_at,
                        ]
                    cursor.execute(
                        f"INSERT INTO {fail_table} "
                        "(job_id, category, url, payload, result, fail_count, failed_at, created_at) "
                        "VALUES " + ", ".join(values),
                        args,
                    )
                    delete_ids += ours
            if delete_ids:
                cursor.execute(
                    f"DELETE FROM {table} WHERE job_id IN ({placeholders(len(delete_ids))}) "
                    "AND status = 'grabbed' AND grabber_id = %s",
                    delete_ids + [grabber_id],
                )
            for wait, ids in retry_ids.items():
                delay = "retry_delay * 1000" if wait is None else str(int(wait))
                owned = (
                    f"WHERE job_id IN ({placeholders(len(ids))}) "
                    "AND status = 'grabbed' AND grabber_id = %s"
                )
                if cancelable:
                    cursor.execute(f"DELETE FROM {table} {owned} AND canceling <> 0", ids + [grabber_id])
                cursor.execute(
                    f"UPDATE {table} SET status = 'claimed', grabber_id = NULL, "
                    f"next_try = {now} + {delay}, "
                    "retry_count = GREATEST(retry_count, 1) - 1, fail_count = fail_count + 1 "
                    f"{owned}",
                    ids + [grabber_id],
                )

        # Every statement touches only jobs still grabbed by us, so running
        # the work again after an unknown COMMIT outcome changes nothing.
        queues = [queue_name] if hooks is None else [queue_name, hooks.queue_name]
        return self._run(queues, work, idempotent=True, what=f"complete jobs of {queue_name!r}")
