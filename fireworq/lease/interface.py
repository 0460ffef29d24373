"""
The lease boundary: the right of one node to dispatch one queue.

  - L{IQueueLease} is what a dispatcher sees: held or not, the fencing
    epoch (``grabber_id``) to stamp on grabbed jobs, and L{proven
    <IQueueLease.proven>}, asked right before each delivery starts.
  - L{ILeaseStore} keeps lease rows that several nodes compete for (MySQL);
    single-node stores have none.
  - L{LeaseGrant} is one answer of L{ILeaseStore.acquire}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Optional

import attr
from zope.interface import Attribute, Interface

from fireworq.store.interface import NodeInfo

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

#: Called with True when the lease is acquired (after the previous holder's
#: grabbed jobs were recovered) and with False when it is lost or released.
LeaseListener = Callable[[bool], None]

#: The lease time-to-live when none is configured (B2 ``lease_ttl``), in ms.
DEFAULT_TTL_MS = 3000


class IQueueLease(Interface):
    """This node's lease on one queue."""

    queue_name = Attribute("The queue the lease is for.")
    original_holder = Attribute(
        "The database connection id of an original (Go) Fireworq node holding "
        "the queue's election lock (then this node does not dispatch the "
        "queue), or None."
    )
    grabber_id = Attribute(
        "The fencing token to stamp on grabbed jobs; meaningful while held."
    )

    def held() -> bool:
        """
        Whether this node may grab now.  False the moment the lease cannot be
        proven (for example after the process was paused past its expiry),
        and while the lease is being handed to another node.
        """

    def proven(grabber_id: int) -> bool:
        """
        Whether jobs grabbed under ``grabber_id`` may still be delivered:
        the lease of that epoch is provably this node's now, judged against
        the node's own monotonic clock.  Asked right before each delivery
        starts; unlike L{held} it stays true while the lease is being
        handed over (the jobs already grabbed are delivered first).
        """

    def subscribe(listener: LeaseListener) -> None:
        """Call ``listener`` on every change of L{held}."""

    def start() -> None:
        """Begin acquiring (and then renewing) the lease."""

    def stop() -> "Deferred[None]":
        """Stop renewing and give the lease up."""

    def holder() -> "Deferred[Optional[NodeInfo]]":
        """The node that holds the lease now, or None."""


@attr.s(frozen=True, slots=True, auto_attribs=True)
class LeaseGrant:
    """
    A lease held by the caller.

    ``epoch`` is the fencing token stamped into ``grabber_id`` of every job
    grabbed under this lease; it changes whenever the holder changes.
    ``taken_over`` is true when the caller did not hold the lease before this
    grant (so the previous holder's grabbed jobs must be recovered).
    """

    epoch: int
    taken_over: bool


class ILeaseStore(Interface):
    """
    Lease rows (B2): which node may dispatch each queue, decided by the
    store's clock.  Only shared stores (MySQL) provide this.
    """

    def acquire(
        queue_name: str, node: NodeInfo, ttl_ms: int
    ) -> "Deferred[Optional[LeaseGrant]]":
        """
        Take or renew the queue's lease for ``ttl_ms`` from now (store
        clock).  Fire with the grant, or None when another node holds an
        unexpired lease.
        """

    def release(queue_name: str, node: NodeInfo) -> "Deferred[None]":
        """Give the lease up at once, if ``node`` holds it."""

    def holder(queue_name: str) -> "Deferred[Optional[NodeInfo]]":
        """The node holding an unexpired lease on the queue, or None."""

    def heartbeat(node: NodeInfo, ttl_ms: int) -> "Deferred[Dict[str, int]]":
        """
        Record that ``node`` is alive for ``ttl_ms``; fire with the live nodes
        and how many leases each holds (node id -> count).
        """

    def original_lock_holder(queue_name: str) -> "Deferred[Optional[int]]":
        """
        The database connection id holding the original (Go) Fireworq's
        election lock of the queue, or None: while an original node holds
        it, that node dispatches the queue and this server must not.
        """
