"""
Pushing to the SQLite job store: L{SqlitePush} inserts new jobs (one
row each, in the current group-commit transaction), claims idempotency
keys in the queue's key table in the same transaction (SQLite has one
writer, so a claim never waits) and stores the events' hook jobs with the
change they report.

A mixin of L{SqliteJobStore <fireworq.store.sqlite.jobs.SqliteJobStore>},
which provides C{db}, C{_clock}, C{idempotency_window_ms} and C{event_hooks}.
"""

from __future__ import annotations

import sqlite3
from typing import Any, List, Optional, Sequence

from twisted.internet.defer import Deferred, fail

from fireworq.joboptions.values import encode_options
from fireworq.model import Job, PushEntry, Replay
from fireworq.store.common import check_storable
from fireworq.store.idempotency import keys_by_queue, plan_push, push_results
from fireworq.store.sqlite.schema import jobs_table, keys_table, table_key


class SqlitePush:
    """Storing new jobs (pushes, scheduled pushes, hook jobs)."""

    # Provided by SqliteJobStore.
    db: Any
    _clock: Any
    idempotency_window_ms: int
    event_hooks: Any

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
