"""
L{MemoryJobStore}: the jobs and failure logs of every queue in memory.
This module holds the store's state (one L{QueueJobs} per queue) and life
cycle; its operations are the mixins of L{fireworq.store.memory}.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from fireworq.history.memory import MemoryHistory
from fireworq.store.common import Clock, system_clock
from fireworq.store.idempotency import DEFAULT_WINDOW_MS
from fireworq.store.interface import IJobStore
from fireworq.store.memory.complete import MemoryCompletion
from fireworq.store.memory.control import MemoryQueueControl
from fireworq.store.memory.grab import MemoryGrab
from fireworq.store.memory.inspection import MemoryInspection
from fireworq.store.memory.push import MemoryPush
from fireworq.store.memory.queue import QueueJobs


@implementer(IJobStore)
class MemoryJobStore(MemoryPush, MemoryGrab, MemoryCompletion, MemoryQueueControl, MemoryInspection, MemoryHistory):
    """
    L{IJobStore} in memory.

    @param clock: returns the time in milliseconds since the epoch; it stamps
        ``created_at``, ``next_try`` and ``failed_at``.
    """

    name = "in-memory"

    def __init__(self, clock: Optional[Clock] = None, idempotency_window_ms: int = DEFAULT_WINDOW_MS) -> None:
        self._clock: Clock = clock or system_clock
        self._queues: Dict[str, QueueJobs] = {}
        #: How long an idempotency key is remembered (ms).
        self.idempotency_window_ms = idempotency_window_ms
        #: The hook matcher (B12, L{fireworq.hooks.matcher.HookMatcher}) while
        #: a hook is defined, else None: events' hook jobs are stored with
        #: the change they report.
        self.event_hooks: Any = None

    def storage_key(self, queue_name: str) -> str:
        """The exact name: every queue has storage of its own."""
        return queue_name

    # Lifecycle

    def start(self) -> Deferred:
        return succeed(None)

    def stop(self) -> Deferred:
        return succeed(None)

    def ping(self) -> Deferred:
        return succeed(None)

    def prepare_queue(self, queue_name: str) -> Deferred:
        self._queue(queue_name)
        return succeed(None)

    def _queue(self, queue_name: str) -> QueueJobs:
        key = self.storage_key(queue_name)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = QueueJobs()
        return queue

    def _existing(self, queue_name: str) -> QueueJobs:
        # Reads never create storage; an unknown queue looks empty.
        return self._queues.get(self.storage_key(queue_name)) or QueueJobs()
