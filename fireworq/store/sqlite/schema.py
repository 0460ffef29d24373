"""
The file layout of the sqlite store: the shared tables, each queue's two
tables, and the upgrades of files written by earlier versions.

The layout mirrors the original MySQL schema (protocol A9):

  - ``"fireworq_jq(<key>)"`` and ``"fireworq_jq_fail(<key>)"`` per queue,
    ``<key>`` being L{table_key} of the queue name: the original's
    L{fireworq.names.storage_key} when that is the name itself, else made
    unique to the exact name by a hash, so that ``queueA`` and ``queueB``
    (or ``my-q`` and ``my.q``) keep their jobs apart; job and
    failure ids are ``INTEGER PRIMARY KEY AUTOINCREMENT`` (positive,
    increasing, never reused); an index on ``(status, next_try)`` (sqlite
    appends the id) serves grabs, counts and the job lists, one on
    ``created_at`` the failure log.  Tables stay when a queue's definition
    is deleted.  ``attempts`` counts the grabs of a job (the deliveries
    started, the one in flight included).  The job options of protocol B7
    are the columns ``options`` (JSON, NULL for a job without options),
    ``priority`` and ``deadline_at`` (ms), and ``canceling`` for B9; an
    index on ``(status, priority, next_try)`` serves the grab by priority
    (L{fireworq.store.priority}).  ``"fireworq_jq_idem(<key>)"`` holds the
    queue's idempotency keys.
  - ``queue`` (with ``job_defaults``, the JSON of a queue's job defaults),
    ``queue_throttle``, ``routing`` and ``config_revision``.
  - ``PRAGMA user_version`` is L{LAYOUT_VERSION}; L{prepare_file} brings
    an older file up to it.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from typing import Dict, List

from fireworq.names import storage_key
from fireworq.store.sqlite.history import history_schema
from fireworq.store.priority import SQLITE_JOB_COLUMNS, sqlite_grab_index_ddl

#: The file layout (``PRAGMA user_version``): 4 = ``queue`` has ``paused``
#: (B9); 3 = job tables have the B7
#: columns and the grab-by-priority index, ``queue`` has ``job_defaults``;
#: 2 = job tables have the ``attempts`` column; 1 = tables keyed by
#: L{table_key}; 0 = an older file, keyed by the bare storage key.
LAYOUT_VERSION = 4

#: The ``queue`` column added in layout 4: 1 while the queue is paused (B9).
PAUSED_COLUMN = "paused INTEGER NOT NULL DEFAULT 0"

#: The ``queue`` column added in layout 3: a queue's job defaults (JSON).
JOB_DEFAULTS_COLUMN = "job_defaults TEXT"

#: Hex digits of the name's hash that end the key of a non-plain name.
_HASH_DIGITS = 16

#: The tables every file has: definitions, routings and their revisions.
SHARED_SCHEMA = (
    # Layout 3's job_defaults column is added by the upgrade (a new file
    # goes through every upgrade step, L{prepare_file}).
    """CREATE TABLE IF NOT EXISTS queue (
        name TEXT NOT NULL PRIMARY KEY,
        polling_interval INTEGER NOT NULL,
        max_workers INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS queue_throttle (
        name TEXT NOT NULL PRIMARY KEY,
        max_dispatches_per_second REAL NOT NULL,
        max_burst_size INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS routing (
        job_category TEXT NOT NULL PRIMARY KEY,
        queue_name TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS config_revision (
        name TEXT NOT NULL PRIMARY KEY,
        revision INTEGER NOT NULL
    )""",
)


#: The job-table column added in layout 2, as ``ALTER TABLE ... ADD`` takes it.
ATTEMPTS_COLUMN = "attempts INTEGER NOT NULL DEFAULT 0"


@functools.lru_cache(maxsize=4096)
def table_key(queue_name: str) -> str:
    """
    The key that names the queue's tables, unique to the exact name: the
    original's L{storage_key} when it equals the name (a plain lowercase
    name such as ``jobs_2``), else the storage key, ``-`` and 16 hex digits
    of the SHA-256 of the name (``queueA`` -> ``queue_-...``).  ``-`` never
    occurs in a storage key, so the two kinds never meet, and sqlite's
    case-insensitive identifiers see only lowercase.  (Cached: every push,
    grab and completion asks.)
    """
    key = storage_key(queue_name)
    if key == queue_name:
        return key
    digest = hashlib.sha256(queue_name.encode("utf-8")).hexdigest()[:_HASH_DIGITS]
    return f"{key}-{digest}"


def jobs_table(key: str) -> str:
    """The quoted name of the job table of the table key ``key``."""
    return f'"fireworq_jq({key})"'


def failures_table(key: str) -> str:
    """The quoted name of the failure-log table of the table key ``key``."""
    return f'"fireworq_jq_fail({key})"'


def keys_table(key: str) -> str:
    """The quoted name of the idempotency-key table of the table key ``key``."""
    return f'"fireworq_jq_idem({key})"'


def queue_schema(key: str) -> List[str]:
    """The statements that create a queue's tables and indexes."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {jobs_table(key)} (
            job_id INTEGER PRIMARY KEY AUTOINCREMENT,
            next_try INTEGER NOT NULL,
            grabber_id INTEGER,
            status TEXT NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'grabbed')),
            created_at INTEGER NOT NULL,
            retry_count INTEGER NOT NULL DEFAULT 0,
            retry_delay INTEGER NOT NULL DEFAULT 0,
            fail_count INTEGER NOT NULL DEFAULT 0,
            category TEXT NOT NULL,
            url TEXT NOT NULL,
            payload TEXT,
            timeout INTEGER NOT NULL DEFAULT 0,
            {ATTEMPTS_COLUMN},
            {", ".join(ddl for _, ddl in SQLITE_JOB_COLUMNS)}
        )""",
        f"CREATE INDEX IF NOT EXISTS {_jobs_index(key)} ON {jobs_table(key)} (status, next_try)",
        sqlite_grab_index_ddl(_grab_index(key), jobs_table(key)),
        f"""CREATE TABLE IF NOT EXISTS {keys_table(key)} (
            idempotency_key TEXT NOT NULL PRIMARY KEY,
            job_id INTEGER,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            answer TEXT
        )""",
        f"CREATE INDEX IF NOT EXISTS {_keys_index(key)} ON {keys_table(key)} (expires_at)",
        f"""CREATE TABLE IF NOT EXISTS {failures_table(key)} (
            failure_id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL,
            category TEXT NOT NULL,
            url TEXT NOT NULL,
            payload TEXT,
            result TEXT,
            fail_count INTEGER NOT NULL DEFAULT 0,
            failed_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {_failures_index(key)} ON {failures_table(key)} (created_at)",
        # Kept finished jobs (B8), a table of their own.
        *history_schema(key),
    ]


