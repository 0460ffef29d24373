"""
L{SqliteRepository}: queue definitions and routings in a L{SqliteDatabase}
(tables ``queue``, ``queue_throttle``, ``routing`` and ``config_revision``).
"""

from __future__ import annotations

import sqlite3
from typing import Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.model import QueueDefinition, Routing
from fireworq.store.common import decode_job_defaults, encode_job_defaults, normalize_definition
from fireworq.store.interface import IRepository
from fireworq.store.sqlite.database import SqliteDatabase

_QUEUE_SELECT = (
    "SELECT q.name, q.polling_interval, q.max_workers, t.max_dispatches_per_second,"
    " t.max_burst_size, q.job_defaults, q.paused FROM queue q LEFT JOIN queue_throttle t ON t.name = q.name"
)


def _definition(row: tuple) -> QueueDefinition:
    name, polling_interval, max_workers, rate, burst, job_defaults, paused = row[:7]
    return normalize_definition(
        QueueDefinition(
            name=name,
            polling_interval=polling_interval,
            max_workers=max_workers,
            max_dispatches_per_second=float(rate or 0.0),
            max_burst_size=burst or 0,
            defaults=decode_job_defaults(job_defaults),
            paused=bool(paused),
        )
    )


def _bump(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("INSERT OR IGNORE INTO config_revision (name, revision) VALUES (?, 0)", (name,))
    conn.execute("UPDATE config_revision SET revision = revision + 1 WHERE name = ?", (name,))


@implementer(IRepository)
class SqliteRepository:
    """
    L{IRepository} over a L{SqliteDatabase}.  The revision is made of the
    ``config_revision`` rows ``queue_definition`` and ``routing``, bumped in
    the transaction of every change.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def start(self) -> Deferred:
        """Open the database, as the job store's C{start} does."""
        return self.db.start()

    def stop(self) -> Deferred:
        """Release the database, as the job store's C{stop} does."""
        return self.db.stop()

    def list_queues(self) -> Deferred:
        return self.db.run(
            lambda conn: [
                _definition(row)
                for row in conn.execute(_QUEUE_SELECT + " ORDER BY q.name").fetchall()
            ]
        )

    @staticmethod
    def _find_queue(conn: sqlite3.Connection, name: str) -> Optional[QueueDefinition]:
        row = conn.execute(_QUEUE_SELECT + " WHERE q.name = ?", (name,)).fetchone()
        return None if row is None else _definition(row)

    def find_queue(self, name: str) -> Deferred:
        return self.db.run(self._find_queue, name)

    def put_queue(self, definition: QueueDefinition) -> Deferred:
        definition = normalize_definition(definition)

        def put(conn: sqlite3.Connection) -> bool:
            if self._find_queue(conn, definition.name) == definition:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO queue (name, polling_interval, max_workers, job_defaults,"
                " paused) VALUES (?, ?, ?, ?, ?)",
                (definition.name, definition.polling_interval, definition.max_workers,
                 encode_job_defaults(definition), 1 if definition.paused else 0),
            )
            if definition.throttled:
                conn.execute(
                    "INSERT OR REPLACE INTO queue_throttle"
                    " (name, max_dispatches_per_second, max_burst_size) VALUES (?, ?, ?)",
                    (definition.name, definition.max_dispatches_per_second,
                     definition.max_burst_size),
                )
            else:
                conn.execute("DELETE FROM queue_throttle WHERE name = ?", (definition.name,))
            _bump(conn, "queue_definition")
            return True

        return self.db.run(put)

    def delete_queue(self, name: str) -> Deferred:
        def delete(conn: sqlite3.Connection) -> Optional[QueueDefinition]:
            definition = self._find_queue(conn, name)
            if definition is not None:
                conn.execute("DELETE FROM queue WHERE name = ?", (name,))
                conn.execute("DELETE FROM queue_throttle WHERE name = ?", (name,))
                _bump(conn, "queue_definition")
            return definition

        return self.db.run(delete)

    def list_routings(self) -> Deferred:
        return self.db.run(
            lambda conn: [
                Routing(*row)
                for row in conn.execute(
                    "SELECT job_category, queue_name FROM routing ORDER BY job_category"
                ).fetchall()
            ]
        )

    @staticmethod
    def _find_routing(conn: sqlite3.Connection, category: str) -> Optional[Routing]:
        row = conn.execute(
            "SELECT job_category, queue_name FROM routing WHERE job_category = ?", (category,)
        ).fetchone()
        return None if row is None else Routing(*row)

    def find_routing(self, category: str) -> Deferred:
        return self.db.run(self._find_routing, category)

    def put_routing(self, routing: Routing) -> Deferred:
        def put(conn: sqlite3.Connection) -> bool:
            if self._find_routing(conn, routing.job_category) == routing:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO routing (job_category, queue_name) VALUES (?, ?)",
                (routing.job_category, routing.queue_name),
            )
            _bump(conn, "routing")
            return True

        return self.db.run(put)

    def delete_routing(self, category: str) -> Deferred:
        def delete(conn: sqlite3.Connection) -> Optional[Routing]:
            routing = self._find_routing(conn, category)
            if routing is not None:
                conn.execute("DELETE FROM routing WHERE job_category = ?", (category,))
                _bump(conn, "routing")
            return routing

        return self.db.run(delete)

    def revision(self) -> Deferred:
        def read(conn: sqlite3.Connection) -> str:
            revisions = dict(
                conn.execute(
                    "SELECT name, revision FROM config_revision"
                    " WHERE name IN ('queue_definition', 'routing')"
                ).fetchall()
            )
            return f"{revisions.get('queue_definition', 0)}.{revisions.get('routing', 0)}"

        return self.db.run(read)
