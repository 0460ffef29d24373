"""
L{LeaseKeeper} and L{LeaseBalancer} with L{task.Clock} and an in-memory
lease store that keeps the MySQL store's semantics (L{FakeLeaseStore}); the
same keepers against real lease rows are in tests/test_store_mysql.py.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import attr
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from fireworq.lease.interface import ILeaseStore, IQueueLease, LeaseGrant
from fireworq.lease.balancer import LeaseBalancer, fair_share
from fireworq.lease.keeper import LeaseKeeper
from fireworq.store.interface import NodeInfo, StoreUnavailable

TTL_MS = 3000
TTL = TTL_MS / 1000.0


@attr.s(auto_attribs=True)
class _Row:
    holder: str
    host: str
    epoch: int
    expires_at: int


@implementer(ILeaseStore)
class FakeLeaseStore:
    """
    Lease rows in memory, on a clock in milliseconds -- the semantics of
    L{fireworq.lease.mysql.MySQLLeaseStore}.

    @ivar broken: when true, every call fails with L{StoreUnavailable}.
    @ivar stalled: when true, calls return Deferreds that fire (with the
        answer computed at call time) only on L{flush}.
    """

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self.now_ms = now_ms
        self.rows: Dict[str, _Row] = {}
        self.nodes: Dict[str, Tuple[str, int]] = {}
        self.broken = False
        self.stalled = False
        self._stalled: List[Tuple[Deferred, object]] = []
        self.calls: List[Tuple[str, str]] = []
        #: Queue name -> connection id of an original node holding its lock.
        self.original_locks: Dict[str, int] = {}

    def _answer(self, value: object) -> Deferred:
        if self.broken:
            return fail(StoreUnavailable("the database is down"))
        if self.stalled:
            d: Deferred = Deferred()
            self._stalled.append((d, value))
            return d
        return succeed(value)

    def flush(self) -> None:
        """Deliver the answers of stalled calls."""
        pending, self._stalled = self._stalled, []
        for d, value in pending:
            d.callback(value)

    def acquire(self, queue_name: str, node: NodeInfo, ttl_ms: int) -> Deferred:
        self.calls.append(("acquire", node.id))
        if self.broken:
            return self._answer(None)
        now = self.now_ms()
        row = self.rows.get(queue_name)
        if row is None:
            self.rows[queue_name] = _Row(node.id, node.host, 1 << 32, now + ttl_ms)
            return self._answer(LeaseGrant(epoch=1 << 32, taken_over=True))
        mine = row.holder == node.id
        if not mine and row.expires_at > now:
            return self._answer(None)
        if not mine:
            row.epoch += 1
        row.holder, row.host, row.expires_at = node.id, node.host, now + ttl_ms
        return self._answer(LeaseGrant(epoch=row.epoch, taken_over=not mine))

    def release(self, queue_name: str, node: NodeInfo) -> Deferred:
        self.calls.append(("release", node.id))
        if self.broken:
            return self._answer(None)
        row = self.rows.get(queue_name)
        now = self.now_ms()
        if row is not None and row.holder == node.id and row.expires_at > now:
            row.expires_at = now - 1
        return self._answer(None)

    def holder(self, queue_name: str) -> Deferred:
        self.calls.append(("holder", queue_name))
        row = self.rows.get(queue_name)
        if row is None or row.expires_at <= self.now_ms():
            return self._answer(None)
        return self._answer(NodeInfo(row.holder, row.host))

    def heartbeat(self, node: NodeInfo, ttl_ms: int) -> Deferred:
        self.calls.append(("heartbeat", node.id))
        if self.broken:
            return self._answer(None)
        now = self.now_ms()
        self.nodes[node.id] = (node.host, now + ttl_ms)
        live = {
            node_id: sum(1 for r in self.rows.values() if r.holder == node_id and r.expires_at > now)
            for node_id, (_, expires) in self.nodes.items()
            if expires > now
        }
        return self._answer(live)

    def original_lock_holder(self, queue_name: str) -> Deferred:
        # Answered at once even when ``stalled`` (which models slow claims).
        if self.broken:
            return fail(StoreUnavailable("the database is down"))
        return succeed(self.original_locks.get(queue_name))

    def held_by(self, node_id: str) -> List[str]:
        """The queues whose unexpired lease ``node_id`` holds, sorted."""
        now = self.now_ms()
        return sorted(q for q, r in self.rows.items() if r.holder == node_id and r.expires_at > now)


class FakeJobStore:
    """Only what a keeper uses of a job store: recover (recorded)."""

    def __init__(self, events: List[object]) -> None:
        self.events = events
        self.fail_recover = False
        self.pending: Optional[Deferred] = None
        self.stall = False

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        self.events.append(("recover", queue_name, grabber_id))
        if self.fail_recover:
            return fail(StoreUnavailable("down"))
        if self.stall:
            self.pending = Deferred()
            return self.pending
        return succeed(0)


class _Fixture(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.store = FakeLeaseStore(lambda: int(self.clock.seconds() * 1000))
        self.events: List[object] = []
        self.jobs = FakeJobStore(self.events)

    def keeper(self, node: str = "a", queue: str = "q", now: Optional[Callable[[], float]] = None,
               balancer: Optional[LeaseBalancer] = None, **kwargs) -> LeaseKeeper:
        keeper = LeaseKeeper(queue, self.store, self.jobs, NodeInfo(node, node + ".host"), self.clock,
                             TTL_MS, balancer=balancer, now=now, **kwargs)
        keeper.subscribe(lambda held, k=keeper: self.events.append(("held", k.node.id, k.queue_name, held)))
        self.addCleanup(keeper.stop)
        return keeper


class LeaseKeeperTests(_Fixture):
    """One queue's lease, as the dispatcher sees it."""

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IQueueLease, self.keeper()))

    def test_takes_lease_after_recovering(self) -> None:
        keeper = self.keeper()
        self.assertFalse(keeper.held())
        keeper.start()
        self.assertTrue(keeper.held())
        self.assertEqual(keeper.grabber_id, 1 << 32)
        self.assertEqual(self.events, [("recover", "q", 1 << 32), ("held", "a", "q", True)])

    def test_not_held_until_recovery_done(self) -> None:
        self.jobs.stall = True
        keeper = self.keeper()
        keeper.start()
        self.assertFalse(keeper.held())
        self.jobs.pending.callback(3)
        self.assertTrue(keeper.held())

    def test_renews_every_third_of_ttl_and_keeps_epoch(self) -> None:
        keeper = self.keeper()
        keeper.start()
        epoch = keeper.grabber_id
        for _ in range(30):
            self.clock.advance(TTL / 3)
            self.assertTrue(keeper.held())
        self.assertEqual(keeper.grabber_id, epoch)
        self.assertEqual(self.store.calls.count(("acquire", "a")), 31)
        self.assertEqual([e for e in self.events if e[0] == "recover"], [("recover", "q", epoch)])
        self.assertEqual([e for e in self.events if e[0] == "held"], [("held", "a", "q", True)])

    def test_held_false_the_moment_deadline_passes(self) -> None:
        # The process is paused (SIGSTOP): its timers do not run, but the
        # clock held() reads goes on.
        paused = [0.0]
        keeper = self.keeper(now=lambda: self.clock.seconds() + paused[0])
        keeper.start()
        self.assertTrue(keeper.held())
        paused[0] = TTL - keeper._margin - 0.001
        self.assertTrue(keeper.held())
        paused[0] = TTL - keeper._margin
        self.assertFalse(keeper.held())
        # The deadline is before the row's expiry on the database clock.
        self.assertLess(self.clock.seconds() + TTL - keeper._margin,
                        self.store.rows["q"].expires_at / 1000.0)

    def test_deadline_counts_from_sending(self) -> None:
        keeper = self.keeper()
        keeper.start()
        self.store.stalled = True
        self.clock.advance(TTL / 3)  # renewal sent now, answered 2 s later
        sent = self.clock.seconds()
        self.assertEqual(self.store.calls.count(("acquire", "a")), 2)
        self.clock.advance(2)
        self.store.flush()
        self.assertEqual(keeper._deadline, sent + TTL - keeper._margin)

    def test_slow_renewals_lose_the_lease_locally(self) -> None:
        keeper = self.keeper()
        keeper.start()
        self.store.stalled = True
        self.clock.pump([0.1] * 30)
        self.assertFalse(keeper.held())
        self.assertEqual(self.events[-1], ("held", "a", "q", False))
        # The renewal sent at TTL / 3 is answered after its deadline: it
        # proves nothing any more.
        self.clock.pump([0.1] * 11)
        self.store.flush()
        self.assertFalse(keeper.held())
        self.store.stalled = False
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())

    def test_late_grant_recovers_nothing(self) -> None:
        """
        Issue 19: a claim answered only after its own deadline (on Galera:
        stalled in commit during a view change) recovers nothing under that
        epoch -- another node may have taken the queue since, and the
        recovery could hand its in-flight jobs out again; the next renewal
        answered in time recovers and makes the lease held.
        """
        self.store.stalled = True
        keeper = self.keeper()
        keeper.start()
        self.clock.advance(TTL)
        self.store.flush()
        self.assertFalse(keeper.held())
        self.assertEqual([e for e in self.events if e[0] == "recover"], [])
        self.store.stalled = False
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
        self.assertEqual([e for e in self.events if e[0] == "recover"], [("recover", "q", keeper.grabber_id)])

    def test_store_outage_then_same_epoch_again(self) -> None:
        keeper = self.keeper()
        keeper.start()
        epoch = keeper.grabber_id
        self.store.broken = True
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
        self.clock.advance(TTL / 3)
        self.assertFalse(keeper.held())
        self.store.broken = False
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
        self.assertEqual(keeper.grabber_id, epoch)
        # Nobody else held it: no recovery, the jobs in flight stay ours.
        self.assertEqual([e for e in self.events if e[0] == "recover"], [("recover", "q", epoch)])
        self.assertEqual([e[3] for e in self.events if e[0] == "held"], [True, False, True])
        self.flushLoggedErrors()

    def test_takeover_after_expiry(self) -> None:
        a = self.keeper("a")
        a.start()
        first = a.grabber_id
        b = self.keeper("b")
        b.start()
        self.assertFalse(b.held())
        self.store.broken = True  # a cannot renew (it hangs, or the network)
        self.clock.advance(TTL / 3)
        self.store.broken = False
        a._running = False  # a's renewals stop too (it is frozen)
        for _ in range(4):
            self.clock.advance(TTL / 3)
        self.assertTrue(b.held())
        self.assertFalse(a.held())
        self.assertEqual(b.grabber_id, first + 1)
        self.assertIn(("recover", "q", first + 1), self.events)
        recover = self.events.index(("recover", "q", first + 1))
        self.assertEqual(self.events.index(("held", "b", "q", True)), recover + 1)
        a._running = True

    def test_lost_to_another_node(self) -> None:
        a = self.keeper("a")
        a.start()
        # Someone else holds the row now (our renewals were lost).
        self.store.rows["q"].holder = "z"
        self.clock.advance(TTL / 3)
        self.assertFalse(a.held())
        self.assertEqual(self.events[-1], ("held", "a", "q", False))
        self.assertEqual(a._grant, None)

    def test_recovery_failure_retried(self) -> None:
        self.jobs.fail_recover = True
        keeper = self.keeper()
        keeper.start()
        self.assertFalse(keeper.held())
        self.jobs.fail_recover = False
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
        self.assertEqual([e[0] for e in self.events], ["recover", "recover", "held"])

    def test_stop_releases(self) -> None:
        a = self.keeper("a")
        a.start()
        d = a.stop()
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(a.held())
        self.assertEqual(self.events[-1], ("held", "a", "q", False))
        self.assertIn(("release", "a"), self.store.calls)
        b = self.keeper("b")
        b.start()
        self.assertTrue(b.held())
        calls = len(self.store.calls)
        self.clock.advance(10)
        self.assertFalse(any(c == ("acquire", "a") for c in self.store.calls[calls:]))

    def test_stop_waits_for_a_pending_renewal(self) -> None:
        a = self.keeper("a")
        a.start()
        self.store.stalled = True
        self.clock.advance(TTL / 3)
        d = a.stop()
        self.assertNoResult(d)
        self.store.stalled = False
        self.store.flush()
        self.successResultOf(d)
        self.assertEqual(self.store.held_by("a"), [])

    def test_holder(self) -> None:
        a = self.keeper("a")
        self.assertIsNone(self.successResultOf(a.holder()))
        a.start()
        self.assertEqual(self.successResultOf(a.holder()), NodeInfo("a", "a.host"))

    def test_listener_errors_do_not_break_the_keeper(self) -> None:
        keeper = self.keeper()
        keeper.subscribe(lambda held: 1 / 0)
        keeper.start()
        self.assertTrue(keeper.held())
        self.successResultOf(keeper.stop())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)