def _jobs_index(key: str) -> str:
    return f'"fireworq_jq({key})_status"'


def _failures_index(key: str) -> str:
    return f'"fireworq_jq_fail({key})_created_at"'


def _grab_index(key: str) -> str:
    return f'"fireworq_jq({key})_grab_priority"'


def _keys_index(key: str) -> str:
    return f'"fireworq_jq_idem({key})_expiry"'


def _adopt_legacy_tables(conn: sqlite3.Connection) -> None:
    """
    Upgrade a file of layout 0, whose queue tables were named by the bare
    storage key (its server refused to define a second queue with the same
    key): the tables of each defined queue whose name is not its storage
    key become that queue's, renamed to its L{table_key} (ids, and so the
    AUTOINCREMENT counters, unchanged).  The tables of a key whose plain
    name is defined stay that queue's; those of a key that no defined queue
    has stay where they are.
    """
    tables = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    claimants: Dict[str, List[str]] = {}
    for (name,) in conn.execute("SELECT name FROM queue").fetchall():
        claimants.setdefault(storage_key(name), []).append(name)
    for key, names in claimants.items():
        if key in names or len(names) != 1:
            continue
        new = table_key(names[0])
        pairs = [(table(key), table(new)) for table in (jobs_table, failures_table)]
        if any(target.strip('"') in tables for _, target in pairs):
            continue
        legacy = [(source, target) for source, target in pairs if source.strip('"') in tables]
        if not legacy:
            continue
        for source, target in legacy:
            conn.execute(f"ALTER TABLE {source} RENAME TO {target}")
        # Renamed tables keep their indexes' names: make them anew (with the
        # columns of today's layout, which the new indexes need).
        if jobs_table(new).strip('"') in {target.strip('"') for _, target in legacy}:
            _add_missing_columns(conn, jobs_table(new).strip('"'))
        conn.execute(f"DROP INDEX IF EXISTS {_jobs_index(key)}")
        conn.execute(f"DROP INDEX IF EXISTS {_failures_index(key)}")
        for statement in queue_schema(new):
            conn.execute(statement)



def _add_attempts(conn: sqlite3.Connection) -> None:
    """
    Upgrade a file of layout 1 or older: give every job table the
    ``attempts`` column (0 for the jobs it holds; their next grab counts
    from their ``fail_count``).
    """
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'fireworq_jq(%'"
        )
    ]
    for table in tables:
        columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
        if "attempts" not in columns:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {ATTEMPTS_COLUMN}')


def _add_job_options(conn: sqlite3.Connection) -> None:
    """
    Upgrade a file of layout 2 or older: give every job table the B7
    columns (their defaults: no options, priority 0) and the
    grab-by-priority index, and ``queue`` the ``job_defaults`` column.
    Each queue's key table is made with its other tables when first used.
    """
    columns = {row[1] for row in conn.execute('PRAGMA table_info("queue")')}
    if "job_defaults" not in columns:
        conn.execute(f"ALTER TABLE queue ADD COLUMN {JOB_DEFAULTS_COLUMN}")
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'fireworq_jq(%'"
        )
    ]
    for table in tables:
        _add_missing_columns(conn, table)
        conn.execute(sqlite_grab_index_ddl(f'"{table}_grab_priority"', f'"{table}"'))


def _add_paused(conn: sqlite3.Connection) -> None:
    """Upgrade a file of layout 3 or older: give ``queue`` the ``paused`` column (not paused)."""
    columns = {row[1] for row in conn.execute('PRAGMA table_info("queue")')}
    if "paused" not in columns:
        conn.execute(f"ALTER TABLE queue ADD COLUMN {PAUSED_COLUMN}")


def _add_missing_columns(conn: sqlite3.Connection, table: str) -> None:
    """Give the job table ``table`` (unquoted) the columns of today's layout it lacks."""
    columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
    if "attempts" not in columns:
        conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {ATTEMPTS_COLUMN}')
    for name, ddl in SQLITE_JOB_COLUMNS:
        if name not in columns:
            conn.execute(f'ALTER TABLE "{table}" ADD COLUMN {ddl}')


def prepare_file(conn: sqlite3.Connection) -> None:
    """
    Inside a transaction: create the shared tables if missing and bring a
    file of an earlier layout up to L{LAYOUT_VERSION}.
    """
    for statement in SHARED_SCHEMA:
        conn.execute(statement)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < 1:
        _adopt_legacy_tables(conn)
    if version < 2:
        _add_attempts(conn)
    if version < 3:
        _add_job_options(conn)
    if version < 4:
        _add_paused(conn)
    if version < LAYOUT_VERSION:
        conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
