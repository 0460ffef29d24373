"""
Upkeep of a queue's stored data by the node that holds the queue's lease:
work that must run on one node only, now and then, beside the dispatch.

L{LeaseHolderChore} is the shape of such work: a periodic C{clean} of one
queue's data, started and stopped with the queue's service.  L{KeyCleaner}
forgets the queue's expired idempotency keys (B7): every
L{INTERVAL} seconds while the lease is held, so a key is gone at most
about that long after its window ended (a push of an expired key finds it
free even before: the stores check the expiry when claiming).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.lease.interface import IQueueLease
from fireworq.timers import Periodic

#: Seconds between two cleanups of a queue's expired idempotency keys.
INTERVAL = 10.0


class LeaseHolderChore(Service):
    """
    Runs L{clean} every ``interval`` seconds (the first time one interval
    after the start) while the service runs; C{clean} does its work only
    while this node holds the queue's ``lease`` (one node cleans each
    queue) -- a subclass's job, as is counting L{deleted}.

    @param service_name: the service's name (one per queue).
    @param loop_name: the periodic call's name, in its error log lines.
    """

    def __init__(
        self,
        store: Any,
        queue_name: str,
        lease: IQueueLease,
        clock: IReactorTime,
        interval: float,
        service_name: str,
        loop_name: str,
    ) -> None:
        self.store = store
        self.queue_name = queue_name
        self.lease = lease
        self.setName(service_name)
        self._loop = Periodic(interval, self.clean, clock=clock, now=False, name=loop_name)
        #: Rows deleted since the start (for tests and logs).
        self.deleted = 0

    def clean(self) -> "Deferred[Any]":
        """One cleanup, if this node holds the lease (errors are logged by the loop)."""
        raise NotImplementedError

    def startService(self) -> None:
        super().startService()
        self._loop.startService()

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return self._loop.stopService() or succeed(None)


class KeyCleaner(LeaseHolderChore):
    """
    Runs C{store.delete_expired_keys(queue_name)} every ``interval``
    seconds while this node holds the queue's lease (a node without the
    lease does nothing: one node cleans each queue).
    """

    _log = Logger()

    def __init__(
        self, store: Any, queue_name: str, lease: IQueueLease, clock: IReactorTime, interval: float = INTERVAL
    ) -> None:
        super().__init__(
            store, queue_name, lease, clock, interval,
            service_name=f"key cleaner {queue_name}", loop_name=f"expired keys of {queue_name}",
        )

    def clean(self) -> "Deferred[Optional[int]]":
        """One cleanup, if this node holds the lease (errors are logged by the loop)."""
        if not self.lease.held():
            return succeed(None)
        delete = getattr(self.store, "delete_expired_keys", None)
        if delete is None:
            return succeed(None)

        def done(count: int) -> int:
            self.deleted += count
            if count:
                self._log.debug("Forgot {count} expired idempotency keys of queue {queue}", count=count, queue=self.queue_name)
            return count

        return delete(self.queue_name).addCallback(done)