class FairShareTests(SynchronousTestCase):
    def test_fair_share(self) -> None:
        self.assertEqual(fair_share(8, 2), 4)
        self.assertEqual(fair_share(8, 3), 3)
        self.assertEqual(fair_share(1, 2), 1)
        self.assertEqual(fair_share(0, 2), 0)
        self.assertEqual(fair_share(5, 0), 5)


QUEUES = [f"q{i}" for i in range(8)]


class LeaseBalancerTests(_Fixture):
    """Leases spread over live nodes."""

    def node(self, name: str, queues=QUEUES, **kwargs) -> Tuple[LeaseBalancer, List[LeaseKeeper]]:
        balancer = LeaseBalancer(self.store, NodeInfo(name, name + ".host"), self.clock, TTL_MS, **kwargs)
        keepers = [self.keeper(name, q, balancer=balancer) for q in queues]
        balancer.start()
        self.addCleanup(balancer.stop)
        for keeper in keepers:
            keeper.start()
        return balancer, keepers

    def settle(self, seconds: float = 5 * TTL) -> None:
        for _ in range(int(seconds / 0.1)):
            self.clock.advance(0.1)

    def test_single_node_takes_everything(self) -> None:
        _, keepers = self.node("a")
        self.settle()
        self.assertTrue(all(k.held() for k in keepers))

    def test_second_node_gets_half(self) -> None:
        _, a = self.node("a")
        self.settle()
        self.assertEqual(len(self.store.held_by("a")), 8)
        _, b = self.node("b")
        self.settle()
        self.assertEqual(len(self.store.held_by("a")), 4)
        self.assertEqual(len(self.store.held_by("b")), 4)
        self.assertEqual(sum(k.held() for k in a), 4)
        self.assertEqual(sum(k.held() for k in b), 4)
        # a gave up the last names; stable from now on.
        self.assertEqual(self.store.held_by("a"), QUEUES[:4])
        before = dict((q, r.epoch) for q, r in self.store.rows.items())
        self.settle()
        self.assertEqual(dict((q, r.epoch) for q, r in self.store.rows.items()), before)

    def test_three_nodes(self) -> None:
        self.node("a")
        self.settle()
        self.node("b")
        self.node("c")
        self.settle(10 * TTL)
        counts = sorted(len(self.store.held_by(n)) for n in "abc")
        self.assertEqual(counts, [2, 3, 3])

    def test_nodes_starting_together(self) -> None:
        self.node("a")
        self.node("b")
        self.settle(10 * TTL)
        self.assertEqual(sorted(len(self.store.held_by(n)) for n in "ab"), [4, 4])
        self.assertEqual(len(set(self.store.held_by("a")) | set(self.store.held_by("b"))), 8)

    def test_dead_node_leases_taken_within_bound(self) -> None:
        _, a = self.node("a")
        self.settle()
        b_balancer, b = self.node("b")
        self.settle()
        # b dies: nothing of it runs any more.
        for keeper in b:
            keeper._running = False
            keeper._loop.stopService()
        b_balancer._loop.stopService()
        died = self.clock.seconds()
        while len(self.store.held_by("a")) < 8:
            self.clock.advance(0.05)
            self.assertLess(self.clock.seconds() - died, TTL + 2 * TTL / 3 + 0.2)
        self.assertTrue(all(k.held() for k in a))
        for keeper in b:
            keeper._running = True

    def test_grace_takes_free_lease_regardless_of_share(self) -> None:
        # b believes a third node is alive, so its share is 3 of 8; the
        # other leases are free (nobody else runs): after the grace period
        # b takes them anyway.
        self.store.nodes["ghost"] = ("ghost.host", 10**15)
        self.store.nodes["ghost2"] = ("ghost.host", 10**15)
        balancer, b = self.node("b", grace=2.0)
        self.clock.advance(0.1)
        self.assertEqual(balancer.share(), 3)
        self.assertEqual(len(self.store.held_by("b")), 3)
        self.settle(2.0 + TTL)
        self.assertEqual(len(self.store.held_by("b")), 8)
        # Nobody took them in the grace period: they are not given back
        # (no flapping) while the same nodes are live ...
        epochs = {q: r.epoch for q, r in self.store.rows.items()}
        self.settle(5 * TTL)
        self.assertEqual({q: r.epoch for q, r in self.store.rows.items()}, epochs)
        self.assertEqual(sum(k.held() for k in b), 8)
        # ... but a node joining gets (at least) its share of 8 / 4 nodes,
        # and every lease stays held.
        self.node("c")
        self.settle(5 * TTL)
        self.assertGreaterEqual(len(self.store.held_by("c")), 2)
        self.assertEqual(len(self.store.held_by("b")) + len(self.store.held_by("c")), 8)

    def test_before_first_heartbeat_only_grace(self) -> None:
        self.store.stalled = True
        balancer = LeaseBalancer(self.store, NodeInfo("a", "h"), self.clock, TTL_MS)
        keeper = self.keeper("a", "q", balancer=balancer)
        balancer.start()
        keeper.start()
        self.store.stalled = False
        self.clock.advance(TTL / 3)
        self.assertFalse(keeper.held())  # probing, heartbeat not answered
        self.assertEqual(self.store.calls.count(("acquire", "a")), 0)
        self.store.flush()  # the heartbeat answers: take at once
        self.assertTrue(keeper.held())

    def test_drain_before_release(self) -> None:
        drained: List[Deferred] = []

        def drain() -> Deferred:
            drained.append(Deferred())
            return drained[-1]

        balancer = LeaseBalancer(self.store, NodeInfo("a", "a.host"), self.clock, TTL_MS)
        keepers = [self.keeper("a", q, balancer=balancer, drain=drain) for q in QUEUES[:2]]
        balancer.start()
        for k in keepers:
            k.start()
        self.settle(TTL)
        self.node("b", queues=QUEUES[:2])
        self.settle(TTL)
        self.assertEqual(len(drained), 1)
        giving = keepers[1]
        self.assertFalse(giving.held())
        self.assertEqual(self.store.held_by("a"), QUEUES[:2])  # still renewing
        drained[0].callback(None)
        self.settle(TTL)
        self.assertEqual(self.store.held_by("a"), QUEUES[:1])
        self.assertEqual(self.store.held_by("b"), QUEUES[1:2])

    def test_no_release_without_room_elsewhere(self) -> None:
        # A live node that already holds its share: nothing to give it.
        balancer, a = self.node("a", queues=QUEUES[:2])
        self.settle(TTL)
        self.store.nodes["b"] = ("b.host", 10**15)
        self.store.rows["other"] = _Row("b", "b.host", 1, 10**15)
        balancer.rebalance()
        # share = ceil(2 / 2) = 1 and b holds 1 (of queues a does not know):
        # b has no room, a keeps both.
        self.assertEqual(balancer.excess(), [])
        self.settle(TTL)
        self.assertEqual(len(self.store.held_by("a")), 2)

    def test_stop_marks_node_gone(self) -> None:
        balancer, _ = self.node("a", queues=QUEUES[:1])
        self.settle(TTL)
        self.successResultOf(balancer.stop())
        self.assertLessEqual(self.store.nodes["a"][1], self.store.now_ms())


