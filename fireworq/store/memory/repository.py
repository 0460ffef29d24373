"""
L{MemoryRepository}: queue definitions and routings in memory.
"""

from __future__ import annotations

from typing import Dict

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from fireworq.model import QueueDefinition, Routing
from fireworq.store.common import normalize_definition
from fireworq.store.interface import IRepository


@implementer(IRepository)
class MemoryRepository:
    """L{IRepository} in memory; the revision is a change counter."""

    def __init__(self) -> None:
        self._queues: Dict[str, QueueDefinition] = {}
        self._routings: Dict[str, Routing] = {}
        self._revision = 0

    def _changed(self) -> None:
        self._revision += 1

    def list_queues(self) -> Deferred:
        return succeed([self._queues[name] for name in sorted(self._queues)])

    def find_queue(self, name: str) -> Deferred:
        return succeed(self._queues.get(name))

    def put_queue(self, definition: QueueDefinition) -> Deferred:
        definition = normalize_definition(definition)
        if self._queues.get(definition.name) == definition:
            return succeed(False)
        self._queues[definition.name] = definition
        self._changed()
        return succeed(True)

    def delete_queue(self, name: str) -> Deferred:
        definition = self._queues.pop(name, None)
        if definition is not None:
            self._changed()
        return succeed(definition)

    def list_routings(self) -> Deferred:
        return succeed([self._routings[c] for c in sorted(self._routings)])

    def find_routing(self, category: str) -> Deferred:
        return succeed(self._routings.get(category))

    def put_routing(self, routing: Routing) -> Deferred:
        if self._routings.get(routing.job_category) == routing:
            return succeed(False)
        self._routings[routing.job_category] = routing
        self._changed()
        return succeed(True)

    def delete_routing(self, category: str) -> Deferred:
        routing = self._routings.pop(category, None)
        if routing is not None:
            self._changed()
        return succeed(routing)

    def revision(self) -> Deferred:
        return succeed(str(self._revision))
