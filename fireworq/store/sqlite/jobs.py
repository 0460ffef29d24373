"""
L{SqliteJobStore}: the jobs and failure logs of every queue in a
L{SqliteDatabase}, one pair of tables per queue (L{fireworq.store.sqlite.schema}).

Every call is one function run on the database thread inside the current
group-commit transaction: a grab asks which priorities have claimed jobs
(one index seek per priority, L{fireworq.store.priority}), then SELECTs
the due jobs of each, highest first, through the ``(status, priority,
next_try)`` index until it has enough, and UPDATEs their status; a
completion batch is one statement per kind of outcome.  Pushes with
idempotency keys claim them in the queue's key table in the same
transaction (SQLite has one writer, so a claim never waits).
"""

from __future__ import annotations

import sqlite3
from typing import Any, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from fireworq.joboptions.values import encode_options
from fireworq.model import (
    Completion,
    CompletionKind,
    FailedJob,
    FailureOrder,
    Job,
    JobCounts,
    JobState,
    Page,
    PageKey,
    PushEntry,
    Replay,
)
from fireworq.store.common import (
    Clock,
    attempts_at_grab,
    check_storable,
    failure_result_text,
    system_clock,
)
from fireworq.store.idempotency import DEFAULT_WINDOW_MS, keys_by_queue, plan_push, push_results
from fireworq.store.interface import IJobStore
from fireworq.store.priority import due_priorities, sqlite_grab_sql, sqlite_priorities_sql
from fireworq.store.sqlite.database import Operation, SqliteDatabase
from fireworq.store.sqlite.rows import (
    FAILED_COLUMNS,
    JOB_COLUMNS,
    OWNED,
    chunks,
    failed_from_row,
    job_from_row,
)
from fireworq.store.sqlite.history import SqliteHistory, keep_finished
from fireworq.store.sqlite.schema import failures_table, jobs_table, keys_table, table_key

#: Expired idempotency keys one cleanup statement deletes at most.
KEYS_DELETE_BATCH = 1000


