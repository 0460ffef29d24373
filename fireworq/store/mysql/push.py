"""
Pushing to the MySQL job store: L{MySQLPush} stores new jobs with one
multi-row INSERT per queue table (split only when a batch would exceed the
server's packet size) and one COMMIT for everything, claiming idempotency
keys (L{fireworq.store.mysql.idempotency}) and inserting the events' hook
jobs in the same transaction.

A mixin of L{MySQLJobStore <fireworq.store.mysql.jobs.MySQLJobStore>},
which provides C{_run}, C{_now}, C{_pool}, C{_fence}, the table facts of
L{fireworq.store.mysql.tables} and C{galera}.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, fail, succeed

from fireworq.joboptions.values import encode_options
from fireworq.model import Job, PushEntry
from fireworq.store.common import check_storable
from fireworq.store.idempotency import keys_by_queue, plan_push, push_results
from fireworq.store.interface import JobTooLarge, StoreUnavailable
from fireworq.store.mysql.clock import clock_and_step, clock_ms
from fireworq.store.mysql.idempotency import claim_keys, record_keys
from fireworq.store.mysql.pool import GaleraInfo, RetryWork
from fireworq.store.mysql.schema import NOW_MS, job_table, table_key

#: Bytes of row data put into one INSERT statement at most (further limited
#: to half the server's max_allowed_packet).
INSERT_CHUNK_BYTES = 4 << 20

#: Bytes a row costs in an INSERT besides its text columns (numbers, quotes).
_ROW_OVERHEAD = 96

#: Bytes of a statement besides its one row: a row must leave this much of
#: max_allowed_packet free (the statement's text, escaping).
_PACKET_MARGIN = 4096


def _chunks(rows: Sequence[Tuple[Any, ...]], sizes: Sequence[int], limit: int) -> List[Sequence[Tuple[Any, ...]]]:
    """Split ``rows`` into runs whose ``sizes`` add up to at most ``limit``."""
    out: List[Sequence[Tuple[Any, ...]]] = []
    start = total = 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            out.append(rows[start:i])
            start, total = i, 0
        total += size
    if start < len(rows):
        out.append(rows[start:])
    return out


def _over_galera_limits(galera: GaleraInfo, entries: Sequence[PushEntry]) -> Optional[str]:
    """
    Why a push of ``entries`` cannot be one Galera transaction
    (C{wsrep_max_ws_rows}, C{wsrep_max_ws_size}), or None when it can.
    """
    if galera.max_ws_rows and len(entries) > galera.max_ws_rows:
        return (
            f"a push of {len(entries)} jobs exceeds the Galera cluster's wsrep_max_ws_rows "
            f"({galera.max_ws_rows} rows in one transaction)"
        )
    size = sum(
        len(e.job.payload.encode("utf-8")) + len(e.job.url.encode("utf-8")) + _ROW_OVERHEAD for e in entries
    )
    # Half the limit: the write set also carries keys and row images.
    if size > galera.max_ws_size // 2:
        return (
            f"a push of {size} bytes exceeds half the Galera cluster's wsrep_max_ws_size "
            f"({galera.max_ws_size} bytes in one transaction)"
        )
    return None


class MySQLPush:
    """Storing new jobs (pushes, scheduled pushes, hook jobs)."""

    # Provided by MySQLJobStore.
    _run: Any
    _now: Any
    _pool: Any
    _fence: bool
    _counts: Any
    _optioned: Any
    _options_ddl: Dict[str, str]
    galera: Any
    idempotency_window_ms: int
    event_hooks: Any

    def push(self, entries: Sequence[PushEntry]) -> Deferred:
        entries = list(entries)
        if not entries:
            return succeed([])
        try:
            for entry in entries:
                check_storable(entry)
        except ValueError as e:
            return fail(e)
        by_queue: Dict[str, List[int]] = {}
        for index, entry in enumerate(entries):
            by_queue.setdefault(entry.queue_name, []).append(index)

        clock_now = self._now()

        galera = self.galera
        if galera is not None:
            too_big = _over_galera_limits(galera, entries)
            if too_big:
                return fail(JobTooLarge(too_big))

        keyed = keys_by_queue(entries)
        window = self.idempotency_window_ms
        hooks = self.event_hooks

        def work(cursor: Any) -> List[Job]:
            settings = self._pool.settings
            plan = None
            if keyed:
                # Claim the keys first: a key another push is claiming
                # makes this wait for that push's commit (its unique key).
                replays = {}
                for queue_name, keys in keyed.items():
                    claimed = claim_keys(cursor, queue_name, keys, window, clock_now)
                    replays.update(((queue_name, k), replay) for k, replay in claimed.items())
                plan = plan_push(entries, replays)
            if galera is None:
                now = clock_ms(cursor, clock_now)
                increment = max(1, settings.auto_increment_increment)
            else:
                # Galera sets the auto-increment step to the cluster's size
                # at every view change, sessions included: read it with the
                # clock, and again after the INSERTs (see below).
                now, increment = clock_and_step(cursor, clock_now)
            limit = max(64 << 10, min(INSERT_CHUNK_BYTES, settings.max_allowed_packet // 2))
            out: List[Optional[Job]] = [None] * len(entries)
            for queue_name, indexes in by_queue.items():
                if plan is not None:
                    indexes = [i for i in indexes if plan[i] is None]
                    if not indexes:
                        continue
                grabbers = self._fenced(
                    cursor,
                    queue_name,
                    {i: entries[i].grabber_id for i in indexes if entries[i].grabber_id is not None},
                )
                rows = []
                sizes = []
                for i in indexes:
                    job = entries[i].job
                    rows.append((i, job, grabbers.get(i)))
                    sizes.append(
                        len(job.payload.encode("utf-8")) + len(job.url.encode("utf-8"))
                        + len(job.category.encode("utf-8")) + _ROW_OVERHEAD
                    )
                largest = max(sizes)
                if largest > settings.max_allowed_packet - _PACKET_MARGIN:
                    raise JobTooLarge(
                        f"a job of {largest} bytes does not fit in one statement to the database "
                        f"(its max_allowed_packet is {settings.max_allowed_packet} bytes)"
                    )
                for chunk in _chunks(rows, sizes, limit):
                    first = self._insert(
                        cursor, queue_name, [(job, grabber) for _, job, grabber in chunk], now
                    )
                    for n, (i, job, grabber) in enumerate(chunk):
                        out[i] = job.stored(first + n * increment, now, grabber)
            if hooks is not None:
                # B12: the pushes' hook jobs, in the pushes' transaction.
                extra = []
                for entry, job in zip(entries, out):
                    if job is not None:
                        extra += hooks.pushed(entry.queue_name, job, now)
                self._insert_hook_jobs(cursor, hooks, extra, now)
            if galera is not None:
                cursor.execute("SELECT @@SESSION.auto_increment_increment")
                if max(1, int(cursor.fetchone()[0])) != increment:
                    raise RetryWork("the Galera cluster changed size during a push")
            if plan is not None:
                stored = {i: job for i, job in enumerate(out) if job is not None}
                results, records = push_results(entries, plan, stored)
                for queue_name, rows in records.items():
                    record_keys(cursor, queue_name, rows)
                return results  # type: ignore[return-value]
            return out  # type: ignore[return-value]

        queues = list(by_queue) if hooks is None else list(by_queue) + [hooks.queue_name]
        return self._run(queues, work, idempotent=False, what="push")

    def _insert_hook_jobs(self, cursor: Any, hooks: Any, jobs: List[Any], now: int) -> None:
        """Insert the hook jobs of events (B12) into the ``_hooks`` queue, a few rows per statement."""
        for start in range(0, len(jobs), 50):
            self._insert(cursor, hooks.queue_name, [(job, None) for job in jobs[start:start + 50]], now)

    def push_guarded(self, entry: PushEntry, guard: Any) -> Deferred:
        """
        Store one job only if ``guard.claim(cursor)`` agrees, in the same
        transaction as the claim and ``guard.record`` (a schedule's time and
        its job commit together, B10); fire with the job or None.
        """
        try:
            check_storable(entry)
        except ValueError as e:
            return fail(e)
        clock_now = self._now()
        hooks = self.event_hooks

        def work(cursor: Any) -> Optional[Job]:
            if not guard.claim(cursor):
                return None
            now = clock_ms(cursor, clock_now)
            job_id = self._insert(cursor, entry.queue_name, [(entry.job, None)], now)
            guard.record(cursor, entry.queue_name, job_id)
            job = entry.job.stored(job_id, now, None)
            if hooks is not None:
                self._insert_hook_jobs(cursor, hooks, hooks.pushed(entry.queue_name, job, now), now)
            return job

        queues = [entry.queue_name] if hooks is None else [entry.queue_name, hooks.queue_name]
        return self._run(queues, work, idempotent=False, what="scheduled push")

    def _fenced(self, cursor: Any, queue_name: str, wanted: Dict[int, int]) -> Dict[int, int]:
        """
        Of the entries to be stored grabbed (position -> grabber id), those
        that may be: with fenced grabs, only while the grabber id is the
        queue's current lease epoch.  The lease row is read with a shared
        lock, so a takeover waits for this commit and then recovers the jobs
        it stored grabbed; the others are stored claimed.
        """
        if not wanted or not self._fence:
            return wanted
        cursor.execute(
            f"SELECT epoch FROM `fireworq_lease` WHERE name = %s AND expires_at > {NOW_MS} "
            "LOCK IN SHARE MODE",
            (queue_name,),
        )
        row = cursor.fetchone()
        epoch = int(row[0]) if row is not None else None
        return {index: grabber for index, grabber in wanted.items() if grabber == epoch}

    def _insert(self, cursor: Any, queue_name: str, jobs: Sequence[Any], now: int) -> int:
        """
        Insert ``jobs`` (pairs of a new job and the grabber id to store it
        grabbed by, or None) with one multi-row INSERT; return the first id.

        The ids of a multi-row INSERT ... VALUES are consecutive steps of
        ``auto_increment_increment`` from LAST_INSERT_ID(): the number of rows
        is known before the statement runs (a "simple insert"), so InnoDB
        reserves all of them at once, under every innodb_autoinc_lock_mode
        (0, 1 and 2; only inserts of unknown size, such as INSERT ... SELECT,
        may get gaps under mode 2).  tests/test_store_mysql.py checks this
        under modes 1 and 2 with concurrent pushes and an increment of 3.
        """
        counted = self._counts(queue_name)
        optioned = self._optioned(queue_name)
        values = []
        args: List[Any] = []
        for job, grabber in jobs:
            # The numbers (ints, by the model) are written as digits and a
            # Part A job's option columns as constants: the driver escapes
            # only the texts, three arguments a row, which is most of its
            # work per row.
            row = "(%d, %d, %d, %d, 0, %%s, %%s, %%s, %d, " % (
                now + job.run_after * 1000, now, job.max_retries, job.retry_delay, job.timeout,
            )
            row += "'claimed', NULL" if grabber is None else "'grabbed', %d" % grabber
            if counted:
                row += ", 0" if grabber is None else ", 1"  # stored grabbed: its first attempt
            args += [job.category, job.url, job.payload]
            options = job.options
            if options.is_empty:
                row += ", 0, NULL, NULL)" if optioned else ")"
            elif optioned:
                deadline = options.deadline_at(now)
                row += ", %d, %s, %%s)" % (options.effective_priority, "NULL" if deadline is None else "%d" % deadline)
                args.append(encode_options(options))
            else:
                raise StoreUnavailable(
                    f"the job table of queue {queue_name!r} lacks the columns of job options "
                    f"(the server may not alter it); an administrator must run: "
                    f"{self._options_ddl.get(table_key(queue_name))}"
                )
            values.append(row)
        cursor.execute(
            f"INSERT INTO {job_table(queue_name)} "
            "(next_try, created_at, retry_count, retry_delay, fail_count, category, url, payload, "
            f"timeout, status, grabber_id{', attempts' if counted else ''}"
            f"{', priority, deadline_at, options' if optioned else ''}) "
            "VALUES " + ", ".join(values),
            args,
        )
        if cursor.rowcount != len(jobs):
            raise StoreUnavailable(f"inserted {cursor.rowcount} of {len(jobs)} jobs")
        return int(cursor.lastrowid)
