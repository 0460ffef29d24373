"""
Completion batching: the outcomes of finished deliveries of one queue are
written to the store together, every few milliseconds, instead of one
transaction per job.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from fireworq.backoff import Backoff
from fireworq.model import Completion
from fireworq.store.interface import IJobStore


class CompletionBatcher:
    """
    Collects L{Completion}s of one queue and applies them with
    L{IJobStore.complete}, at most one write in flight at a time.

    A write that fails (database down) is retried until it succeeds, after
    growing delays (``retry``, a L{Backoff}: by default 0.1 s doubling up to
    5 s): the jobs stay ``grabbed`` in the store meanwhile, so if this
    process dies they are recovered and delivered again (at-least-once).
    L{drain} (at shutdown, before a lease is handed over) tries at once.
    """

    _log = Logger()

    def __init__(
        self,
        store: IJobStore,
        queue_name: str,
        clock: IReactorTime,
        delay: float = 0.002,
        max_batch: int = 500,
        retry: Optional[Backoff] = None,
    ) -> None:
        self._store = store
        self.queue_name = queue_name
        self._clock = clock
        self._delay = delay
        self._max_batch = max_batch
        self._retry = retry or Backoff(clock, initial=0.1, maximum=5.0)
        self._pending: List[Tuple[Completion, int]] = []
        self._writing = False
        self._writing_batch: List[Tuple[Completion, int]] = []
        self._timer: Optional[IDelayedCall] = None
        self._drained: List[Deferred] = []

    @property
    def pending(self) -> int:
        """Completions not yet written."""
        return len(self._pending)

    def job_ids(self) -> Set[int]:
        """Ids of the jobs whose completion is not yet written."""
        ids = {completion.job.id for completion, _ in self._pending}
        ids.update(completion.job.id for completion, _ in self._writing_batch)
        return ids

    def add(self, completion: Completion, grabber_id: int) -> None:
        """Queue ``completion`` of a job grabbed under ``grabber_id``."""
        self._pending.append((completion, grabber_id))
        if self._writing or self._retry.pending:
            return  # written after the write in progress, or by the retry
        if len(self._pending) >= self._max_batch:
            self._cancel_timer()
            self._write()
        elif self._timer is None:
            self._timer = self._clock.callLater(self._delay, self._fire)

    def drain(self) -> "Deferred[None]":
        """Fire once every completion added so far has been written."""
        if not self._pending and not self._writing:
            return succeed(None)
        d: Deferred = Deferred()
        self._drained.append(d)
        if not self._writing:
            self._retry.cancel()
            self._cancel_timer()
            self._write()
        return d

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if not self._writing:
            self._write()

    def _write(self) -> None:
        if not self._pending:
            self._notify_drained()
            return
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        groups: Dict[int, List[Completion]] = {}
        for completion, grabber_id in batch:
            groups.setdefault(grabber_id, []).append(completion)
        self._writing = True
        self._writing_batch = batch
        d = succeed(None)
        for grabber_id, completions in groups.items():
            d.addCallback(
                lambda _, g=grabber_id, c=completions: self._store.complete(self.queue_name, c, g)
            )
        d.addCallbacks(self._written, self._failed, errbackArgs=(batch,))

    def _written(self, _: object) -> None:
        self._writing = False
        self._writing_batch = []
        self._retry.reset()
        if self._pending:
            if len(self._pending) >= self._max_batch or self._drained:
                self._write()
            elif self._timer is None:
                self._timer = self._clock.callLater(self._delay, self._fire)
        else:
            self._notify_drained()

    def _failed(self, failure, batch: List[Tuple[Completion, int]]) -> None:
        self._writing = False
        self._writing_batch = []
        self._pending[:0] = batch
        self._cancel_timer()
        delay = self._retry.schedule(self._fire)
        self._log.warn(
            "Cannot write {count} completion(s) of queue {queue}: {error}; retrying in {delay}s",
            count=len(batch),
            queue=self.queue_name,
            error=failure.getErrorMessage(),
            delay=round(delay, 2),
        )

    def _notify_drained(self) -> None:
        waiting, self._drained = self._drained, []
        for d in waiting:
            d.callback(None)
