"""
Where tokens are kept: L{ITokenStore} and one implementation per driver.

  - in-memory: a dict (tokens last as long as the process);
  - sqlite: the table ``fireworq_token`` in the server's database file;
  - MySQL: the table ``fireworq_token`` in the definitions database (the
    original Fireworq never reads it), through a small pool of its own.

Tokens are few and read whole: each node loads them all at start and
again every ``config_refresh_interval`` (L{fireworq.auth.registry}), so a
revocation made on one node reaches every node within that interval.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, succeed
from zope.interface import Interface, implementer

from fireworq.auth.tokens import SCOPES, Token

#: The token table (MySQL and sqlite).
TABLE = "fireworq_token"

MYSQL_DDL = (
    f"CREATE TABLE IF NOT EXISTS `{TABLE}` ("
    " `id` VARCHAR(32) NOT NULL,"
    " `name` VARCHAR(255) NOT NULL,"
    " `secret_hash` CHAR(64) NOT NULL,"
    " `scopes` VARCHAR(64) NOT NULL,"
    " `queues` VARCHAR(255) NULL,"
    " `rate` DOUBLE NULL,"
    " `burst` INT UNSIGNED NULL,"
    " `created_at` BIGINT UNSIGNED NOT NULL,"
    " PRIMARY KEY (`id`),"
    " UNIQUE KEY `secret_hash` (`secret_hash`)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)

SQLITE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE,"
    " scopes TEXT NOT NULL, queues TEXT, rate REAL, burst INTEGER, created_at INTEGER NOT NULL)"
)

_COLUMNS = "id, name, secret_hash, scopes, queues, rate, burst, created_at"


def _row(token: Token) -> tuple:
    scopes = ",".join(s for s in SCOPES if s in token.scopes)
    return (token.id, token.name, token.secret_hash, scopes, token.queues, token.rate, token.burst, token.created_at)


def _token(row: Any) -> Token:
    def text(value: Any) -> Any:
        return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value

    scopes = frozenset(s for s in text(row[3]).split(",") if s)
    return Token(
        id=text(row[0]),
        name=text(row[1]),
        secret_hash=text(row[2]),
        scopes=scopes,
        queues=text(row[4]),
        rate=float(row[5]) if row[5] is not None else None,
        burst=int(row[6]) if row[6] is not None else None,
        created_at=int(row[7]),
    )


class ITokenStore(Interface):
    """The stored tokens of the cluster (every call fires on the reactor thread)."""

    def prepare() -> "Deferred[None]":
        """Create the token table if missing."""

    def all() -> "Deferred[List[Token]]":
        """Every token, oldest first."""

    def add(token: Token) -> "Deferred[None]":
        """Store a new token."""

    def remove(token_id: str) -> "Deferred[Optional[Token]]":
        """Delete a token; fire with it, or None when there was none."""

    def close() -> "Deferred[None]":
        """Let go of what the store holds (its pool)."""


@implementer(ITokenStore)
class MemoryTokenStore:
    """Tokens of an in-memory server: gone with the process."""

    def __init__(self) -> None:
        self._tokens: Dict[str, Token] = {}

    def prepare(self) -> "Deferred[None]":
        return succeed(None)

    def all(self) -> "Deferred[List[Token]]":
        return succeed(sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id)))

    def add(self, token: Token) -> "Deferred[None]":
        self._tokens[token.id] = token
        return succeed(None)

    def remove(self, token_id: str) -> "Deferred[Optional[Token]]":
        return succeed(self._tokens.pop(token_id, None))

    def close(self) -> "Deferred[None]":
        return succeed(None)


@implementer(ITokenStore)
class SqliteTokenStore:
    """
    Tokens in the sqlite database of the server (the repository's
    L{fireworq.store.sqlite.database.SqliteDatabase}, opened by the store).
    """

    def __init__(self, db: Any) -> None:
        self.db = db

    def prepare(self) -> "Deferred[None]":
        return self.db.run(lambda conn: conn.execute(SQLITE_DDL) and None)

    def all(self) -> "Deferred[List[Token]]":
        return self.db.run(
            lambda conn: [
                _token(row)
                for row in conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY created_at, id").fetchall()
            ]
        )

    def add(self, token: Token) -> "Deferred[None]":
        return self.db.run(
            lambda conn: conn.execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row(token))
            and None
        )

    def remove(self, token_id: str) -> "Deferred[Optional[Token]]":
        def work(conn: Any) -> Optional[Token]:
            row = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                return None
            conn.execute(f"DELETE FROM {TABLE} WHERE id = ?", (token_id,))
            return _token(row)

        return self.db.run(work)

    def close(self) -> "Deferred[None]":
        return succeed(None)


@implementer(ITokenStore)
class MySQLTokenStore:
    """
    Tokens in MySQL, through a L{fireworq.store.mysql.pool.MySQLPool} of
    their own on the definitions DSN (kept small: a few statements a second
    at most).
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool.retain()

    def _go(self, work: Any, what: str, idempotent: bool = True) -> Deferred:
        return self._pool.run(work, idempotent=idempotent, what=what)

    def prepare(self) -> "Deferred[None]":
        return self._go(lambda cursor: cursor.execute(MYSQL_DDL) and None, "create the token table")

    def all(self) -> "Deferred[List[Token]]":
        def work(cursor: Any) -> List[Token]:
            cursor.execute(f"SELECT {_COLUMNS} FROM `{TABLE}` ORDER BY created_at, id")
            return [_token(row) for row in cursor.fetchall()]

        return self._go(work, "load tokens")

    def add(self, token: Token) -> "Deferred[None]":
        def work(cursor: Any) -> None:
            cursor.execute(
                f"INSERT INTO `{TABLE}` ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", _row(token)
            )

        # Not idempotent: a replay after a lost COMMIT would hit the primary key.
        return self._go(work, "store a token", idempotent=False)

    def remove(self, token_id: str) -> "Deferred[Optional[Token]]":
        def work(cursor: Any) -> Optional[Token]:
            cursor.execute(f"SELECT {_COLUMNS} FROM `{TABLE}` WHERE id = %s FOR UPDATE", (token_id,))
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute(f"DELETE FROM `{TABLE}` WHERE id = %s", (token_id,))
            return _token(row)

        return self._go(work, "revoke a token")

    def close(self) -> "Deferred[None]":
        return self._pool.release()


def open_token_store(config: Any, repository: Any, reactor: Any) -> ITokenStore:
    """The token store of the configured driver (beside ``repository``)."""
    if config.driver == "in-memory":
        return MemoryTokenStore()
    if config.driver == "sqlite":
        return SqliteTokenStore(repository.db)
    from fireworq.store.mysql import open_pool

    return MySQLTokenStore(open_pool(config.repository_mysql_dsn, reactor, size=2, name="mysql-tokens"))
