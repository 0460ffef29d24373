"""
Schedules of the sqlite driver: the table ``fireworq_schedule`` in the
store's file, written through the store's one database thread, so that a
guarded push (the job and the served time) is one sqlite transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import attr
from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.schedules.model import IPushGuard, ISchedules, ScheduleDefinition, ScheduleRecord

if TYPE_CHECKING:  # annotations only: the MySQL store imports record_from_row, not sqlite
    import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS fireworq_schedule (
  name TEXT PRIMARY KEY,
  definition TEXT NOT NULL,
  since INTEGER NOT NULL,
  last_run_at INTEGER NOT NULL DEFAULT 0,
  last_queue TEXT,
  last_job_id INTEGER
)
"""

_COLUMNS = "name, definition, since, last_run_at, last_queue, last_job_id"


def record_from_row(row: Any) -> ScheduleRecord:
    """A L{ScheduleRecord} from a row of L{_COLUMNS} (shared with the MySQL store)."""
    name, definition, since, last_run_at, last_queue, last_job_id = row
    if isinstance(name, bytes):
        name = name.decode("utf-8")
    if isinstance(definition, bytes):
        definition = definition.decode("utf-8")
    if isinstance(last_queue, bytes):
        last_queue = last_queue.decode("utf-8")
    return ScheduleRecord(
        ScheduleDefinition.decode(name, definition),
        since=int(since),
        last_run_at=int(last_run_at) or None,
        last_job=None if last_queue is None or last_job_id is None else (last_queue, int(last_job_id)),
    )


@implementer(IPushGuard)
@attr.s(auto_attribs=True)
class SqliteGuard:
    """Claims a time with one conditional UPDATE in the push's transaction."""

    name: str
    at_ms: int

    def claim(self, cursor: sqlite3.Connection) -> bool:
        done = cursor.execute(
            "UPDATE fireworq_schedule SET last_run_at = ? WHERE name = ? AND last_run_at < ?",
            (self.at_ms, self.name, self.at_ms),
        )
        return done.rowcount == 1

    def record(self, cursor: sqlite3.Connection, queue_name: str, job_id: int) -> None:
        cursor.execute(
            "UPDATE fireworq_schedule SET last_queue = ?, last_job_id = ? WHERE name = ?",
            (queue_name, job_id, self.name),
        )


@implementer(ISchedules)
class SqliteSchedules:
    """
    The schedules of the sqlite driver.

    @param db: the store's L{fireworq.store.sqlite.database.SqliteDatabase}
        (started by the job store).
    """

    kind = "sqlite"

    def __init__(self, db: Any) -> None:
        self.db = db

    def start(self) -> Deferred:
        return self.db.run(lambda conn: conn.execute(DDL) and None)

    def stop(self) -> Deferred:
        from twisted.internet.defer import succeed

        return succeed(None)

    def list(self) -> Deferred:
        def work(conn: sqlite3.Connection) -> List[ScheduleRecord]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM fireworq_schedule ORDER BY name").fetchall()
            return [record_from_row(row) for row in rows]

        return self.db.run(work)

    def find(self, name: str) -> Deferred:
        return self.db.run(self._find, name)

    @staticmethod
    def _find(conn: sqlite3.Connection, name: str) -> Optional[ScheduleRecord]:
        row = conn.execute(f"SELECT {_COLUMNS} FROM fireworq_schedule WHERE name = ?", (name,)).fetchone()
        return None if row is None else record_from_row(row)

    def put(self, definition: ScheduleDefinition, now_ms: int) -> Deferred:
        def work(conn: sqlite3.Connection) -> Optional[ScheduleRecord]:
            conn.execute(
                "INSERT INTO fireworq_schedule (name, definition, since) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, since = excluded.since",
                (definition.name, definition.encode(), now_ms),
            )
            return self._find(conn, definition.name)

        return self.db.run(work)

    def delete(self, name: str) -> Deferred:
        def work(conn: sqlite3.Connection) -> Optional[ScheduleRecord]:
            record = self._find(conn, name)
            conn.execute("DELETE FROM fireworq_schedule WHERE name = ?", (name,))
            return record

        return self.db.run(work)

    def guard(self, name: str, at_ms: int, epoch: Optional[int]) -> SqliteGuard:
        return SqliteGuard(name, at_ms)

    def skip(self, name: str, at_ms: int, epoch: Optional[int]) -> Deferred:
        return self.db.run(lambda conn: SqliteGuard(name, at_ms).claim(conn))

    def set_last_job(self, name: str, queue_name: str, job_id: int) -> Deferred:
        return self.db.run(lambda conn: SqliteGuard(name, 0).record(conn, queue_name, job_id))
