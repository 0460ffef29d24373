"""
Deletion of kept jobs past their retention (protocol B8) by the node that
holds the queue's lease: every L{INTERVAL} seconds, in batches of
L{BATCH} jobs, the next batch started only after the reactor had a turn,
so a large backlog of expired jobs never stalls the queue's dispatch.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from fireworq.dispatch.upkeep import LeaseHolderChore
from fireworq.lease.interface import IQueueLease

#: Seconds between two clean-ups: a job is gone at most about this long
#: (plus the batches before it) after its retention ended -- within 10 s.
INTERVAL = 5.0

#: Kept jobs one statement deletes at most.
BATCH = 500

#: Batches one clean-up runs at most (the next clean-up goes on).
MAX_BATCHES = 100


class HistoryCleaner(LeaseHolderChore):
    """
    Runs C{store.delete_expired_history(queue_name, BATCH)} every
    ``interval`` seconds while this node holds the queue's lease, repeating
    it (one batch per reactor turn) while whole batches were deleted.

    @param on_deleted: called with (queue name, count) after each batch
        that deleted something (the metrics).
    """

    _log = Logger()

    def __init__(
        self,
        store: Any,
        queue_name: str,
        lease: IQueueLease,
        clock: IReactorTime,
        interval: float = INTERVAL,
        batch: int = BATCH,
        on_deleted: Optional[Callable[[str, int], None]] = None,
    ) -> None:
        super().__init__(
            store, queue_name, lease, clock, interval,
            service_name=f"history cleaner {queue_name}", loop_name=f"expired history of {queue_name}",
        )
        self.clock = clock
        self.batch = batch
        self.on_deleted = on_deleted

    def clean(self) -> "Deferred[int]":
        """One clean-up, if this node holds the lease; fires with how many were deleted."""
        delete = getattr(self.store, "delete_expired_history", None)
        if delete is None or not self.lease.held():
            return succeed(0)
        total = [0]

        def batch(runs: int) -> Deferred:
            d = delete(self.queue_name, self.batch)
            d.addCallback(deleted, runs)
            return d

        def deleted(count: int, runs: int) -> Any:
            total[0] += count
            self.deleted += count
            if count and self.on_deleted is not None:
                self.on_deleted(self.queue_name, count)
            if count < self.batch or runs + 1 >= MAX_BATCHES or not self.running or not self.lease.held():
                if total[0]:
                    self._log.debug(
                        "Deleted {count} kept jobs of queue {queue} past their retention",
                        count=total[0], queue=self.queue_name,
                    )
                return total[0]
            # Let the dispatch have the reactor before the next batch.
            return deferLater(self.clock, 0, batch, runs + 1)

        return batch(0)
