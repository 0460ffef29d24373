"""
L{MySQLJobStore}: the jobs of every queue in the original Fireworq's tables
``fireworq_jq(<key>)`` and ``fireworq_jq_fail(<key>)`` (protocol A9).

Every operation is one transaction with as few statements as its work
allows (design.md, "Performance principles"):

  - push: one multi-row INSERT per queue table (split only when a batch
    would exceed the server's packet size), one COMMIT for everything;
  - grab: the priorities that have claimed jobs (a loose index scan of
    ``grab_priority``, one entry per priority), then per due priority,
    highest first, SELECT ... FOR UPDATE of its due jobs in (next_try,
    job_id) order through that index until the grab is full (one range for
    a queue without priorities; L{fireworq.store.priority}), and one UPDATE
    of their status and attempt count (our ``attempts`` column, see
    L{schema.ATTEMPTS_COLUMN});
  - push with idempotency keys: the keys are claimed in the queue's key
    table in the same transaction (L{fireworq.store.mysql.idempotency});
  - complete: one DELETE for successes and failures, one UPDATE for all
    retries, one multi-row INSERT into the failure log -- each touching
    only jobs still grabbed by the caller.

Connections use READ COMMITTED, so locking reads take no gap locks and
never block pushes.  Times come from the database clock.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attr
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.model import (
    Completion,
    CompletionKind,
    FailedJob,
    Job,
    JobStatus,
    PushEntry,
)
from fireworq.joboptions.values import encode_options
from fireworq.store.interface import IJobStore, JobTooLarge, StoreUnavailable
from fireworq.store.common import attempts_at_grab, check_storable, failure_result_text
from fireworq.store.idempotency import DEFAULT_WINDOW_MS, keys_by_queue, plan_push, push_results
from fireworq.store.mysql.history import MySQLHistory, history_ddl, keep_finished
from fireworq.store.mysql.inspection import MySQLInspection, take_failed
from fireworq.store.mysql.idempotency import claim_keys, delete_expired, idempotency_ddl, record_keys
from fireworq.store.priority import (
    MYSQL_GRAB_KEY,
    MYSQL_JOB_COLUMNS,
    due_priorities,
    mysql_add_columns_ddl,
    mysql_grab_sql,
    mysql_priorities_sql,
)
from fireworq.store.mysql.pool import CommitOutcomeUnknown, GaleraInfo, MySQLPool, RetryWork
from fireworq.store.mysql.rows import (
    JOB_COLUMNS,
    UNCOUNTED_JOB_COLUMNS,
    job_columns,
    job_from_row,
    placeholders,
)
from fireworq.store.mysql.schema import (
    LEASE_DDL,
    NOW_MS,
    add_attempts_ddl,
    failure_table,
    job_table,
    queue_tables_ddl,
    table_key,
)

#: Errors of a statement the user may not run (ER_TABLEACCESS_DENIED_ERROR,
#: ER_DBACCESS_DENIED_ERROR).
_DENIED_CODES = frozenset({1142, 1044})

#: Jobs one purge statement deletes at most (B9); within Galera's usual
#: wsrep_max_ws_rows.
PURGE_BATCH = 5000

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


def _clock_ms(cursor: Any, clock: str) -> int:
    """
    The time a statement of this transaction should stamp, in ms: ``clock``
    is either digits (a test's fixed clock) or an SQL expression of the
    database clock, read once.
    """
    if clock.isdigit():
        return int(clock)
    cursor.execute(f"SELECT {clock}")
    return int(cursor.fetchone()[0])


def _clock_and_step(cursor: Any, clock: str) -> Tuple[int, int]:
    """Like L{_clock_ms}, and the session's auto-increment step, in one statement."""
    cursor.execute(f"SELECT {clock}, @@SESSION.auto_increment_increment")
    now, step = cursor.fetchone()
    return int(now), max(1, int(step))


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


def _job_table_shape(cursor: Any, queue_name: str) -> Tuple[List[str], List[str]]:
    """The names of the columns and of the keys of the queue's job table."""
    cursor.execute(f"SHOW COLUMNS FROM {job_table(queue_name)}")
    columns = [_text(row[0]) for row in cursor.fetchall()]
    cursor.execute(f"SHOW INDEX FROM {job_table(queue_name)}")
    keys = sorted({_text(row[2]) for row in cursor.fetchall()})
    return columns, keys


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _missing_options_ddl(cursor: Any, queue_name: str) -> str:
    """The ALTER that gives the job table what the job options need ("" when it has it all)."""
    columns, keys = _job_table_shape(cursor, queue_name)
    return mysql_add_columns_ddl(job_table(queue_name), columns, keys)


#: Later than any time: step 1 of the grab has filtered the due priorities.
_ANY_TIME = 2**63

#: How many expired idempotency keys one cleanup deletes at most (in batches).
KEYS_DELETE_MAX = 100_000


def _has_attempts_column(cursor: Any, queue_name: str) -> bool:
    cursor.execute(f"SHOW COLUMNS FROM {job_table(queue_name)} LIKE 'attempts'")
    return bool(cursor.fetchall())


@implementer(IJobStore)
class MySQLJobStore(MySQLHistory, MySQLInspection):
    """
    Jobs and failure logs in MySQL (or MariaDB).

    @param pool: the connection pool of the queue DSN (see
        L{fireworq.store.mysql.open_mysql_stores}, which builds it).
    @param fence_grabs: grab only while the lease row of the queue
        (C{fireworq_lease}, same database) is unexpired with C{epoch} equal
        to the grabber id.  Use it when dispatch is driven by
        L{fireworq.lease.keeper.LeaseKeeper}: a node that lost its lease without
        noticing yet (paused, slow) then cannot grab even once.
    @param clock: for tests only: milliseconds since the epoch to use
        instead of the database clock for job times (so the store contract's
        time-moving tests run on MySQL too).  Servers leave it None: every
        node must read the same clock, the database's.
    """

    name = "mysql"

    _log = Logger()

    def __init__(
        self, pool: MySQLPool, fence_grabs: bool = False, clock: Optional[Callable[[], int]] = None
    ) -> None:
        self._pool = pool.retain()
        self._fence = fence_grabs
        self._clock = clock
        self._prepared: Dict[str, bool] = {}
        #: Table key -> whether its job table has our ``attempts`` column.
        self._attempts: Dict[str, bool] = {}
        #: Table key -> the ALTER its job table lacks for the job options
        #: (B7), "" when it has their columns and index.
        self._options_ddl: Dict[str, str] = {}
        #: How long an idempotency key is remembered (ms).
        self.idempotency_window_ms = DEFAULT_WINDOW_MS
        #: The hook matcher (B12, L{fireworq.hooks.matcher.HookMatcher}) while
        #: a hook is defined, else None: events' hook jobs are inserted in
        #: the transaction of the change they report.
        self.event_hooks: Any = None
        self._preparing: Dict[str, List[Deferred]] = {}
        self._stopped = False

    def storage_key(self, queue_name: str) -> str:
        """
        The key of the queue's tables, the original's (protocol A9): names
        that differ only in characters outside ``[0-9a-z_]`` share it.
        """
        return table_key(queue_name)

    def _now(self) -> str:
        """The SQL of "now" in ms: the database clock (or the test clock)."""
        return NOW_MS if self._clock is None else str(int(self._clock()))

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> Deferred:
        def create(cursor: Any) -> None:
            if self._fence:
                for ddl in LEASE_DDL:
                    cursor.execute(ddl)
            else:
                cursor.execute("SELECT 1")

        d = self._go(create, idempotent=True, what="start")
        d.addCallback(lambda _: self._pool.detect())
        d.addCallback(self._detected)
        return d

    def _detected(self, galera: Optional[GaleraInfo]) -> None:
        if galera is None:
            return
        self._log.info(
            "The MySQL store is on Galera node {node} ({state}) of a {status} cluster of {size}; "
            "conflicts are retried, recoveries read with wsrep_sync_wait, "
            "wsrep_max_ws_rows={rows}, wsrep_max_ws_size={size_limit}",
            node=galera.node_name, state=galera.state, status=galera.cluster_status,
            size=galera.cluster_size, rows=galera.max_ws_rows, size_limit=galera.max_ws_size,
        )

    @property
    def galera(self) -> Optional[GaleraInfo]:
        """The Galera node found at L{start}, or None on a single server."""
        return getattr(self._pool, "galera", None)  # test doubles of the pool may lack it

    def stop(self) -> Deferred:
        """Let go of the connection pool; later calls fail with StoreUnavailable."""
        if self._stopped:
            return succeed(None)
        self._stopped = True
        return self._pool.release()

    def ping(self) -> Deferred:
        def ping(cursor: Any) -> None:
            cursor.execute("SELECT 1")
            cursor.fetchall()

        return self._go(ping, idempotent=True, what="ping")

    def prepare_queue(self, queue_name: str) -> Deferred:
        key = table_key(queue_name)
        if self._prepared.get(key):
            return succeed(None)
        waiting = self._preparing.get(key)
        if waiting is not None:
            d: Deferred = Deferred()
            waiting.append(d)
            return d
        self._preparing[key] = []

        def create(cursor: Any) -> None:
            for ddl in queue_tables_ddl(queue_name):
                cursor.execute(ddl)
            cursor.execute(idempotency_ddl(queue_name))
            cursor.execute(history_ddl(queue_name))
            self._attempts[key] = self._ensure_attempts_column(cursor, queue_name)
            self._options_ddl[key] = self._ensure_options_columns(cursor, queue_name)

        def created(_: Any) -> None:
            self._prepared[key] = True
            for d in self._preparing.pop(key, []):
                d.callback(None)

        def failed(failure: Any) -> Any:
            for d in self._preparing.pop(key, []):
                d.errback(failure)
            return failure

        d = self._go(create, idempotent=True, what=f"create tables of queue {queue_name!r}")
        d.addCallbacks(created, failed)
        return d

    def _ensure_attempts_column(self, cursor: Any, queue_name: str) -> bool:
        """
        Give a job table the original created our ``attempts`` column (an
        instant change on MariaDB >= 10.3 and MySQL >= 8.0); return whether
        the table has it.  Another node may add it at the same moment: an
        ALTER failing is fine if the column is there afterwards.  Without
        the ALTER privilege the table is served as it is, attempts counted
        from ``fail_count`` as before (logged once per queue).
        """
        if _has_attempts_column(cursor, queue_name):
            return True
        try:
            cursor.execute(add_attempts_ddl(queue_name))
        except Exception as e:
            if _has_attempts_column(cursor, queue_name):
                return True
            if self._pool.driver.error_code(e) not in _DENIED_CODES:
                raise
            self._log.warn(
                "Cannot add the column `attempts` to the job table of queue {queue} ({error}): "
                "X-Fireworq-Attempt of its jobs will not count deliveries cut short by a dying "
                "node. Grant ALTER to the server's user, or run as an administrator: {ddl}",
                queue=queue_name, error=self._pool.driver.describe(e), ddl=add_attempts_ddl(queue_name),
            )
            return False
        return True

    def _ensure_options_columns(self, cursor: Any, queue_name: str) -> str:
        """
        Give a job table the original (or an older version of this server)
        created the columns and index of the job options (one online ALTER
        of what is missing); return the ALTER still missing ("" when the
        table has it all).  As for ``attempts``, another node may be adding
        them at the same moment, and without the ALTER privilege the table
        is served as it is: grabbed by due time only, and pushes with
        options to it are refused (never stored stripped of them).
        """
        ddl = _missing_options_ddl(cursor, queue_name)
        if not ddl:
            return ""
        try:
            cursor.execute(ddl)
        except Exception as e:
            ddl = _missing_options_ddl(cursor, queue_name)
            if not ddl:
                return ""
            if self._pool.driver.error_code(e) not in _DENIED_CODES:
                raise
            self._log.warn(
                "Cannot add the job options' columns to the job table of queue {queue} ({error}): "
                "its jobs are grabbed by due time only and pushes with job options are refused. "
                "Grant ALTER and INDEX to the server's user, or run as an administrator: {ddl}",
                queue=queue_name, error=self._pool.driver.describe(e), ddl=ddl,
            )
            return ddl
        return ""

    def _counts(self, queue_name: str) -> bool:
        """Whether the queue's job table has our ``attempts`` column."""
        return self._attempts.get(table_key(queue_name), True)

    def _optioned(self, queue_name: str) -> bool:
        """Whether the queue's job table has the job options' columns and index."""
        return not self._options_ddl.get(table_key(queue_name), "")

    def _columns(self, queue_name: str) -> str:
        """The job columns to select from the queue's table (L{JOB_COLUMNS})."""
        return job_columns(self._counts(queue_name), self._optioned(queue_name))

    def _go(self, work: Any, idempotent: bool, what: str, causal: bool = False) -> Deferred:
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL job store is stopped ({what})"))
        if causal:
            return self._pool.run(work, idempotent=idempotent, what=what, causal=True)
        return self._pool.run(work, idempotent=idempotent, what=what)

    def _run(
        self, queue_names: Sequence[str], work: Any, idempotent: bool, what: str, causal: bool = False
    ) -> Deferred:
        """Run ``work`` once the queues' tables exist (C{causal}: see L{MySQLPool.run})."""
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL job store is stopped ({what})"))
        missing = [q for q in queue_names if not self._prepared.get(table_key(q))]
        if not missing:
            return self._go(work, idempotent=idempotent, what=what, causal=causal)
        d = succeed(None)
        for queue_name in dict.fromkeys(missing):
            d.addCallback(lambda _, q=queue_name: self.prepare_queue(q))
        d.addCallback(lambda _: self._go(work, idempotent=idempotent, what=what, causal=causal))
        return d

    # -- pushing --------------------------------------------------------------------

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
                now = _clock_ms(cursor, clock_now)
                increment = max(1, settings.auto_increment_increment)
            else:
                # Galera sets the auto-increment step to the cluster's size
                # at every view change, sessions included: read it with the
                # clock, and again after the INSERTs (see below).
                now, increment = _clock_and_step(cursor, clock_now)
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
            now = _clock_ms(cursor, clock_now)
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
        row = "(%s, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s" + (", %s" if counted else "") + \
            (", %s, %s, %s)" if optioned else ")")
        values = []
        args: List[Any] = []
        for job, grabber in jobs:
            if not optioned and not job.options.is_empty:
                raise StoreUnavailable(
                    f"the job table of queue {queue_name!r} lacks the columns of job options "
                    f"(the server may not alter it); an administrator must run: "
                    f"{self._options_ddl.get(table_key(queue_name))}"
                )
            values.append(row)
            args += [
                now + job.run_after * 1000,
                now,
                job.max_retries,
                job.retry_delay,
                job.category,
                job.url,
                job.payload,
                job.timeout,
                "claimed" if grabber is None else "grabbed",
                grabber,
            ]
            if counted:
                args.append(0 if grabber is None else 1)  # stored grabbed: its first attempt
            if optioned:
                options = job.options
                args += [options.effective_priority, options.deadline_at(now), encode_options(options)]
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

    # -- dispatching ----------------------------------------------------------------

    def grab(self, queue_name: str, limit: int, grabber_id: int) -> Deferred:
        galera = self.galera
        if galera is not None and galera.max_ws_rows:
            limit = min(limit, galera.max_ws_rows)  # one row changed per job
        if limit <= 0:
            return succeed([])
        table = job_table(queue_name)
        selected: List[int] = []
        now = self._now()

        def work(cursor: Any) -> List[Job]:
            del selected[:]
            if self._fence:
                # A shared lock on the lease row: a takeover (which updates
                # the row) waits for this grab's commit and then recovers
                # what it grabbed, so nothing stays grabbed under an old epoch.
                cursor.execute(
                    f"SELECT epoch FROM `fireworq_lease` WHERE name = %s AND expires_at > {NOW_MS} "
                    "LOCK IN SHARE MODE",
                    (queue_name,),
                )
                row = cursor.fetchone()
                if row is None or int(row[0]) != grabber_id:
                    return []
            counted = self._counts(queue_name)
            columns = self._columns(queue_name)
            if self._optioned(queue_name):
                # Highest priority first, due order within one (B7).
                # Step 1 keeps only the priorities with a due job (HAVING
                # after the loose index scan: no extra round trip for the clock).
                cursor.execute(mysql_priorities_sql(table) + f" HAVING MIN(next_try) <= {now}")
                jobs = []
                for priority in due_priorities(cursor.fetchall(), _ANY_TIME):
                    cursor.execute(mysql_grab_sql(table, columns, priority, now, limit - len(jobs)))
                    jobs += [job_from_row(row) for row in cursor.fetchall()]
                    if len(jobs) >= limit:
                        break
            else:
                cursor.execute(
                    f"SELECT {columns} FROM {table} FORCE INDEX (`grab`) "
                    f"WHERE status = 'claimed' AND next_try <= {now} "
                    f"ORDER BY next_try, job_id LIMIT {int(limit)} FOR UPDATE"
                )
                jobs = [job_from_row(row) for row in cursor.fetchall()]
            if not jobs:
                return []
            ids = [job.id for job in jobs]
            cursor.execute(
                f"UPDATE {table} SET status = 'grabbed', grabber_id = %s"
                f"{', attempts = GREATEST(attempts, fail_count) + 1' if counted else ''} "
                f"WHERE job_id IN ({placeholders(len(ids))})",
                [grabber_id] + ids,
            )
            selected.extend(ids)
            grabbed = JobStatus.GRABBED.value
            return [
                attr.evolve(
                    j, status=grabbed, grabber_id=grabber_id,
                    attempts=attempts_at_grab(j.attempts, j.fail_count),
                )
                for j in jobs
            ]

        d = self._run([queue_name], work, idempotent=False, what=f"grab from {queue_name!r}")

        def unknown(failure: Any) -> Any:
            # The grab may have been committed with nobody to deliver its
            # jobs: put them back (a no-op if it was not committed).
            failure.trap(CommitOutcomeUnknown)
            ids = list(selected)
            if not ids:
                return failure
            undo = self.release(queue_name, ids, grabber_id)
            undo.addErrback(
                lambda f: self._log.warn(
                    "Jobs {ids} of queue {queue} may stay grabbed until the next lease takeover: {why}",
                    ids=ids, queue=queue_name, why=f.getErrorMessage(),
                )
            )
            undo.addBoth(lambda _: failure)
            return undo

        d.addErrback(unknown)
        return d

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
                    at = _clock_ms(cursor, now)
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

    def release(self, queue_name: str, job_ids: Sequence[int], grabber_id: int) -> Deferred:
        ids = [int(i) for i in job_ids]
        if not ids:
            return succeed(0)

        def work(cursor: Any) -> int:
            owned = f"WHERE job_id IN ({placeholders(len(ids))}) AND status = 'grabbed' AND grabber_id = %s"
            cancelable = self._optioned(queue_name)
            cursor.execute(
                f"UPDATE {job_table(queue_name)} SET status = 'claimed', grabber_id = NULL {owned}"
                f"{' AND canceling = 0' if cancelable else ''}",
                ids + [grabber_id],
            )
            released = int(cursor.rowcount)
            if cancelable:
                # Canceled before it was sent (B9): deleted, not returned.
                cursor.execute(f"DELETE FROM {job_table(queue_name)} {owned} AND canceling <> 0", ids + [grabber_id])
                released += int(cursor.rowcount)
            return released

        return self._run([queue_name], work, idempotent=True, what=f"release jobs of {queue_name!r}")

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        """
        Return the queue's jobs grabbed under an OLDER epoch (below
        ``grabber_id``, or NULL) to ``claimed``.  Not every other epoch
        (``<>``): a queue's epoch only rises (lease rows are never deleted,
        and an original server's grabber ids are connection ids, below
        L{FIRST_EPOCH <fireworq.lease.mysql.FIRST_EPOCH>}), so a job grabbed
        under a higher epoch is a NEWER holder's.  On Galera a claim that
        stalls in commit can come back after another node has taken the
        queue over again; its recovery must leave that node's in-flight
        jobs alone, or they would be delivered twice.
        """
        def work(cursor: Any) -> int:
            deleted = 0
            if self._optioned(queue_name):
                # Canceled while its holder died (B9): deleted, not returned.
                cursor.execute(
                    f"DELETE FROM {job_table(queue_name)} WHERE status = 'grabbed' AND canceling <> 0 "
                    "AND (grabber_id IS NULL OR grabber_id < %s)",
                    (grabber_id,),
                )
                deleted = int(cursor.rowcount)
            cursor.execute(
                f"UPDATE {job_table(queue_name)} SET status = 'claimed', grabber_id = NULL "
                "WHERE status = 'grabbed' AND (grabber_id IS NULL OR grabber_id < %s)",
                (grabber_id,),
            )
            return int(cursor.rowcount) + deleted

        # Causal on Galera: a grab by the previous holder may have been
        # committed on another node and not yet applied on this one; the
        # UPDATE must see it, or that job would stay grabbed by an old epoch.
        return self._run([queue_name], work, idempotent=True, what=f"recover jobs of {queue_name!r}",
                         causal=True)

    # -- queue control (B9) ------------------------------------------------------------

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
                    now = _clock_ms(cursor, self._now())
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
            now = _clock_ms(cursor, clock_now)
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
