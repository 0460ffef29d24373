"""
L{SqliteSigningKeys}: signing keys in the sqlite driver's database file,
table ``signing_key`` (created when missing; files of older versions get it
on first start).
"""

from __future__ import annotations

import sqlite3
from typing import Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.signing.interface import ISigningKeyStore
from fireworq.signing.keys import SigningKeys, switched
from fireworq.store.small_tables import SqliteTable

DDL = """
CREATE TABLE IF NOT EXISTS signing_key (
  queue_name TEXT PRIMARY KEY,
  enabled INTEGER NOT NULL DEFAULT 1,
  current_secret TEXT NOT NULL,
  previous_secret TEXT,
  previous_expires_at INTEGER
)"""

_SELECT = (
    "SELECT queue_name, current_secret, previous_secret, previous_expires_at, enabled"
    " FROM signing_key"
)


def _keys(row: tuple) -> SigningKeys:
    return SigningKeys(row[0], row[1], row[2], row[3], bool(row[4]))


def _find(conn: sqlite3.Connection, queue_name: str) -> Optional[SigningKeys]:
    row = conn.execute(_SELECT + " WHERE queue_name = ?", (queue_name,)).fetchone()
    return None if row is None else _keys(row)


def _write(conn: sqlite3.Connection, keys: SigningKeys) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO signing_key (queue_name, enabled, current_secret,"
        " previous_secret, previous_expires_at) VALUES (?, ?, ?, ?, ?)",
        (keys.queue_name, 1 if keys.enabled else 0, keys.current, keys.previous,
         keys.previous_expires_at),
    )


@implementer(ISigningKeyStore)
class SqliteSigningKeys(SqliteTable):
    """L{ISigningKeyStore} over the driver's L{SqliteDatabase <fireworq.store.sqlite.database.SqliteDatabase>}."""

    DDL = DDL

    def load_all(self) -> Deferred:
        return self.db.run(
            lambda conn: [_keys(r) for r in conn.execute(_SELECT + " WHERE enabled = 1").fetchall()]
        )

    def find(self, queue_name: str) -> Deferred:
        return self.db.run(_find, queue_name)

    def enable(self, queue_name: str, enabled: bool) -> Deferred:
        def work(conn: sqlite3.Connection) -> Optional[SigningKeys]:
            keys = _find(conn, queue_name)
            keys, changed = switched(keys, queue_name, enabled)
            if changed:
                _write(conn, keys)
            return keys

        return self.db.run(work)

    def rotate(self, queue_name: str, now_ms: int, overlap_ms: int) -> Deferred:
        def work(conn: sqlite3.Connection) -> Optional[SigningKeys]:
            keys = _find(conn, queue_name)
            if keys is None or not keys.enabled:
                return None
            keys = keys.rotated(now_ms, overlap_ms)
            _write(conn, keys)
            return keys

        return self.db.run(work)

    def forget(self, queue_name: str) -> Deferred:
        return self.db.run(
            lambda conn: conn.execute(
                "DELETE FROM signing_key WHERE queue_name = ?", (queue_name,)
            ) and None
        )
