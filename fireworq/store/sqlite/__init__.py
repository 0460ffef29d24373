"""The sqlite driver (B1); see L{fireworq.store.sqlite.database}."""

from fireworq.store.sqlite.database import (  # noqa: F401
    _SHARED_SCHEMA,
    LAYOUT_VERSION,
    DatabaseInUse,
    SqliteDatabase,
    SqliteJobStore,
    SqliteRepository,
    failures_table,
    jobs_table,
    open_sqlite,
    queue_schema,
    table_key,
)
