"""
Unit tests of the queue dispatcher: polling and kicks, grab sizing, the
worker limit, throttling, retry rules, lease handling and shutdown, with a
task.Clock, the in-memory store and a scripted deliverer.
"""

from __future__ import annotations

from typing import List, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease.sole import SoleLease
from fireworq.events import EventFanout
from fireworq.model import (
    CompletionKind,
    JobState,
    NewJob,
    PushEntry,
    QueueDefinition,
)
from fireworq.stats import QueueStats
from fireworq.store.interface import NodeInfo
from fireworq.store.memory import MemoryJobStore
from tests.support.deliverers import ScriptedDeliverer

NODE = NodeInfo("node-1", "localhost")


class CountingStore(MemoryJobStore):
    """The memory store, counting grabs and their limits."""

    def __init__(self, clock):
        super().__init__(clock=clock)
        self.grabs: List[int] = []

    def grab(self, queue_name, limit, grabber_id):
        self.grabs.append(limit)
        return super().grab(queue_name, limit, grabber_id)


class DispatcherTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.store = CountingStore(lambda: int(self.clock.seconds() * 1000))
        self.successResultOf(self.store.start())
        self.stats = QueueStats(self.clock, lambda: int(self.clock.seconds() * 1000))
        self.deliverer = ScriptedDeliverer()

    def make(self, **definition) -> QueueDispatcher:
        fields = {"name": "q", "polling_interval": 200, "max_workers": 2}
        fields.update(definition)
        spec = QueueDefinition(**fields)
        self.successResultOf(self.store.prepare_queue(spec.name))
        lease = SoleLease(spec.name, self.store, NODE, 42, self.clock)
        dispatcher = QueueDispatcher(
            spec,
            self.store,
            lease,
            self.deliverer,
            EventFanout([self.stats]),
            self.clock,
            shutdown_timeout=5,
        )
        return dispatcher

    def push(self, count: int, queue: str = "q", **fields) -> List[int]:
        job = NewJob(category="c", url="http://worker/", **fields)
        jobs = self.successResultOf(self.store.push([PushEntry(queue, job)] * count))
        return [j.id for j in jobs]

    def hold_grab_answers(self) -> List[Tuple[Deferred, Deferred]]:
        """
        From now on the store commits each grab at once, but its answer
        reaches the dispatcher only when the test fires it: the list gets
        (answer to fire, the committed grab's result) per grab.
        """
        real_grab = self.store.grab
        answers: List[Tuple[Deferred, Deferred]] = []

        def slow_grab(queue_name, limit, grabber_id):
            answer: Deferred = Deferred()
            answers.append((answer, real_grab(queue_name, limit, grabber_id)))
            return answer

        self.store.grab = slow_grab
        return answers

    def state(self, queue: str = "q"):
        return self.successResultOf(self.store.count_jobs(queue))

    def test_grabs_at_most_free_capacity(self):
        ids = self.push(5)
        dispatcher = self.make(max_workers=2)
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual([job_id for _, job_id in self.deliverer.calls], ids[:2])
        self.assertEqual(self.store.grabs[0], 2)
        self.assertEqual(self.state().grabbed, 2)
        # Full: polling does not even ask the store.
        grabs = len(self.store.grabs)
        self.clock.advance(1)
        self.assertEqual(len(self.store.grabs), grabs)
        # A freed worker takes the next job at once (backlog), not at the next poll.
        self.deliverer.answer(ids[0])
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.calls), 3)

    def test_busy_queue_grabs_in_batches(self):
        """With jobs waiting, one freed worker does not trigger a grab of one job."""
        ids = self.push(20)
        dispatcher = self.make(max_workers=8)  # min_grab = 2
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(self.store.grabs, [8])
        self.deliverer.answer(ids[0])
        self.clock.advance(0)
        self.assertEqual(self.store.grabs, [8])
        self.deliverer.answer(ids[1])
        self.clock.advance(0)
        self.assertEqual(self.store.grabs, [8, 2])
        self.assertEqual(len(self.deliverer.calls), 10)

    def test_reserved_pushes_are_delivered_without_a_grab(self):
        dispatcher = self.make(max_workers=3)
        dispatcher.startService()
        self.clock.advance(0)
        grabs = len(self.store.grabs)
        grabber_id, granted = dispatcher.reserve(5)
        self.assertEqual((grabber_id, granted), (42, 3))
        self.assertEqual(dispatcher.reserve(1), (None, 0))  # every worker reserved
        job = NewJob(category="c", url="http://worker/")
        entries = [PushEntry("q", job, grabber_id)] * 3 + [PushEntry("q", job)] * 2
        stored = self.successResultOf(self.store.push(entries))
        dispatcher.pushed(stored, grabber_id, granted)
        self.assertEqual([j for _, j in self.deliverer.calls], [j.id for j in stored[:3]])
        dispatcher.kick()  # as the manager does when due jobs were stored claimed
        self.clock.advance(0)
        self.assertEqual(len(self.store.grabs), grabs)  # full: the other two wait
        self.deliverer.answer(stored[0].id)
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.calls), 4)

    def test_no_reservation_while_jobs_wait_or_throttled_or_without_lease(self):
        self.push(3)
        busy = self.make(max_workers=2)
        busy.startService()
        self.clock.advance(0)  # grabbed 2 of 3: jobs wait
        self.assertEqual(busy.reserve(1), (None, 0))
        throttled = self.make(name="t", max_dispatches_per_second=5.0, max_burst_size=1)
        throttled.startService()
        self.clock.advance(0)
        self.assertEqual(throttled.reserve(1), (None, 0))
        idle = self.make(name="i")
        idle.lease.held = lambda: False
        self.assertEqual(idle.reserve(1), (None, 0))

    def test_a_grab_in_flight_holds_its_workers(self):
        """
        Bug 1 of issue 11: reserve() ignored a grab in flight, so with
        max_workers 2 a push reserved two workers while a grab of two was
        on its way -- four jobs grabbed, four reported in flight, two of
        them waiting in memory.  One counter owns capacity now: a node
        never holds more grabbed jobs than free workers.
        """
        self.push(2)
        dispatcher = self.make(max_workers=2)
        answers = self.hold_grab_answers()
        dispatcher.startService()
        self.clock.advance(0)
        [(answer, committed)] = answers
        self.assertEqual(self.store.grabs, [2])
        self.assertEqual(dispatcher.reserve(2), (None, 0))  # both workers are the grab's
        answer.callback(self.successResultOf(committed))
        self.clock.advance(0)
        self.assertEqual(dispatcher.in_flight, 2)
        self.assertEqual(self.state().grabbed, 2)
        self.assertEqual(len(self.deliverer.calls), 2)

    def test_a_short_grab_frees_what_it_did_not_use(self):
        """A grab that finds fewer jobs than its limit gives the rest back at once."""
        self.push(1)
        dispatcher = self.make(max_workers=3)
        answers = self.hold_grab_answers()
        dispatcher.startService()
        self.clock.advance(0)
        [(answer, committed)] = answers
        self.assertEqual(dispatcher.reserve(1), (None, 0))
        answer.callback(self.successResultOf(committed))
        self.assertEqual(dispatcher.in_flight, 1)
        self.assertEqual(dispatcher.reserve(5), (42, 2))

    def test_reservations_hold_workers_against_polls(self):
        """Workers reserved for a push are not grabbed for by a poll meanwhile."""
        dispatcher = self.make(max_workers=2)
        dispatcher.startService()
        self.clock.advance(0)
        grabber_id, granted = dispatcher.reserve(1)
        self.assertEqual(granted, 1)
        self.push(3)
        grabs = len(self.store.grabs)
        dispatcher.kick()
        self.clock.advance(0)
        self.assertEqual(self.store.grabs[grabs:], [1])  # one worker left for the poll
        job = NewJob(category="c", url="http://worker/")
        stored = self.successResultOf(self.store.push([PushEntry("q", job, grabber_id)]))
        dispatcher.pushed(stored, grabber_id, granted)
        self.assertEqual(dispatcher.in_flight, 2)
        self.assertEqual(self.state().grabbed, 2)

    def test_a_failed_grab_frees_its_workers(self):
        dispatcher = self.make(max_workers=2)
        answers = self.hold_grab_answers()
        dispatcher.startService()
        self.clock.advance(0)
        [(answer, _)] = answers
        answer.errback(RuntimeError("database down"))
        self.assertEqual(dispatcher.reserve(2), (42, 2))

    def test_shrunk_limit_applies_to_new_deliveries(self):
        """After max_workers shrinks, no delivery starts until fewer than the new limit run."""
        ids = self.push(6)
        dispatcher = self.make(max_workers=3)
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(dispatcher.in_flight, 3)
        dispatcher.reconfigure(QueueDefinition("q", 200, 2))
        self.deliverer.answer(ids[0])
        self.clock.advance(1)
        self.assertEqual((dispatcher.in_flight, len(self.deliverer.calls)), (2, 3))
        self.deliverer.answer(ids[1])
        self.clock.advance(1)
        self.assertEqual((dispatcher.in_flight, len(self.deliverer.calls)), (2, 4))

    def test_failed_grabs_back_off_until_one_succeeds(self):
        """
        While the store fails grabs, polls wait longer each time
        (fireworq.backoff: 1 s, 2 s, ... up to 5 s, +10% jitter at most); a
        successful grab resets the delay.
        """
        ids = self.push(1)
        dispatcher = self.make(max_workers=2)
        real_grab = self.store.grab
        failing = [True]

        def grab(queue_name, limit, grabber_id):
            self.store.grabs.append(limit)
            if failing[0]:
                from twisted.internet.defer import fail

                return fail(ConnectionError("database down"))
            return real_grab(queue_name, limit, grabber_id)

        self.store.grab = grab
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(len(self.store.grabs), 1)
        self.clock.advance(0.95)  # polls every 0.2 s are held back
        self.assertEqual(len(self.store.grabs), 1)
        self.clock.advance(0.2)
        self.assertEqual(len(self.store.grabs), 2)
        self.clock.advance(1.9)  # the second wait is twice as long
        self.assertEqual(len(self.store.grabs), 2)
        failing[0] = False
        self.clock.advance(0.3)
        self.assertGreaterEqual(len(self.store.grabs), 3)
        self.assertEqual([j for _, j in self.deliverer.calls], ids)
        grabs = len(self.store.grabs)
        for _ in range(5):  # polling every 0.2 s as usual again
            self.clock.advance(0.2)
        self.assertGreaterEqual(len(self.store.grabs), grabs + 4)
        self.assertEqual(dispatcher.free_workers, 1)

    def test_failed_push_frees_the_reservation(self):
        dispatcher = self.make(max_workers=2)
        dispatcher.startService()
        self.clock.advance(0)
        _, granted = dispatcher.reserve(2)
        dispatcher.unreserve(granted)
        self.assertEqual(dispatcher.reserve(2)[1], 2)

    def test_polls_at_interval_and_kick_is_immediate(self):
        dispatcher = self.make(polling_interval=500)
        dispatcher.startService()
        self.clock.advance(0)
        self.push(1)
        self.clock.advance(0.4)
        self.assertEqual(self.deliverer.calls, [])
        self.clock.advance(0.1)
        self.assertEqual(len(self.deliverer.calls), 1)
        self.push(1)
        dispatcher.kick()
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.calls), 2)

    def test_outcomes_follow_the_retry_rule(self):
        dispatcher = self.make(max_workers=10)
        dispatcher.startService()
        ok, retry, last, permanent = (
            self.push(1)[0],
            self.push(1, max_retries=2, retry_delay=30)[0],
            self.push(1, max_retries=0)[0],
            self.push(1, max_retries=5)[0],
        )
        self.clock.advance(0)
        self.deliverer.answer(ok, "success")
        self.deliverer.answer(retry, "failure", "later")
        self.deliverer.answer(last, "failure", "no more")
        self.deliverer.answer(permanent, "permanent-failure", "never")
        self.successResultOf(dispatcher.completions.drain())
        self.assertIsNone(self.successResultOf(self.store.find_job("q", ok)))
        again = self.successResultOf(self.store.find_job("q", retry))
        self.assertEqual((again.status, again.fail_count, again.retry_count), ("claimed", 1, 1))
        self.assertEqual(again.next_try, int(self.clock.seconds() * 1000) + 30_000)
        failed = self.successResultOf(self.store.list_failed("q", "failed", 10, None)).items
        self.assertEqual(sorted(f.job_id for f in failed), sorted([last, permanent]))
        counters = self.stats.counters("q").to_json()
        self.assertEqual(counters["total_successes"], 1)
        self.assertEqual(counters["total_failures"], 3)
        self.assertEqual(counters["total_permanent_failures"], 2)
        self.assertEqual(counters["total_completes"], 3)
        # The retried job comes back after its delay.
        self.clock.advance(30)
        self.assertIn(("q", retry), self.deliverer.calls[4:])

    def test_no_grab_without_the_lease(self):
        self.push(3)
        dispatcher = self.make()
        dispatcher.lease.held = lambda: False
        dispatcher.startService()
        self.clock.advance(1)
        self.assertEqual(self.deliverer.calls, [])
        self.assertEqual(self.store.grabs, [])

    def test_throttle_limits_grabs_to_tokens(self):
        self.push(10)
        dispatcher = self.make(
            max_workers=10, max_dispatches_per_second=2.0, max_burst_size=3
        )
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.calls), 3)  # the burst
        for job_id in list(self.deliverer.pending):
            self.deliverer.answer(job_id)
        self.clock.advance(0.5)  # one more token
        self.assertEqual(len(self.deliverer.calls), 4)
        self.clock.advance(1.0)  # two more
        self.assertEqual(len(self.deliverer.calls), 6)

    def test_reconfigure_changes_limits_in_place(self):
        self.push(6)
        dispatcher = self.make(max_workers=1)
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.calls), 1)
        dispatcher.reconfigure(QueueDefinition("q", 200, 4))
        self.clock.advance(0)
        self.assertEqual(len(self.deliverer.calls), 4)
        self.assertEqual(dispatcher.worker_stats()["total_workers"], 4)

    def test_stop_waits_for_in_flight_deliveries(self):
        ids = self.push(2)
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        stopped = dispatcher.stopService()
        self.assertNoResult(stopped)
        self.push(1)
        dispatcher.kick()
        self.clock.advance(1)
        self.assertEqual(len(self.deliverer.calls), 2)  # no new grabs while stopping
        self.deliverer.answer(ids[0])
        self.deliverer.answer(ids[1])
        self.clock.advance(0.01)
        self.successResultOf(stopped)
        self.assertEqual(self.state().grabbed, 0)
        self.assertEqual(self.state().waiting, 1)

    def test_stop_timeout_returns_jobs_to_the_queue(self):
        self.push(2)
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        stopped = dispatcher.stopService()
        self.clock.advance(5.1)
        self.successResultOf(stopped)
        counts = self.state()
        self.assertEqual((counts.grabbed, counts.waiting), (0, 2))

    def test_previous_process_grabbed_jobs_are_recovered(self):
        ids = self.push(2)
        self.successResultOf(self.store.grab("q", 2, 7))  # an earlier process, killed
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(sorted(job_id for _, job_id in self.deliverer.calls), ids)

    def test_orphans_of_a_lost_grab_answer_are_released(self):
        ids = self.push(3)
        dispatcher = self.make(max_workers=5)
        real_grab = self.store.grab
        calls = []

        def lossy_grab(queue_name, limit, grabber_id):
            calls.append(limit)
            d = real_grab(queue_name, limit, grabber_id)
            if len(calls) == 1:  # committed, but the answer is lost
                d.addCallback(lambda _: (_ for _ in ()).throw(ConnectionError("lost")))
            return d

        self.store.grab = lossy_grab
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(self.deliverer.calls, [])
        self.assertEqual(self.state().grabbed, 3)
        self.clock.advance(1.0)  # paused, then the next poll reconciles
        self.clock.advance(0.2)
        self.clock.advance(0)
        self.assertEqual(sorted(j for _, j in self.deliverer.calls), ids)

    def test_jobs_grabbed_as_the_lease_is_lost_are_put_back(self):
        """A grab answered after the lease was lost delivers nothing."""
        self.push(3)
        dispatcher = self.make(max_workers=5)
        answers = self.hold_grab_answers()
        dispatcher.startService()
        self.clock.advance(0)
        self.assertEqual(len(answers), 1)
        answer, committed = answers[0]
        jobs = self.successResultOf(committed)
        self.assertEqual(self.state().grabbed, 3)
        # The process was paused: the lease ran out while the answer was on
        # its way.
        dispatcher.lease.held = lambda: False
        answer.callback(jobs)
        self.clock.advance(0)
        self.assertEqual(self.deliverer.calls, [])
        counts = self.state()
        self.assertEqual((counts.grabbed, counts.waiting), (0, 3))

    def test_stop_waits_for_a_grab_in_flight_and_puts_its_jobs_back(self):
        self.push(3)
        dispatcher = self.make(max_workers=5)
        answers = self.hold_grab_answers()
        dispatcher.startService()
        self.clock.advance(0)
        [(answer, committed)] = answers
        stopped = dispatcher.stopService()
        self.assertNoResult(stopped)  # the grab's answer is still to come
        answer.callback(self.successResultOf(committed))
        self.clock.advance(0)
        self.successResultOf(stopped)
        self.assertEqual(self.deliverer.calls, [])
        counts = self.state()
        self.assertEqual((counts.grabbed, counts.waiting), (0, 3))

    def test_pushed_jobs_committed_as_the_lease_is_lost_are_put_back(self):
        """A reserved push whose commit is answered after the lease was lost delivers nothing."""
        dispatcher = self.make(max_workers=3)
        dispatcher.startService()
        self.clock.advance(0)
        grabber_id, granted = dispatcher.reserve(2)
        self.assertEqual(granted, 2)
        job = NewJob(category="c", url="http://worker/")
        stored = self.successResultOf(self.store.push([PushEntry("q", job, grabber_id)] * 2))
        self.assertEqual(self.state().grabbed, 2)
        dispatcher.lease.held = lambda: False  # paused past the lease's expiry
        dispatcher.pushed(stored, grabber_id, granted)
        self.clock.advance(0)
        self.assertEqual(self.deliverer.calls, [])
        counts = self.state()
        self.assertEqual((counts.grabbed, counts.waiting), (0, 2))
        self.assertEqual(dispatcher.reserve(3), (None, 0))  # no lease: nothing reserved

    def test_completion_kinds_reach_events(self):
        ids = self.push(1, max_retries=1)
        seen = []

        class Recorder:
            def pushed(self, *a):
                pass

            def popped(self, queue_name, jobs):
                seen.append(("popped", [j.id for j in jobs]))

            def finished(self, queue_name, completion, duration):
                seen.append(("finished", completion.kind))

        dispatcher = self.make()
        dispatcher._events = Recorder()
        dispatcher.startService()
        self.clock.advance(0)
        self.deliverer.answer(ids[0], "failure")
        self.assertEqual(seen, [("popped", ids), ("finished", CompletionKind.RETRY)])

    def test_inspection_states(self):
        self.push(2)
        self.push(1, run_after=60)
        dispatcher = self.make(max_workers=1)
        dispatcher.startService()
        self.clock.advance(0)
        for state, expected in ((JobState.GRABBED, 1), (JobState.WAITING, 1), (JobState.DEFERRED, 1)):
            page = self.successResultOf(self.store.list_jobs("q", state, 10, None, True))
            self.assertEqual(len(page.items), expected, state)
