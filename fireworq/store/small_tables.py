"""
The life cycle shared by the small one-table stores kept beside the queue
definitions (hook definitions, signing keys): each driver has one class,
and the three differ only in their queries.

  - L{MemoryTable}: nothing to start, prepare or stop.
  - L{SqliteTable}: starts and stops the driver's
    L{SqliteDatabase <fireworq.store.sqlite.database.SqliteDatabase>} (it
    counts its users), C{prepare} runs the class's C{DDL}.
  - L{MySQLTable}: retains and releases the repository's
    L{MySQLPool <fireworq.store.mysql.pool.MySQLPool>}, C{prepare} runs the
    class's C{DDL} (named C{PREPARE_WHAT} in the pool's errors).

A subclass sets C{DDL} (a C{CREATE TABLE IF NOT EXISTS} statement) and keeps
its queries; C{start}/C{prepare}/C{stop} are the store interfaces' methods.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed


class MemoryTable:
    """Base of an in-memory small store: the life cycle does nothing."""

    def start(self) -> Deferred:
        """Nothing to open."""
        return succeed(None)

    def prepare(self) -> Deferred:
        """Nothing to create."""
        return succeed(None)

    def stop(self) -> Deferred:
        """Nothing to close."""
        return succeed(None)


class SqliteTable:
    """Base of a small store in the sqlite driver's file (attribute C{db})."""

    #: The statement that creates the table when it is missing.
    DDL: str = ""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._started = False

    def start(self) -> Deferred:
        """Open (or share) the database file."""
        d = self.db.start()

        def started(_: object) -> None:
            self._started = True

        d.addCallback(started)
        return d

    def prepare(self) -> Deferred:
        """Create the table when missing."""
        return self.db.run(lambda conn: conn.execute(self.DDL) and None)

    def stop(self) -> Deferred:
        """Give the database back, once, if C{start} took it."""
        if not self._started:
            return succeed(None)
        self._started = False
        return self.db.stop()


class MySQLTable:
    """Base of a small store in the repository's MySQL database (pool C{_pool})."""

    #: The statement that creates the table when it is missing.
    DDL: str = ""
    #: What C{prepare} does, in the pool's error messages.
    PREPARE_WHAT: str = "create a table"

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._started = False

    def start(self) -> Deferred:
        """Retain the pool (once)."""
        if not self._started:
            self._pool.retain()
            self._started = True
        return succeed(None)

    def prepare(self) -> Deferred:
        """Create the table when missing."""
        return self._pool.run(
            lambda cursor: cursor.execute(self.DDL) and None, idempotent=True, what=self.PREPARE_WHAT
        )

    def stop(self) -> Deferred:
        """Release the pool, once, if C{start} retained it."""
        if not self._started:
            return succeed(None)
        self._started = False
        return self._pool.release()
