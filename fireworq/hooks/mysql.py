"""
L{MySQLHookStore}: hook definitions in MySQL, in a table of ours beside the
original's definition tables (repository DSN): ``fireworq_hook``.  The
original Fireworq never reads it, so a database it shares with this server
stays valid for it.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.hooks.model import HookDefinition, decode_events, encode_events
from fireworq.hooks.storage import IHookStore
from fireworq.store.mysql.rows import text
from fireworq.store.small_tables import MySQLTable

TABLE = "fireworq_hook"

DDL = f"""
CREATE TABLE IF NOT EXISTS `{TABLE}` (
  `name` VARCHAR(255) NOT NULL,
  `url` TEXT NOT NULL,
  `events` VARCHAR(255) NOT NULL,
  `queues` VARCHAR(255) NULL,
  `secret` VARCHAR(255) NOT NULL,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary"""

_SELECT = f"SELECT name, url, events, queues, secret FROM `{TABLE}`"


def _hook(row: Any) -> HookDefinition:
    return HookDefinition(
        name=text(row[0]),
        url=text(row[1]),
        events=decode_events(text(row[2])),
        queues=text(row[3]) if row[3] is not None else None,
        secret=text(row[4]),
    )


@implementer(IHookStore)
class MySQLHookStore(MySQLTable):
    """L{IHookStore} over the repository's L{MySQLPool <fireworq.store.mysql.pool.MySQLPool>}."""

    DDL = DDL
    PREPARE_WHAT = "create the hook table"

    def load_all(self) -> Deferred:
        def work(cursor: Any) -> list:
            cursor.execute(_SELECT + " ORDER BY name")
            return [_hook(r) for r in cursor.fetchall()]

        return self._pool.run(work, idempotent=True, what="load hooks")

    def find(self, name: str) -> Deferred:
        def work(cursor: Any) -> Optional[HookDefinition]:
            cursor.execute(_SELECT + " WHERE name = %s", (name,))
            row = cursor.fetchone()
            return None if row is None else _hook(row)

        return self._pool.run(work, idempotent=True, what="find a hook")

    def put(self, hook: HookDefinition) -> Deferred:
        def work(cursor: Any) -> None:
            cursor.execute(
                f"INSERT INTO `{TABLE}` (name, url, events, queues, secret) VALUES (%s, %s, %s, %s, %s) "
                "ON DUPLICATE KEY UPDATE url = VALUES(url), events = VALUES(events), "
                "queues = VALUES(queues), secret = VALUES(secret)",
                (hook.name, hook.url, encode_events(hook.events), hook.queues, hook.secret),
            )

        return self._pool.run(work, idempotent=True, what="store a hook", causal=True)

    def delete(self, name: str) -> Deferred:
        def work(cursor: Any) -> Optional[HookDefinition]:
            cursor.execute(_SELECT + " WHERE name = %s FOR UPDATE", (name,))
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute(f"DELETE FROM `{TABLE}` WHERE name = %s", (name,))
            return _hook(row)

        return self._pool.run(work, idempotent=True, what="delete a hook", causal=True)