class OriginalLockTests(_Fixture):
    """
    Issue 11 bug 8: beside an original (Go) Fireworq node on one database,
    a queue whose original election lock is held is left to that node.
    """

    def test_lock_held_before_start(self) -> None:
        self.store.original_locks["q"] = 77
        keeper = self.keeper()
        with capturedLogs() as events:
            keeper.start()
            self.clock.pump([TTL / 3] * 10)
        self.assertNotIn(("acquire", "a"), self.store.calls)
        self.assertFalse(keeper.held())
        self.assertEqual(keeper.original_holder, 77)
        said = [e for e in events if "original Fireworq node holds" in e.get("log_format", "")]
        self.assertEqual(len(said), 1)  # logged once, not every renewal
        self.assertEqual(said[0]["lock"], "fireworq_jq(q)")

    def test_lock_taken_while_holding(self) -> None:
        keeper = self.keeper()
        keeper.start()
        epoch = keeper.grabber_id
        self.assertTrue(keeper.held())
        self.store.original_locks["q"] = 9
        self.clock.advance(TTL / 3)
        # Dispatch stops at the next renewal; the row is released at once.
        self.assertFalse(keeper.held())
        self.assertFalse(keeper.proven(epoch))
        self.assertEqual(self.store.held_by("a"), [])
        self.assertEqual(self.events[-1], ("held", "a", "q", False))
        # The original goes away: the queue is taken again.
        del self.store.original_locks["q"]
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
        self.assertIsNone(keeper.original_holder)

    def test_check_failure_proves_nothing(self) -> None:
        keeper = self.keeper()
        keeper.start()
        self.store.broken = True
        self.clock.pump([0.1] * 40)
        self.assertFalse(keeper.held())
        self.store.broken = False
        self.clock.advance(TTL / 3)
        self.assertTrue(keeper.held())
