"""
Fenced deliveries (issue 11, bug 3), with L{task.Clock}: a dispatcher
under a L{LeaseKeeper} starts a delivery only while the keeper can prove
the lease of the jobs' epoch on the node's own monotonic clock, and does
not report a delivery that ended after its lease lapsed as done.

A process pause (SIGSTOP) is simulated by moving the keeper's monotonic
clock ahead without running any timer: that is what the process sees when
it runs again.  The same fault on real processes is in
tests/test_mysql_faults.py.
"""

from __future__ import annotations

from typing import List

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import EventFanout
from fireworq.lease.keeper import LeaseKeeper
from fireworq.model import NewJob, PushEntry, QueueDefinition, Result
from fireworq.stats import QueueStats
from fireworq.store.interface import NodeInfo
from fireworq.store.memory import MemoryJobStore
from tests.test_failover import TTL_MS, FakeLeaseStore

TTL = TTL_MS / 1000.0


class PausingDeliverer:
    """
    Records deliveries (answered when the test says); the first one
    "pauses the process": it moves the monotonic clock by ``pause``.
    """

    def __init__(self, mono: List[float], pause: float = 0.0) -> None:
        self.mono = mono
        self.pause = pause
        self.calls: List[int] = []
        self.pending: List[Deferred] = []

    def deliver(self, queue_name: str, job) -> Deferred:
        self.calls.append(job.id)
        if self.pause:
            self.mono[0] += self.pause
            self.pause = 0.0
        d: Deferred = Deferred()
        self.pending.append(d)
        return d


class FencedDeliveryTests(SynchronousTestCase):
    """A dispatcher whose lease is kept by a L{LeaseKeeper}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        #: The node's monotonic clock (normally moves with the reactor's).
        self.mono = [self.clock.seconds()]
        self.leases = FakeLeaseStore(lambda: int(self.clock.seconds() * 1000))
        self.store = MemoryJobStore(clock=lambda: int(self.clock.seconds() * 1000))
        self.successResultOf(self.store.start())
        self.stats = QueueStats(self.clock, lambda: int(self.clock.seconds() * 1000))

    def advance(self, seconds: float) -> None:
        """Time passes normally: the reactor runs."""
        self.mono[0] += seconds
        self.clock.advance(seconds)

    def make(self, deliverer: PausingDeliverer, max_workers: int = 3) -> QueueDispatcher:
        spec = QueueDefinition(name="q", polling_interval=100, max_workers=max_workers)
        self.successResultOf(self.store.prepare_queue("q"))
        self.keeper = LeaseKeeper(
            "q", self.leases, self.store, NodeInfo("a", "a.host"), self.clock, TTL_MS,
            now=lambda: self.mono[0],
        )
        dispatcher = QueueDispatcher(
            spec, self.store, self.keeper, deliverer, EventFanout([self.stats]), self.clock,
            shutdown_timeout=5,
        )
        return dispatcher

    def push(self, count: int) -> List[int]:
        job = NewJob(category="c", url="http://worker/")
        return [j.id for j in self.successResultOf(self.store.push([PushEntry("q", job)] * count))]

    def counts(self):
        return self.successResultOf(self.store.count_jobs("q"))

    def test_proven_follows_the_monotonic_deadline(self) -> None:
        deliverer = PausingDeliverer(self.mono)
        self.make(deliverer)
        self.keeper.start()
        epoch = self.keeper.grabber_id
        self.assertTrue(self.keeper.proven(epoch))
        self.assertFalse(self.keeper.proven(epoch + 1))
        # A pause: no timer ran, yet the lease is not proven any more.
        self.mono[0] += TTL
        self.assertFalse(self.keeper.proven(epoch))
        self.assertFalse(self.keeper.held())
        self.keeper.stop()

    def test_pause_during_starts_fences_the_rest(self) -> None:
        """
        The process is paused past its lease deadline while it starts the
        deliveries of one grab: the jobs after the pause are not sent but
        returned to the queue.
        """
        ids = self.push(3)
        deliverer = PausingDeliverer(self.mono, pause=10.0)
        dispatcher = self.make(deliverer)
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(deliverer.calls, ids[:1])
        counts = self.counts()
        self.assertEqual((counts.grabbed, counts.waiting), (1, 2))
        self.assertEqual(dispatcher.in_flight, 1)
        self.assertEqual(dispatcher.free_workers, 2)
        deliverer.pending[0].callback(Result("success", 200, ""))
        self.successResultOf(dispatcher.stopService())

    def test_completion_after_lapse_not_reported(self) -> None:
        """
        A delivery that ends after the lease lapsed (the process was paused
        and another node took the queue over) is not counted or logged as
        done; its completion is left to the store's fence, where it changes
        nothing because the new holder recovered the job.
        """
        ids = self.push(1)
        deliverer = PausingDeliverer(self.mono)
        dispatcher = self.make(deliverer)
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(deliverer.calls, ids)
        old_epoch = self.keeper.grabber_id
        # Paused for 10 s: meanwhile node b takes the lease and recovers.
        self.mono[0] += 10.0
        self.leases.rows["q"].expires_at = int(self.clock.seconds() * 1000) - 1
        b = LeaseKeeper("q", self.leases, self.store, NodeInfo("b", "b.host"), self.clock, TTL_MS,
                        now=lambda: self.mono[0])
        b.start()
        self.assertNotEqual(b.grabber_id, old_epoch)
        self.assertEqual(self.counts().waiting, 1)
        # The paused node runs again; its worker answers.
        with capturedLogs() as events:
            deliverer.pending[0].callback(Result("success", 200, ""))
            self.clock.advance(1)
        self.assertEqual(self.stats.counters("q").total_completes, 0)
        self.assertEqual(self.counts().waiting, 1)  # not completed by the stale answer
        self.assertTrue(any("lease lapsed" in str(e.get("log_format")) for e in events))
        b.stop()
        self.successResultOf(dispatcher.stopService())

    def test_completion_while_proven_reported(self) -> None:
        ids = self.push(1)
        deliverer = PausingDeliverer(self.mono)
        dispatcher = self.make(deliverer)
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(deliverer.calls, ids)
        self.advance(0.5)
        deliverer.pending[0].callback(Result("success", 200, ""))
        self.advance(0.1)
        self.assertEqual(self.stats.counters("q").total_completes, 1)
        counts = self.counts()
        self.assertEqual((counts.waiting, counts.grabbed), (0, 0))
        self.successResultOf(dispatcher.stopService())

    def test_proven_while_handing_over(self) -> None:
        """
        A lease given up for the balance stops grabs at once (held False)
        but its grabbed jobs may still start until the row is released.
        """
        drained: Deferred = Deferred()
        self.make(PausingDeliverer(self.mono))
        keeper = LeaseKeeper("q2", self.leases, self.store, NodeInfo("a", "a.host"), self.clock, TTL_MS,
                             now=lambda: self.mono[0], drain=lambda: drained)
        keeper.start()
        epoch = keeper.grabber_id
        keeper.relinquish()
        self.assertFalse(keeper.held())
        self.assertTrue(keeper.proven(epoch))
        drained.callback(None)
        self.assertFalse(keeper.proven(epoch))
        keeper.stop()
