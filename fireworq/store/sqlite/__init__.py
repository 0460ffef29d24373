"""
The sqlite driver (B1): jobs, failure logs, queue definitions and routings in
one durable database file.

Usage::

    job_store, repository = open_sqlite("./fireworq.sqlite3")
    yield job_store.start()      # opens the file; the repository works too
    ...
    yield job_store.stop()       # pending calls finish, then the file closes

L{open_sqlite} builds one L{SqliteDatabase} (the file, its connection and
the one thread that uses it) shared by a L{SqliteJobStore} and a
L{SqliteRepository}.  The database is open while at least one of them is
started: starting either opens it, stopping the last one closes it.

Modules, as in the MySQL driver:

  - L{database}: the connection, its thread, group commit, open and close;
  - L{lockfile}: the lock that keeps a second process off the file;
  - L{schema}: table names, DDL and upgrades of older files;
  - L{rows}: rows to L{Job <fireworq.model.Job>} and
    L{FailedJob <fireworq.model.FailedJob>};
  - L{jobs}: the job store, made of one mixin per job: L{push}, L{grab}
    (grab, release, recover), L{complete}, L{control} (purge, cancel, retry
    a failed job, expired keys), L{inspection} (look-ups, listings,
    counts), L{history} (kept finished jobs);
  - L{repository}: the definitions.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from fireworq.store.common import Clock
from fireworq.store.sqlite.database import SqliteDatabase
from fireworq.store.sqlite.jobs import SqliteJobStore
from fireworq.store.sqlite.lockfile import DatabaseInUse
from fireworq.store.sqlite.repository import SqliteRepository
from fireworq.store.sqlite.schema import (
    LAYOUT_VERSION,
    SHARED_SCHEMA,
    failures_table,
    jobs_table,
    queue_schema,
    table_key,
)

__all__ = [
    "LAYOUT_VERSION",
    "SHARED_SCHEMA",
    "DatabaseInUse",
    "SqliteDatabase",
    "SqliteJobStore",
    "SqliteRepository",
    "failures_table",
    "jobs_table",
    "open_sqlite",
    "queue_schema",
    "table_key",
]


def open_sqlite(
    path: str, clock: Optional[Clock] = None, reactor: Any = None
) -> Tuple[SqliteJobStore, SqliteRepository]:
    """
    The job store and the repository of the database file ``path``, sharing
    one L{SqliteDatabase}.  Start the job store (or the repository) before
    use; stop what you started.
    """
    db = SqliteDatabase(path, reactor=reactor)
    return SqliteJobStore(db, clock=clock), SqliteRepository(db)
