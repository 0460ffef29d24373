"""
L{MySQLSigningKeys}: signing keys in MySQL, in a table of ours beside the
original's definition tables (repository DSN): ``fireworq_signing_key``.
The original Fireworq never reads it, so a database it shares with this
server stays valid for it.  Every node reads the same rows.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from fireworq.signing.interface import ISigningKeyStore
from fireworq.signing.keys import SigningKeys, switched
from fireworq.store.mysql.rows import text
from fireworq.store.small_tables import MySQLTable

TABLE = "fireworq_signing_key"

DDL = f"""
CREATE TABLE IF NOT EXISTS `{TABLE}` (
  `queue_name` VARCHAR(255) NOT NULL,
  `enabled` TINYINT NOT NULL DEFAULT 1,
  `current_secret` VARCHAR(255) NOT NULL,
  `previous_secret` VARCHAR(255) NULL,
  `previous_expires_at` BIGINT NULL,
  PRIMARY KEY (`queue_name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary"""

_SELECT = (
    f"SELECT queue_name, current_secret, previous_secret, previous_expires_at, enabled FROM `{TABLE}`"
)


def _keys(row: Any) -> SigningKeys:
    return SigningKeys(
        text(row[0]),
        text(row[1]),
        text(row[2]) if row[2] is not None else None,
        int(row[3]) if row[3] is not None else None,
        bool(row[4]),
    )


def _write(cursor: Any, keys: SigningKeys) -> None:
    cursor.execute(
        f"INSERT INTO `{TABLE}` (queue_name, enabled, current_secret, previous_secret, "
        "previous_expires_at) VALUES (%s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
        "enabled = VALUES(enabled), current_secret = VALUES(current_secret), "
        "previous_secret = VALUES(previous_secret), previous_expires_at = VALUES(previous_expires_at)",
        (keys.queue_name, 1 if keys.enabled else 0, keys.current, keys.previous,
         keys.previous_expires_at),
    )


def _locked(cursor: Any, queue_name: str) -> Optional[SigningKeys]:
    cursor.execute(_SELECT + " WHERE queue_name = %s FOR UPDATE", (queue_name,))
    row = cursor.fetchone()
    return None if row is None else _keys(row)


@implementer(ISigningKeyStore)
class MySQLSigningKeys(MySQLTable):
    """
    L{ISigningKeyStore} over a L{MySQLPool <fireworq.store.mysql.pool.MySQLPool>}
    (the repository's: definitions and keys live together).
    """

    DDL = DDL
    PREPARE_WHAT = "create the signing key table"

    def load_all(self) -> Deferred:
        def work(cursor: Any) -> list:
            cursor.execute(_SELECT + " WHERE enabled = 1")
            return [_keys(r) for r in cursor.fetchall()]

        return self._pool.run(work, idempotent=True, what="load signing keys")

    def find(self, queue_name: str) -> Deferred:
        def work(cursor: Any) -> Optional[SigningKeys]:
            cursor.execute(_SELECT + " WHERE queue_name = %s", (queue_name,))
            row = cursor.fetchone()
            return None if row is None else _keys(row)

        return self._pool.run(work, idempotent=True, what="find signing keys")

    def enable(self, queue_name: str, enabled: bool) -> Deferred:
        def work(cursor: Any) -> Optional[SigningKeys]:
            keys = _locked(cursor, queue_name)
            keys, changed = switched(keys, queue_name, enabled)
            if changed:
                _write(cursor, keys)
            return keys

        # Idempotent: a repeat after a lost commit finds the row and keeps it.
        return self._pool.run(work, idempotent=True, what="turn signing on or off", causal=True)

    def rotate(self, queue_name: str, now_ms: int, overlap_ms: int) -> Deferred:
        def work(cursor: Any) -> Optional[SigningKeys]:
            keys = _locked(cursor, queue_name)
            if keys is None or not keys.enabled:
                return None
            keys = keys.rotated(now_ms, overlap_ms)
            _write(cursor, keys)
            return keys

        # Not idempotent: a repeat would rotate twice and drop the old secret.
        return self._pool.run(work, idempotent=False, what="rotate a signing key", causal=True)

    def forget(self, queue_name: str) -> Deferred:
        return self._pool.run(
            lambda cursor: cursor.execute(
                f"DELETE FROM `{TABLE}` WHERE queue_name = %s", (queue_name,)
            ) and None,
            idempotent=True,
            what="delete signing keys",
        )
