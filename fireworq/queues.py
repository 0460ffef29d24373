"""
One queue of this node as a service: L{QueueService} is the queue
manager's child for each defined queue.

Its children start in dependency order and stop in reverse order, one
after the other, each stop waited for::

    client of Q       the deliverer's worker connections (closed last)
    lease of Q        the queue's lease (sole, or the MySQL lease keeper)
    completions of Q  the completion batcher (stop: write what is pending)
    Q                 the dispatcher: grabs and delivers (stop: no more
                      grabs, deliveries drained)
    key cleaner Q     forgets expired idempotency keys while the lease is held
    history cleaner Q deletes kept jobs past their retention while held

so a stop drains the deliveries, then writes their completions, then gives
the lease up, then closes the worker connections -- the order that keeps
every outcome written under a lease this node still holds.

The hot path (push, kick, grab, deliver) does not go through this module:
the queue manager keeps the dispatcher itself for it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger

from fireworq.dispatch.completion import CompletionBatcher
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease.interface import IQueueLease
from fireworq.ordering import OrderedServices


class LeaseService(Service):
    """A queue's lease as a service: start acquiring, stop giving it up."""

    def __init__(self, lease: IQueueLease, queue_name: str) -> None:
        self.setName(f"lease of {queue_name}")
        self.lease = lease

    def startService(self) -> None:
        super().startService()
        self.lease.start()

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return maybeDeferred(self.lease.stop)


class CompletionsService(Service):
    """A completion batcher as a service: its stop writes what is pending."""

    def __init__(self, completions: CompletionBatcher) -> None:
        self.setName(f"completions of {completions.queue_name}")
        self.completions = completions

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        return self.completions.drain()


class ClientService(Service):
    """The deliverer's connections: closed when the service stops."""

    def __init__(self, close: Callable[[], Optional[Deferred]], queue_name: str) -> None:
        self.setName(f"client of {queue_name}")
        self._close = close

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        return maybeDeferred(self._close)


class QueueService(OrderedServices):
    """
    One defined queue: its lease, completion batcher, dispatcher and
    per-queue upkeep as children (see the module docstring for the order).

    Built around a L{QueueDispatcher}, which hands the start and stop of
    its parts over to this service (L{QueueDispatcher.hand_over_parts}).
    """

    _log = Logger()

    def __init__(self, dispatcher: QueueDispatcher) -> None:
        super().__init__()
        self.setName(dispatcher.name)
        self.dispatcher = dispatcher
        dispatcher.hand_over_parts()
        name = dispatcher.name
        ClientService(dispatcher.close_deliverer, name).setServiceParent(self)
        LeaseService(dispatcher.lease, name).setServiceParent(self)
        CompletionsService(dispatcher.completions).setServiceParent(self)
        # The dispatcher's service name is the queue's name (it is its
        # ``name`` attribute); the other children's names hold a space and
        # more, so they never collide with it.
        dispatcher.setServiceParent(self)
        dispatcher.key_cleaner.setServiceParent(self)
        dispatcher.history_cleaner.setServiceParent(self)

    @property
    def lease(self) -> IQueueLease:
        """The queue's lease."""
        return self.dispatcher.lease

    def stopService(self) -> "Deferred[None]":
        """Stop the children last first, each after the previous one."""
        d = super().stopService()
        d.addErrback(lambda f: self._log.failure("Error while stopping queue {queue}", f, queue=self.name))
        return d if d is not None else succeed(None)
