"""
L{MySQLRepository}: queue definitions and routings in the original
Fireworq's tables ``queue``, ``queue_throttle``, ``routing`` and
``config_revision`` (protocol A9).

As in the original, a change bumps the ``config_revision`` row
``queue_definition`` (queues) or ``routing`` (routings), which every node
polls; a put that changes nothing writes nothing and bumps nothing, so an
unchanged PUT never restarts a dispatcher anywhere.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import attr
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.model import QueueDefinition, Routing
from fireworq.store.common import decode_job_defaults, encode_job_defaults
from fireworq.store.interface import IRepository, StoreUnavailable
from fireworq.store.mysql.pool import MySQLPool
from fireworq.store.mysql.rows import float32, same_float32, text
from fireworq.store.mysql.schema import REPOSITORY_DDL

_QUEUE_COLUMNS = (
    "q.name, q.polling_interval, q.max_workers, t.max_dispatches_per_second, t.max_burst_size, "
    "q.job_defaults, q.paused"
)

#: Our columns of the original's ``queue`` table, added when the repository
#: starts if missing (each NULL-able or with a default, so that the
#: original's upsert, which names its columns, leaves them alone): name and
#: the DDL of ``ALTER TABLE ... ADD COLUMN``.
QUEUE_COLUMNS_OF_OURS: List[Tuple[str, str]] = [
    ("job_defaults", "`job_defaults` BLOB NULL"),
    ("paused", "`paused` TINYINT NOT NULL DEFAULT 0"),
]

#: Errors of a statement the user may not run (ALTER denied).
_DENIED_CODES = frozenset({1142, 1044})
_QUEUE_FROM = "FROM `queue` q LEFT JOIN `queue_throttle` t ON t.name = q.name"

QUEUE_REVISION = "queue_definition"
ROUTING_REVISION = "routing"


def _definition(row: Any) -> QueueDefinition:
    return _normal(
        QueueDefinition(
            name=text(row[0]),
            polling_interval=int(row[1]),
            max_workers=int(row[2]),
            max_dispatches_per_second=float32(row[3]) if row[3] is not None else 0.0,
            max_burst_size=int(row[4]) if row[4] is not None else 0,
            defaults=decode_job_defaults(row[5]),
            paused=bool(row[6]),
        )
    )


def _normal(definition: QueueDefinition) -> QueueDefinition:
    """The definition as stored: no burst size unless throttled."""
    if definition.throttled:
        return definition
    return attr.evolve(definition, max_dispatches_per_second=0.0, max_burst_size=0)


def _same(a: QueueDefinition, b: QueueDefinition) -> bool:
    a, b = _normal(a), _normal(b)
    return (
        a.polling_interval == b.polling_interval
        and a.max_workers == b.max_workers
        and same_float32(a.max_dispatches_per_second, b.max_dispatches_per_second)
        and a.max_burst_size == b.max_burst_size
        and a.defaults == b.defaults
        and a.paused == b.paused
    )


def _bump(cursor: Any, name: str) -> None:
    cursor.execute(
        "INSERT INTO `config_revision` (name, revision) VALUES (%s, 1) "
        "ON DUPLICATE KEY UPDATE revision = revision + 1",
        (name,),
    )


@implementer(IRepository)
class MySQLRepository:
    """
    Definitions and routings in MySQL.

    @param pool: the connection pool of the repository DSN.
    """

    _log = Logger()

    def __init__(self, pool: MySQLPool) -> None:
        self._pool = pool.retain()
        self._stopped = False
        #: Our columns the ``queue`` table lacks (no ALTER privilege).
        self._missing: Dict[str, str] = {}

    def start(self) -> Deferred:
        """Create the definition tables if missing, and add our columns to ``queue``."""

        def create(cursor: Any) -> None:
            for ddl in REPOSITORY_DDL:
                cursor.execute(ddl)
            self._missing = self._ensure_columns(cursor)

        return self._go(create, idempotent=True, what="create definition tables")

    @property
    def pool(self) -> MySQLPool:
        """The connection pool of the repository DSN (the signing keys use it too)."""
        return self._pool

    def _columns(self, cursor: Any) -> List[str]:
        cursor.execute("SHOW COLUMNS FROM `queue`")
        return [text(row[0]) for row in cursor.fetchall()]

    def _ensure_columns(self, cursor: Any) -> Dict[str, str]:
        """
        Give a ``queue`` table the original created our columns; return
        those still missing (name -> ALTER to run) when the server may not
        alter it -- then definitions are served without them (logged).
        """
        missing = {}
        for name, ddl in QUEUE_COLUMNS_OF_OURS:
            if name in self._columns(cursor):
                continue
            alter = f"ALTER TABLE `queue` ADD COLUMN {ddl}"
            try:
                cursor.execute(alter)
            except Exception as e:
                if name in self._columns(cursor):
                    continue  # another node added it
                if self._pool.driver.error_code(e) not in _DENIED_CODES:
                    raise
                self._log.warn(
                    "Cannot add the column `{column}` to the table `queue` ({error}): queue settings "
                    "that need it are refused. Grant ALTER to the server's user, or run: {ddl}",
                    column=name, error=self._pool.driver.describe(e), ddl=alter,
                )
                missing[name] = alter
        return missing

    def _select(self) -> str:
        """The definition columns to select (our missing ones read as NULL)."""
        columns = _QUEUE_COLUMNS
        for name in self._missing:
            columns = columns.replace(f"q.{name}", "0" if name == "paused" else "NULL")
        return columns

    def _go(self, work: Any, idempotent: bool, what: str) -> Deferred:
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL repository is stopped ({what})"))
        return self._pool.run(work, idempotent=idempotent, what=what)

    def stop(self) -> Deferred:
        """Let go of the connection pool; later calls fail with StoreUnavailable."""
        if self._stopped:
            return succeed(None)
        self._stopped = True
        return self._pool.release()

    # -- queues -------------------------------------------------------------------------

    def list_queues(self) -> Deferred:
        def work(cursor: Any) -> List[QueueDefinition]:
            cursor.execute(f"SELECT {self._select()} {_QUEUE_FROM} ORDER BY q.name")
            return [_definition(row) for row in cursor.fetchall()]

        return self._go(work, idempotent=True, what="list queues")

    def find_queue(self, name: str) -> Deferred:
        def work(cursor: Any) -> Optional[QueueDefinition]:
            cursor.execute(f"SELECT {self._select()} {_QUEUE_FROM} WHERE q.name = %s", (name,))
            row = cursor.fetchone()
            return _definition(row) if row else None

        return self._go(work, idempotent=True, what="find a queue")

    def put_queue(self, definition: QueueDefinition) -> Deferred:
        definition = _normal(definition)
        for name, needed in (("job_defaults", not definition.defaults.is_empty), ("paused", definition.paused)):
            if needed and name in self._missing:
                return fail(StoreUnavailable(
                    f"the table `queue` lacks the column {name} (the server may not alter it); "
                    f"an administrator must run: {self._missing[name]}"
                ))

        def work(cursor: Any) -> bool:
            cursor.execute(
                f"SELECT {self._select()} {_QUEUE_FROM} WHERE q.name = %s FOR UPDATE",
                (definition.name,),
            )
            row = cursor.fetchone()
            if row is not None and row[3] is not None and _same(_definition(row), definition):
                return False
            ours = {"job_defaults": encode_job_defaults(definition), "paused": int(definition.paused)}
            ours = {name: value for name, value in ours.items() if name not in self._missing}
            names = ", ".join(["name", "polling_interval", "max_workers", *ours])
            updates = ", ".join(f"{name} = VALUES({name})" for name in ["polling_interval", "max_workers", *ours])
            cursor.execute(
                f"INSERT INTO `queue` ({names}) VALUES ({', '.join(['%s'] * (3 + len(ours)))}) "
                f"ON DUPLICATE KEY UPDATE {updates}",
                (definition.name, definition.polling_interval, definition.max_workers, *ours.values()),
            )
            # Like the original, every queue gets a throttle row (0, 0 when
            # it is not throttled).
            cursor.execute(
                "INSERT INTO `queue_throttle` (name, max_dispatches_per_second, max_burst_size) "
                "VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE "
                "max_dispatches_per_second = VALUES(max_dispatches_per_second), "
                "max_burst_size = VALUES(max_burst_size)",
                (definition.name, float(definition.max_dispatches_per_second), definition.max_burst_size),
            )
            changed = row is None or not _same(_definition(row), definition)
            if changed:
                _bump(cursor, QUEUE_REVISION)
            return changed

        return self._go(work, idempotent=True, what="put a queue")

    def delete_queue(self, name: str) -> Deferred:
        def work(cursor: Any) -> Optional[QueueDefinition]:
            cursor.execute(f"SELECT {self._select()} {_QUEUE_FROM} WHERE q.name = %s FOR UPDATE", (name,))
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute("DELETE FROM `queue` WHERE name = %s", (name,))
            cursor.execute("DELETE FROM `queue_throttle` WHERE name = %s", (name,))
            _bump(cursor, QUEUE_REVISION)
            return _definition(row)

        return self._go(work, idempotent=False, what="delete a queue")

    # -- routings -------------------------------------------------------------------------

    def list_routings(self) -> Deferred:
        def work(cursor: Any) -> List[Routing]:
            cursor.execute("SELECT job_category, queue_name FROM `routing` ORDER BY job_category")
            return [Routing(job_category=text(r[0]), queue_name=text(r[1])) for r in cursor.fetchall()]

        return self._go(work, idempotent=True, what="list routings")

    def find_routing(self, category: str) -> Deferred:
        def work(cursor: Any) -> Optional[Routing]:
            cursor.execute(
                "SELECT job_category, queue_name FROM `routing` WHERE job_category = %s", (category,)
            )
            row = cursor.fetchone()
            return Routing(job_category=text(row[0]), queue_name=text(row[1])) if row else None

        return self._go(work, idempotent=True, what="find a routing")

    def put_routing(self, routing: Routing) -> Deferred:
        def work(cursor: Any) -> bool:
            cursor.execute(
                "SELECT queue_name FROM `routing` WHERE job_category = %s FOR UPDATE",
                (routing.job_category,),
            )
            row = cursor.fetchone()
            if row is not None and text(row[0]) == routing.queue_name:
                return False
            cursor.execute(
                "INSERT INTO `routing` (job_category, queue_name) VALUES (%s, %s) "
                "ON DUPLICATE KEY UPDATE queue_name = VALUES(queue_name)",
                (routing.job_category, routing.queue_name),
            )
            _bump(cursor, ROUTING_REVISION)
            return True

        return self._go(work, idempotent=True, what="put a routing")

    def delete_routing(self, category: str) -> Deferred:
        def work(cursor: Any) -> Optional[Routing]:
            cursor.execute(
                "SELECT job_category, queue_name FROM `routing` WHERE job_category = %s FOR UPDATE",
                (category,),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute("DELETE FROM `routing` WHERE job_category = %s", (category,))
            _bump(cursor, ROUTING_REVISION)
            return Routing(job_category=text(row[0]), queue_name=text(row[1]))

        return self._go(work, idempotent=False, what="delete a routing")

    def revision(self) -> Deferred:
        def work(cursor: Any) -> str:
            cursor.execute(
                "SELECT name, revision FROM `config_revision` WHERE name IN (%s, %s)",
                (QUEUE_REVISION, ROUTING_REVISION),
            )
            found = {text(name): int(revision) for name, revision in cursor.fetchall()}
            return f"{found.get(QUEUE_REVISION, 0)}.{found.get(ROUTING_REVISION, 0)}"

        return self._go(work, idempotent=True, what="read the configuration revision")