@implementer(IJobStore)
class SqliteJobStore(SqliteHistory):
    """
    L{IJobStore} over a L{SqliteDatabase}.

    @param db: the database (shared with a L{SqliteRepository}).
    @param clock: returns the time in milliseconds since the epoch; it stamps
        ``created_at``, ``next_try`` and ``failed_at``.
    """

    name = "sqlite"

    def __init__(
        self, db: SqliteDatabase, clock: Optional[Clock] = None, idempotency_window_ms: int = DEFAULT_WINDOW_MS
    ) -> None:
        self.db = db
        self._clock: Clock = clock or system_clock
        #: How long an idempotency key is remembered (ms).
        self.idempotency_window_ms = idempotency_window_ms
        #: The hook matcher (B12, L{fireworq.hooks.matcher.HookMatcher}) while
        #: a hook is defined, else None: events' hook jobs are stored in the
        #: transaction of the change they report.
        self.event_hooks: Any = None

    def start(self) -> Deferred:
        return self.db.start()

    def stop(self) -> Deferred:
        return self.db.stop()

    def ping(self) -> Deferred:
        return self.db.run(lambda conn: conn.execute("SELECT 1").fetchone() and None)

    def storage_key(self, queue_name: str) -> str:
        """The queue's L{table_key}: every exact name has tables of its own."""
        return table_key(queue_name)

    def _run(self, queue_name: str, function: Operation, *args: Any) -> Deferred:
        key = table_key(queue_name)

        def call(conn: sqlite3.Connection) -> Any:
            self.db.ensure_queue(conn, key)
            return function(conn, jobs_table(key), failures_table(key), *args)

        return self.db.run(call)

    def prepare_queue(self, queue_name: str) -> Deferred:
        return self._run(queue_name, lambda conn, jobs, failures: None)

    def push(self, entries: Sequence[PushEntry]) -> Deferred:
        entries = list(entries)
        try:
            for entry in entries:
                check_storable(entry)
        except ValueError:
            return fail()
        push = self._push_keyed if keys_by_queue(entries) else self._push
        hooks = self.event_hooks
        if hooks is not None:
            return self.db.run(self._push_hooked, hooks, push, entries, self._clock())
        return self.db.run(push, entries, self._clock())

    def _push_hooked(self, conn: sqlite3.Connection, hooks: Any, push: Any, entries: List[PushEntry], now: int) -> list:
        # B12: the pushes and their hook jobs in one transaction.
        stored = push(conn, entries, now)
        extra = []
        for entry, job in zip(entries, stored):
            if isinstance(job, Job):
                extra += hooks.pushed(entry.queue_name, job, now)
        self._insert_hook_jobs(conn, hooks, extra, now)
        return stored

    def _insert_hook_jobs(self, conn: sqlite3.Connection, hooks: Any, jobs: List[Any], now: int) -> None:
        for new_job in jobs:
            self._insert(conn, PushEntry(hooks.queue_name, new_job), now)

    def push_guarded(self, entry: PushEntry, guard: Any) -> Deferred:
        """
        Store one job only if ``guard.claim(conn)`` agrees, in the same
        transaction as the claim and ``guard.record`` (a schedule's time,
        B10); fire with the job or None.
        """
        try:
            check_storable(entry)
        except ValueError:
            return fail()

        def work(conn: sqlite3.Connection, now: int) -> Optional[Job]:
            if not guard.claim(conn):
                return None
            job = self._insert(conn, entry, now)
            guard.record(conn, entry.queue_name, job.id)
            hooks = self.event_hooks
            if hooks is not None:
                self._insert_hook_jobs(conn, hooks, hooks.pushed(entry.queue_name, job, now), now)
            return job

        return self.db.run(work, self._clock())

    def _push(self, conn: sqlite3.Connection, entries: List[PushEntry], now: int) -> List[Job]:
        return [self._insert(conn, entry, now) for entry in entries]

    def _insert(self, conn: sqlite3.Connection, entry: PushEntry, now: int) -> Job:
        key = table_key(entry.queue_name)
        self.db.ensure_queue(conn, key)
        new = entry.job
        next_try = now + new.run_after * 1000
        status = "claimed" if entry.grabber_id is None else "grabbed"
        options = new.options
        cursor = conn.execute(
            f"INSERT INTO {jobs_table(key)} (next_try, grabber_id, status, created_at,"
            " retry_count, retry_delay, fail_count, category, url, payload, timeout,"
            " attempts, priority, deadline_at, options) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            (next_try, entry.grabber_id, status, now, new.max_retries, new.retry_delay,
             new.category, new.url, new.payload, new.timeout,
             0 if entry.grabber_id is None else 1,
             options.effective_priority, options.deadline_at(now), encode_options(options)),
        )
        return new.stored(cursor.lastrowid, now, entry.grabber_id)

    def _push_keyed(self, conn: sqlite3.Connection, entries: List[PushEntry], now: int) -> list:
        """A push with idempotency keys: claim them, store the jobs of the free ones, record."""
        replays = {}
        for queue_name, keys in keys_by_queue(entries).items():
            key = table_key(queue_name)
            self.db.ensure_queue(conn, key)
            table = keys_table(key)
            marks = ",".join("?" * len(keys))
            conn.execute(f"DELETE FROM {table} WHERE idempotency_key IN ({marks}) AND expires_at <= ?", [*keys, now])
            conn.executemany(
                f"INSERT OR IGNORE INTO {table} (idempotency_key, created_at, expires_at) VALUES (?, ?, ?)",
                [(k, now, now + self.idempotency_window_ms) for k in keys],
            )
            for k, job_id, answer in conn.execute(
                f"SELECT idempotency_key, job_id, answer FROM {table} WHERE idempotency_key IN ({marks})", keys
            ):
                # One writer: a key without a job id was claimed just now, by this push.
                replays[(queue_name, k)] = None if job_id is None else Replay(job_id, answer or "{}")
        plan = plan_push(entries, replays)
        stored = {
            index: self._insert(conn, entry, now)
            for index, (entry, step) in enumerate(zip(entries, plan))
            if step is None
        }
        results, records = push_results(entries, plan, stored)
        for queue_name, rows in records.items():
            conn.executemany(
                f"UPDATE {keys_table(table_key(queue_name))} SET job_id = ?, answer = ? WHERE idempotency_key = ?",
                [(job_id, answer, k) for k, job_id, answer in rows],
            )
        return results

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

    # Queue control (B9)

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
            items = [job_from_row(row) for row in rows]
            if len(items) > limit:
                return Page(items[:limit], (items[limit].next_try, items[limit].id))
            return Page(items, None)

        return self._run(queue_name, query)

    def find_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._find_failed, failure_id, False)

    def delete_failed(self, queue_name: str, failure_id: int) -> Deferred:
        return self._run(queue_name, self._find_failed, failure_id, True)

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
            items = [failed_from_row(row) for row in rows]
            if len(items) > limit:
                return Page(items[:limit], (items[limit].created_at, items[limit].id))
            return Page(items, None)

        return self._run(queue_name, query)

    def count_jobs(self, queue_name: str) -> Deferred:
        return self._run(queue_name, self._count_jobs, self._clock())

    @staticmethod
    def _count_jobs(conn, jobs, failures, now: int) -> JobCounts:
        waiting, deferred, grabbed = conn.execute(
            f"SELECT (SELECT count(*) FROM {jobs} WHERE status = 'claimed' AND next_try <= ?),"
            f" (SELECT count(*) FROM {jobs} WHERE status = 'claimed' AND next_try > ?),"
            f" (SELECT count(*) FROM {jobs} WHERE status = 'grabbed')",
            (now, now),
        ).fetchone()
        return JobCounts(waiting=waiting, deferred=deferred, grabbed=grabbed)
