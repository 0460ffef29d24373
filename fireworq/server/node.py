"""
This process as a node, and the parts of one queue it dispatches: the
lease (sole, or the MySQL lease keeper) and the dispatcher with its own
worker connection pool.  L{QueueParts.make_dispatcher} is the factory the
queue manager calls for each defined queue.
"""

from __future__ import annotations

import os
import random
import socket
import time
from typing import Any, Callable, Optional

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, maybeDeferred

from fireworq.config import Config
from fireworq.dispatch.delivery import HTTPDeliverer, make_http_client, make_pool
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.dispatch.tls import https_policy
from fireworq.events import IQueueEvents
from fireworq.lease import IQueueLease, SoleLease
from fireworq.model import QueueDefinition
from fireworq.server.stores import Stores
from fireworq.store.interface import NodeInfo


def make_node(config: Config) -> NodeInfo:
    """This process as a node: a fresh id per start, the host name."""
    host = socket.gethostname()
    unique = "%06x" % random.SystemRandom().getrandbits(24)
    return NodeInfo(id=f"{host}:{config.bind_port}:{os.getpid()}:{unique}", host=host)


class StartStopService(Service):
    """
    A service around an object with ``start()`` and ``stop()`` methods
    (the lease balancer), so that it takes its place in the tree.
    """

    def __init__(self, name: str, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
        self.setName(name)
        self._start = start
        self._stop = stop

    def startService(self) -> None:
        super().startService()
        self._start()

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        return maybeDeferred(self._stop)


def as_service(name: str, thing: Any) -> IService:
    """``thing`` itself if it is a service, else a L{StartStopService} around it."""
    if IService.providedBy(thing):
        thing.setName(name)
        return thing
    return StartStopService(name, thing.start, thing.stop)


class QueueParts:
    """
    Makes the lease and the dispatcher of each queue of this node.

    @param balancer: the lease balancer (MySQL), or None (one node).
    """

    def __init__(
        self,
        config: Config,
        stores: Stores,
        node: NodeInfo,
        events: IQueueEvents,
        reactor: Any,
        balancer: Optional[Any] = None,
        signing: Optional[Any] = None,
    ) -> None:
        self.config = config
        #: The node's signing keys (L{fireworq.signing.service.SigningService}), or None.
        self.signing = signing
        #: The node's hook registry (B12), given to the ``_hooks`` queue's deliverer; None: no hooks.
        self.hooks: Optional[Any] = None
        self.stores = stores
        self.node = node
        self.events = events
        self.reactor = reactor
        self.balancer = balancer
        self.grabber_id = int(time.time() * 1000)

    def make_lease(self, queue_name: str, drain: Any = None) -> IQueueLease:
        """
        This node's lease on ``queue_name``; ``drain`` fires when the queue's
        dispatcher has nothing in flight (so a lease given up to balance the
        nodes is released only then).
        """
        if self.stores.leases is None:
            return SoleLease(queue_name, self.stores.jobs, self.node, self.grabber_id, self.reactor)
        from fireworq.lease import LeaseKeeper

        return LeaseKeeper(
            queue_name,
            self.stores.leases,
            self.stores.jobs,
            self.node,
            clock=self.reactor,
            ttl_ms=self.config.lease_ttl,
            balancer=self.balancer,
            now=time.monotonic,
            drain=drain,
        )

    def make_dispatcher(self, definition: QueueDefinition) -> QueueDispatcher:
        """The dispatcher of one queue, with its own worker connection pool."""
        config = self.config
        pool = make_pool(
            self.reactor,
            persistent=config.dispatch_keep_alive,
            max_per_host=max(config.dispatch_max_conns_per_host, definition.max_workers),
            idle_timeout=config.dispatch_idle_conn_timeout,
        )
        deliverer = HTTPDeliverer(
            make_http_client(self.reactor, pool, https_policy(config.dispatch_ca_file)),
            config.dispatch_user_agent,
            self.reactor,
            pool=pool,
            min_idle_per_host=config.dispatch_max_conns_per_host,
            signing=self.signing,
        )
        if self.hooks is not None and definition.name == self.hooks.queue_name:
            deliverer.hooks = self.hooks  # hook deliveries: signed with each hook's secret
        made: list = []
        dispatcher = QueueDispatcher(
            definition,
            self.stores.jobs,
            self.make_lease(definition.name, drain=lambda: made[0].when_idle()),
            deliverer,
            self.events,
            self.reactor,
            shutdown_timeout=config.shutdown_timeout,
            job_lifetime=config.job_lifetime,
        )
        made.append(dispatcher)
        return dispatcher
