"""L{SqliteHookStore}: hook definitions in the sqlite driver's file, table ``hook``."""

from __future__ import annotations

import sqlite3
from typing import Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.hooks.model import HookDefinition, decode_events, encode_events
from fireworq.hooks.storage import IHookStore
from fireworq.store.small_tables import SqliteTable

DDL = """
CREATE TABLE IF NOT EXISTS hook (
  name TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  events TEXT NOT NULL,
  queues TEXT,
  secret TEXT NOT NULL
)"""

_SELECT = "SELECT name, url, events, queues, secret FROM hook"


def _hook(row: tuple) -> HookDefinition:
    return HookDefinition(name=row[0], url=row[1], events=decode_events(row[2]), queues=row[3], secret=row[4])


@implementer(IHookStore)
class SqliteHookStore(SqliteTable):
    """L{IHookStore} over the driver's L{SqliteDatabase <fireworq.store.sqlite.database.SqliteDatabase>}."""

    DDL = DDL

    def load_all(self) -> Deferred:
        return self.db.run(lambda conn: [_hook(r) for r in conn.execute(_SELECT + " ORDER BY name").fetchall()])

    def find(self, name: str) -> Deferred:
        def work(conn: sqlite3.Connection) -> Optional[HookDefinition]:
            row = conn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            return None if row is None else _hook(row)

        return self.db.run(work)

    def put(self, hook: HookDefinition) -> Deferred:
        return self.db.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO hook (name, url, events, queues, secret) VALUES (?, ?, ?, ?, ?)",
                (hook.name, hook.url, encode_events(hook.events), hook.queues, hook.secret),
            ) and None
        )

    def delete(self, name: str) -> Deferred:
        def work(conn: sqlite3.Connection) -> Optional[HookDefinition]:
            row = conn.execute(_SELECT + " WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM hook WHERE name = ?", (name,))
            return _hook(row)

        return self.db.run(work)
