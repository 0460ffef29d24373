"""
L{SoleLease} (the lease of single-node stores) with L{task.Clock}, and the
L{IQueueLease} contract both lease kinds keep.  The MySQL lease keeper's
own tests are in tests/test_failover.py.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from fireworq.lease import IQueueLease, SoleLease
from fireworq.store.interface import NodeInfo, StoreUnavailable

NODE = NodeInfo("n1", "host1")


class RecoveringStore:
    """Only what a L{SoleLease} uses of a job store: recover (counted)."""

    def __init__(self) -> None:
        self.calls: List[int] = []
        self.down = False
        self.pending: Optional[Deferred] = None
        self.stall = False

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        self.calls.append(grabber_id)
        if self.down:
            return fail(StoreUnavailable("the database is down"))
        if self.stall:
            self.pending = Deferred()
            return self.pending
        return succeed(0)


class SoleLeaseTests(SynchronousTestCase):
    """The single-node lease: held from start (after recovery) to stop."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.store = RecoveringStore()
        self.lease = SoleLease("q", self.store, NODE, 7, self.clock)  # type: ignore[arg-type]
        self.changes: List[bool] = []
        self.lease.subscribe(self.changes.append)

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IQueueLease, self.lease))

    def test_held_after_recovery(self) -> None:
        self.lease.start()
        self.assertEqual(self.store.calls, [7])
        self.assertTrue(self.lease.held())
        self.assertEqual(self.changes, [True])
        self.assertEqual(self.successResultOf(self.lease.holder()), NODE)

    def test_retries_while_store_down(self) -> None:
        """Recovery is retried with growing delays while the store is down."""
        self.store.down = True
        self.lease.start()
        self.assertFalse(self.lease.held())
        self.clock.advance(1.2)
        self.assertEqual(len(self.store.calls), 2)
        self.clock.advance(2.3)
        self.assertEqual(len(self.store.calls), 3)
        self.store.down = False
        self.clock.advance(5.0)
        self.assertEqual(len(self.store.calls), 4)
        self.assertTrue(self.lease.held())
        # Held: no more recoveries.
        self.clock.advance(100.0)
        self.assertEqual(len(self.store.calls), 4)

    def test_stop_cancels_retry(self) -> None:
        """
        Bug 2: a stopped lease does not retry recovery (its retry timer used
        to call start() again, which set it running again, forever).
        """
        self.store.down = True
        self.lease.start()
        self.clock.advance(1.2)
        self.assertEqual(len(self.store.calls), 2)
        self.successResultOf(self.lease.stop())
        # The retry timer is cancelled at once, not left to fire (and be ignored).
        self.assertEqual(self.clock.getDelayedCalls(), [])
        for _ in range(100):
            self.clock.advance(10.0)
        self.assertEqual(len(self.store.calls), 2)
        self.assertFalse(self.lease.held())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_then_restart(self) -> None:
        """A lease stopped while retrying can be started again."""
        self.store.down = True
        self.lease.start()
        self.successResultOf(self.lease.stop())
        self.store.down = False
        self.lease.start()
        self.assertTrue(self.lease.held())
        self.assertEqual(self.changes, [True])

    def test_late_answer_after_stop_ignored(self) -> None:
        """A recovery answered after stop does not make the lease held."""
        self.store.stall = True
        self.lease.start()
        pending = self.store.pending
        self.successResultOf(self.lease.stop())
        assert pending is not None
        pending.callback(3)
        self.assertFalse(self.lease.held())
        self.assertEqual(self.changes, [])

    def test_proven_always(self) -> None:
        """No other node can take a single-node queue: deliveries are never fenced."""
        self.assertTrue(self.lease.proven(7))
        self.lease.start()
        self.clock.advance(1_000_000)
        self.assertTrue(self.lease.proven(7))
