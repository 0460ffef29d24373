"""
Push batching: pushes that arrive together are stored with one
L{IJobStore.push} call (one multi-row INSERT and one commit per batch).  Each
caller's Deferred still fires only after the commit that holds its jobs.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from fireworq.model import Job, PushEntry
from fireworq.store.interface import IJobStore, JobTooLarge

_Waiting = Tuple[Sequence[PushEntry], Deferred]


class PushBatcher:
    """
    Collects pushes during one turn of the reactor and writes them together.

    Up to ``concurrency`` writes run at once; pushes arriving while all are
    busy wait and go into the next write, so batches grow with load and a
    lone push waits for nothing but its own commit.
    """

    def __init__(
        self,
        store: IJobStore,
        clock: IReactorTime,
        concurrency: int = 1,
        max_batch: int = 2000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._concurrency = max(1, concurrency)
        self._max_batch = max_batch
        self._waiting: Deque[_Waiting] = deque()
        self._waiting_entries = 0
        self._writes = 0
        self._timer: Optional[IDelayedCall] = None
        #: Sizes of the last writes, for tests and the benchmark.
        self.batches_written = 0
        self.jobs_written = 0

    def push(self, entries: Sequence[PushEntry]) -> "Deferred[List[Job]]":
        """Store ``entries`` (atomically); fire with the stored jobs, in order."""
        d: Deferred = Deferred()
        self._waiting.append((entries, d))
        self._waiting_entries += len(entries)
        if self._writes < self._concurrency:
            if self._waiting_entries >= self._max_batch:
                self._write()
            elif self._timer is None:
                self._timer = self._clock.callLater(0, self._fire)
        return d

    def _fire(self) -> None:
        self._timer = None
        if self._waiting and self._writes < self._concurrency:
            self._write()

    def _write(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        batch: List[_Waiting] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0][0]) <= self._max_batch):
            entries, d = self._waiting.popleft()
            batch.append((entries, d))
            size += len(entries)
        self._waiting_entries -= size
        flat: List[PushEntry] = [entry for entries, _ in batch for entry in entries]
        self._writes += 1
        self.batches_written += 1
        self.jobs_written += size
        d = self._store.push(flat)
        d.addCallbacks(self._written, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _written(self, jobs: List[Job], batch: List[_Waiting]) -> None:
        self._writes -= 1
        offset = 0
        for entries, d in batch:
            d.callback(jobs[offset : offset + len(entries)])
            offset += len(entries)
        self._next()

    def _failed(self, failure: Failure, batch: List[_Waiting]) -> None:
        self._writes -= 1
        if len(batch) > 1 and failure.check(JobTooLarge):
            # One push's job does not fit: that push alone must fail, not
            # every push written with it.  Write each again on its own.
            for entries, d in batch:
                self._store.push(entries).chainDeferred(d)
        else:
            for _, d in batch:
                d.errback(failure)
        self._next()

    def _next(self) -> None:
        if self._waiting and self._writes < self._concurrency:
            self._write()
