"""
Unit tests of the per-queue service (fireworq/queues.py): its children and
their start order, and the stop order that keeps every outcome written
under a held lease -- deliveries drained, then completions written, then
the lease given up, then the worker connections closed -- with a
task.Clock, the in-memory store and a scripted deliverer.
"""

from __future__ import annotations

from typing import List

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import EventFanout
from fireworq.lease.sole import SoleLease
from fireworq.model import NewJob, PushEntry, QueueDefinition
from fireworq.queues import QueueService
from fireworq.store.interface import NodeInfo
from tests.support.deliverers import ScriptedDeliverer
from tests.test_dispatcher import CountingStore

NODE = NodeInfo("node-1", "localhost")


class RecordingLease(SoleLease):
    """A sole lease that notes its start and stop in a shared log."""

    def __init__(self, log: List[str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log = log

    def start(self) -> None:
        self.log.append("lease start")
        super().start()

    def stop(self):
        self.log.append("lease stop")
        return super().stop()


class ClosingDeliverer(ScriptedDeliverer):
    """A scripted deliverer whose close() is noted in the log."""

    def __init__(self, log: List[str]) -> None:
        super().__init__()
        self.log = log

    def close(self) -> Deferred:
        self.log.append("close")
        return succeed(None)


class QueueServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.log: List[str] = []
        self.store = CountingStore(lambda: int(self.clock.seconds() * 1000))
        self.successResultOf(self.store.start())
        real_complete = self.store.complete

        def complete(queue_name, completions, grabber_id, **kwargs):
            self.log.append("complete")
            return real_complete(queue_name, completions, grabber_id, **kwargs)

        self.store.complete = complete
        self.deliverer = ClosingDeliverer(self.log)
        spec = QueueDefinition(name="q", polling_interval=200, max_workers=2)
        self.successResultOf(self.store.prepare_queue("q"))
        self.lease = RecordingLease(self.log, "q", self.store, NODE, 42, self.clock)
        self.dispatcher = QueueDispatcher(
            spec, self.store, self.lease, self.deliverer, EventFanout([]), self.clock, shutdown_timeout=5
        )
        self.queue = QueueService(self.dispatcher)

    def push(self, count: int) -> List[int]:
        job = NewJob(category="c", url="http://worker/")
        jobs = self.successResultOf(self.store.push([PushEntry("q", job)] * count))
        return [j.id for j in jobs]

    def test_children_in_dependency_order(self) -> None:
        """Client, lease, completions, dispatcher, then the per-queue upkeep."""
        self.assertEqual(
            [child.name for child in self.queue],
            ["client of q", "lease of q", "completions of q", "q", "key cleaner q", "history cleaner q"],
        )
        self.assertIs(self.queue.getServiceNamed("q"), self.dispatcher)
        self.assertIs(self.queue.lease, self.lease)

    def test_start_takes_the_lease_then_dispatches(self) -> None:
        ids = self.push(1)
        self.queue.startService()
        self.clock.advance(0)
        self.assertEqual(self.log[0], "lease start")
        self.assertTrue(all(child.running for child in self.queue))
        self.assertEqual([job_id for _, job_id in self.deliverer.calls], ids)

    def test_stop_order(self) -> None:
        """
        A stop waits for the running delivery, writes its completion, and
        only then gives the lease up and closes the connections.
        """
        ids = self.push(2)
        self.queue.startService()
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.pending), 2)
        del self.log[:]
        stopped = self.queue.stopService()
        self.assertNoResult(stopped)
        self.assertFalse(self.dispatcher.running)
        # Deliveries still run: nothing written, lease and client untouched.
        self.assertEqual(self.log, [])
        self.deliverer.answer(ids[0])
        self.clock.advance(0.01)
        self.assertNoResult(stopped)
        self.assertNotIn("lease stop", self.log)
        self.deliverer.answer(ids[1])
        self.clock.advance(0.01)
        self.successResultOf(stopped)
        self.assertEqual(self.log[-2:], ["lease stop", "close"])
        self.assertIn("complete", self.log)
        self.assertLess(max(i for i, e in enumerate(self.log) if e == "complete"), self.log.index("lease stop"))
        self.assertEqual(self.successResultOf(self.store.count_jobs("q")).grabbed, 0)
        self.assertFalse(any(child.running for child in self.queue))

    def test_stop_with_nothing_in_flight(self) -> None:
        self.queue.startService()
        self.clock.advance(0)
        del self.log[:]
        self.successResultOf(self.queue.stopService())
        self.assertEqual(self.log, ["lease stop", "close"])

    def test_abandoned_deliveries_released_before_the_lease_goes(self) -> None:
        """After shutdown_timeout the stuck deliveries' jobs go back, still under the lease."""
        self.push(1)
        self.queue.startService()
        self.clock.advance(0)
        del self.log[:]
        stopped = self.queue.stopService()
        self.clock.advance(4.9)
        self.assertNoResult(stopped)
        self.assertEqual(self.log, [])
        self.clock.advance(0.2)
        self.successResultOf(stopped)
        self.assertEqual(self.log, ["lease stop", "close"])
        self.assertEqual(self.successResultOf(self.store.count_jobs("q")).waiting, 1)

    def test_dispatcher_alone_still_owns_its_parts(self) -> None:
        """A dispatcher used without a QueueService starts and stops its lease itself."""
        lease = RecordingLease(self.log, "r", self.store, NODE, 43, self.clock)
        self.successResultOf(self.store.prepare_queue("r"))
        alone = QueueDispatcher(
            QueueDefinition(name="r", polling_interval=200, max_workers=1), self.store, lease, ScriptedDeliverer(), EventFanout([]), self.clock
        )
        alone.startService()
        self.assertEqual(self.log, ["lease start"])
        self.successResultOf(alone.stopService())
        self.assertEqual(self.log, ["lease start", "lease stop"])
