"""
L{MemoryStoreState}: the attributes of L{MemoryJobStore
<fireworq.store.memory.jobs.MemoryJobStore>} that its operation mixins
(push, grab, complete, control, inspection) share, declared once.
"""

from __future__ import annotations

from typing import Any, Dict

from fireworq.store.memory.queue import QueueJobs


class MemoryStoreState:
    """
    What every mixin of the in-memory store may use; L{MemoryJobStore
    <fireworq.store.memory.jobs.MemoryJobStore>} sets or defines each.
    """

    #: One L{QueueJobs} per storage key.
    _queues: Dict[str, QueueJobs]
    #: Milliseconds since the epoch.
    _clock: Any
    #: How long an idempotency key is remembered (ms).
    idempotency_window_ms: int
    #: Keep finished jobs for history (set by the history service).
    keep_finished: Any
    #: The event-hook registry, or None.
    event_hooks: Any
    storage_key: Any
    _queue: Any
    _existing: Any
    _add_hook_jobs: Any
    push: Any
