"""
Schedules of the MySQL driver: the table ``fireworq_schedule`` on the queue
DSN, beside the job tables and the lease rows, so that a guarded push
stores a time's job and marks the time served in ONE transaction, under
the scheduler lease's epoch:

    UPDATE fireworq_schedule SET last_run_at = t
     WHERE name = s AND last_run_at < t
       AND EXISTS (lease row of the scheduler with this epoch, unexpired)
    INSERT INTO fireworq_jq(<queue>) ...            -- only if 1 row changed
    UPDATE fireworq_schedule SET last_queue, last_job_id
    COMMIT

The first UPDATE locks the schedule's row, so two nodes serving the same
time serialize, and the second finds ``last_run_at`` already at ``t``.  A
process killed before the COMMIT leaves nothing; one killed after it left
both.  The original Fireworq never reads this table.
"""

from __future__ import annotations

from typing import Any, List, Optional

import attr
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from fireworq.schedules.model import IPushGuard, ISchedules, ScheduleDefinition, ScheduleRecord
from fireworq.schedules.sqlite import record_from_row
from fireworq.store.interface import StoreUnavailable
from fireworq.store.mysql.schema import NOW_MS

#: The lease row of the node that fires schedules (a queue name cannot
#: contain "/", so it never names a queue's lease).
SCHEDULER_LEASE = "/schedules"

DDL = """
CREATE TABLE IF NOT EXISTS `fireworq_schedule` (
  `name` VARBINARY(255) NOT NULL,
  `definition` MEDIUMBLOB NOT NULL,
  `since` BIGINT NOT NULL,
  `last_run_at` BIGINT NOT NULL DEFAULT 0,
  `last_queue` VARBINARY(255) NULL,
  `last_job_id` BIGINT UNSIGNED NULL,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary"""

_COLUMNS = "name, definition, since, last_run_at, last_queue, last_job_id"


def _claim(cursor: Any, name: str, at_ms: int, epoch: Optional[int]) -> bool:
    if epoch is None:
        cursor.execute(
            "UPDATE fireworq_schedule SET last_run_at = %s WHERE name = %s AND last_run_at < %s",
            (at_ms, name.encode("utf-8"), at_ms),
        )
    else:
        cursor.execute(
            "UPDATE fireworq_schedule SET last_run_at = %s WHERE name = %s AND last_run_at < %s "
            "AND EXISTS (SELECT 1 FROM fireworq_lease WHERE name = %s AND epoch = %s "
            f"AND expires_at > {NOW_MS})",
            (at_ms, name.encode("utf-8"), at_ms, SCHEDULER_LEASE, epoch),
        )
    return cursor.rowcount == 1


@implementer(IPushGuard)
@attr.s(auto_attribs=True)
class MySQLGuard:
    """The statements a guarded push runs for one scheduled time."""

    name: str
    at_ms: int
    epoch: Optional[int]

    def claim(self, cursor: Any) -> bool:
        return _claim(cursor, self.name, self.at_ms, self.epoch)

    def record(self, cursor: Any, queue_name: str, job_id: int) -> None:
        cursor.execute(
            "UPDATE fireworq_schedule SET last_queue = %s, last_job_id = %s WHERE name = %s",
            (queue_name.encode("utf-8"), job_id, self.name.encode("utf-8")),
        )


@implementer(ISchedules)
class MySQLSchedules:
    """
    The schedules of the MySQL driver.

    @param pool: a L{fireworq.store.mysql.pool.MySQLPool} on the queue DSN
        (retained here, released by L{stop}).
    """

    kind = "mysql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool.retain()
        self._stopped = False

    def _go(self, work: Any, idempotent: bool, what: str) -> Deferred:
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL schedule store is stopped ({what})"))
        return self._pool.run(work, idempotent=idempotent, what=what, causal=True)

    def start(self) -> Deferred:
        return self._go(lambda cursor: cursor.execute(DDL) and None, idempotent=True, what="create schedule table")

    def stop(self) -> Deferred:
        if self._stopped:
            return succeed(None)
        self._stopped = True
        return self._pool.release()

    def list(self) -> Deferred:
        def work(cursor: Any) -> List[ScheduleRecord]:
            cursor.execute(f"SELECT {_COLUMNS} FROM fireworq_schedule ORDER BY name")
            return [record_from_row(row) for row in cursor.fetchall()]

        return self._go(work, idempotent=True, what="list schedules")

    @staticmethod
    def _find(cursor: Any, name: str) -> Optional[ScheduleRecord]:
        cursor.execute(f"SELECT {_COLUMNS} FROM fireworq_schedule WHERE name = %s", (name.encode("utf-8"),))
        row = cursor.fetchone()
        return None if row is None else record_from_row(row)

    def find(self, name: str) -> Deferred:
        return self._go(lambda cursor: self._find(cursor, name), idempotent=True, what="find schedule")

    def put(self, definition: ScheduleDefinition, now_ms: int) -> Deferred:
        def work(cursor: Any) -> Optional[ScheduleRecord]:
            cursor.execute(
                "INSERT INTO fireworq_schedule (name, definition, since) VALUES (%s, %s, %s) "
                "ON DUPLICATE KEY UPDATE definition = VALUES(definition), since = VALUES(since)",
                (definition.name.encode("utf-8"), definition.encode().encode("utf-8"), now_ms),
            )
            return self._find(cursor, definition.name)

        return self._go(work, idempotent=True, what="put schedule")

    def delete(self, name: str) -> Deferred:
        def work(cursor: Any) -> Optional[ScheduleRecord]:
            record = self._find(cursor, name)
            cursor.execute("DELETE FROM fireworq_schedule WHERE name = %s", (name.encode("utf-8"),))
            return record

        return self._go(work, idempotent=True, what="delete schedule")

    def guard(self, name: str, at_ms: int, epoch: Optional[int]) -> MySQLGuard:
        return MySQLGuard(name, at_ms, epoch)

    def skip(self, name: str, at_ms: int, epoch: Optional[int]) -> Deferred:
        return self._go(lambda cursor: _claim(cursor, name, at_ms, epoch), idempotent=True, what="skip schedule time")

    def set_last_job(self, name: str, queue_name: str, job_id: int) -> Deferred:
        return self._go(
            lambda cursor: MySQLGuard(name, 0, None).record(cursor, queue_name, job_id),
            idempotent=True, what="record schedule job",
        )
