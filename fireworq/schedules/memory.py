"""Schedules of the in-memory driver (one process, nothing kept across restarts)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import attr
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from fireworq.schedules.model import IPushGuard, ISchedules, ScheduleDefinition, ScheduleRecord


@implementer(IPushGuard)
@attr.s(auto_attribs=True)
class MemoryGuard:
    """Claims a time of a schedule in L{MemorySchedules} (in the reactor thread, so atomic)."""

    store: "MemorySchedules"
    name: str
    at_ms: int

    def claim(self, cursor: Any) -> bool:
        record = self.store.records.get(self.name)
        if record is None or (record.last_run_at or 0) >= self.at_ms:
            return False
        self.store.records[self.name] = attr.evolve(record, last_run_at=self.at_ms)
        return True

    def record(self, cursor: Any, queue_name: str, job_id: int) -> None:
        record = self.store.records.get(self.name)
        if record is not None:
            self.store.records[self.name] = attr.evolve(record, last_job=(queue_name, job_id))


@implementer(ISchedules)
class MemorySchedules:
    """The schedules of the in-memory driver."""

    kind = "in-memory"

    def __init__(self) -> None:
        self.records: Dict[str, ScheduleRecord] = {}

    def start(self) -> Deferred:
        return succeed(None)

    def stop(self) -> Deferred:
        return succeed(None)

    def list(self) -> Deferred:
        return succeed([self.records[name] for name in sorted(self.records)])

    def find(self, name: str) -> Deferred:
        return succeed(self.records.get(name))

    def put(self, definition: ScheduleDefinition, now_ms: int) -> Deferred:
        old = self.records.get(definition.name)
        if old is None:
            record = ScheduleRecord(definition, since=now_ms)
        else:
            record = attr.evolve(old, definition=definition, since=now_ms)
        self.records[definition.name] = record
        return succeed(record)

    def delete(self, name: str) -> Deferred:
        return succeed(self.records.pop(name, None))

    def guard(self, name: str, at_ms: int, epoch: Optional[int]) -> MemoryGuard:
        return MemoryGuard(self, name, at_ms)

    def skip(self, name: str, at_ms: int, epoch: Optional[int]) -> Deferred:
        return succeed(MemoryGuard(self, name, at_ms).claim(None))

    def set_last_job(self, name: str, queue_name: str, job_id: int) -> Deferred:
        MemoryGuard(self, name, 0).record(None, queue_name, job_id)
        return succeed(None)
