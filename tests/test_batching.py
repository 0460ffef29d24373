"""Unit tests of push batching, completion batching, the throttle and rate counters."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq.backoff import Backoff
from fireworq.dispatch.completion import CompletionBatcher
from fireworq.dispatch.throttle import TokenBucket
from fireworq.model import Completion, CompletionKind, Job, NewJob, PushEntry, Result
from fireworq.pushing import PushBatcher
from fireworq.stats import RateCounter
from fireworq.store.interface import JobTooLarge


class RecordingStore:
    """Records push/complete calls; answers when told."""

    def __init__(self):
        self.pushes = []
        self.completes = []

    def push(self, entries):
        d = Deferred()
        self.pushes.append((list(entries), d))
        return d

    def complete(self, queue_name, completions, grabber_id):
        d = Deferred()
        self.completes.append((queue_name, list(completions), grabber_id, d))
        return d


def entry(n: int) -> PushEntry:
    return PushEntry("q", NewJob("c", f"http://w/{n}"))


def stored(entries):
    return [Job(i + 1, "c", e.job.url, "", "claimed", 0, 0, 0, 0, 0, 0) for i, e in enumerate(entries)]


class PushBatcherTests(SynchronousTestCase):
    def test_pushes_in_one_turn_share_a_write(self):
        clock, store = Clock(), RecordingStore()
        batcher = PushBatcher(store, clock)
        a = batcher.push([entry(1)])
        b = batcher.push([entry(2), entry(3)])
        self.assertEqual(store.pushes, [])
        clock.advance(0)
        self.assertEqual(len(store.pushes), 1)
        entries, d = store.pushes[0]
        self.assertEqual(len(entries), 3)
        self.assertNoResult(a)
        d.callback(stored(entries))
        self.assertEqual([j.url for j in self.successResultOf(a)], ["http://w/1"])
        self.assertEqual([j.url for j in self.successResultOf(b)], ["http://w/2", "http://w/3"])

    def test_pushes_during_a_write_form_the_next_batch(self):
        clock, store = Clock(), RecordingStore()
        batcher = PushBatcher(store, clock, concurrency=1)
        batcher.push([entry(1)])
        clock.advance(0)
        later = [batcher.push([entry(n)]) for n in range(2, 6)]
        clock.advance(0)
        self.assertEqual(len(store.pushes), 1)
        store.pushes[0][1].callback(stored(store.pushes[0][0]))
        self.assertEqual(len(store.pushes), 2)
        self.assertEqual(len(store.pushes[1][0]), 4)
        store.pushes[1][1].callback(stored(store.pushes[1][0]))
        for d in later:
            self.successResultOf(d)

    def test_failure_reaches_every_pusher_of_the_batch(self):
        clock, store = Clock(), RecordingStore()
        batcher = PushBatcher(store, clock)
        a, b = batcher.push([entry(1)]), batcher.push([entry(2)])
        clock.advance(0)
        store.pushes[0][1].errback(RuntimeError("down"))
        self.failureResultOf(a, RuntimeError)
        self.failureResultOf(b, RuntimeError)

    def test_a_job_too_large_fails_only_its_own_push(self):
        clock, store = Clock(), RecordingStore()
        batcher = PushBatcher(store, clock)
        small, big = batcher.push([entry(1)]), batcher.push([entry(2)])
        clock.advance(0)
        store.pushes[0][1].errback(JobTooLarge("too large"))
        # Each push is written again on its own.
        self.assertEqual([[e.job.url for e in entries] for entries, _ in store.pushes[1:]],
                         [["http://w/1"], ["http://w/2"]])
        store.pushes[1][1].callback(stored(store.pushes[1][0]))
        store.pushes[2][1].errback(JobTooLarge("too large"))
        self.assertEqual([j.url for j in self.successResultOf(small)], ["http://w/1"])
        self.failureResultOf(big, JobTooLarge)

    def test_batches_are_bounded(self):
        clock, store = Clock(), RecordingStore()
        batcher = PushBatcher(store, clock, concurrency=2, max_batch=3)
        for n in range(7):
            batcher.push([entry(n)])
        self.assertEqual([len(e) for e, _ in store.pushes], [3, 3])


def completion(job_id: int, kind=CompletionKind.SUCCESS) -> Completion:
    return Completion(Job(job_id, "c", "u", "", "grabbed", 0, 0, 0, 0, 0, 0), kind, Result("success"))


class CompletionBatcherTests(SynchronousTestCase):
    def test_collects_for_a_few_milliseconds(self):
        clock, store = Clock(), RecordingStore()
        batcher = CompletionBatcher(store, "q", clock, delay=0.002)
        batcher.add(completion(1), 5)
        batcher.add(completion(2), 5)
        self.assertEqual(store.completes, [])
        clock.advance(0.002)
        self.assertEqual(len(store.completes), 1)
        self.assertEqual([c.job.id for c in store.completes[0][1]], [1, 2])
        self.assertEqual(store.completes[0][2], 5)

    def test_groups_by_grabber_and_retries_failed_writes(self):
        clock, store = Clock(), RecordingStore()
        batcher = CompletionBatcher(
            store, "q", clock, delay=0.001, retry=Backoff(clock, 0.5, 0.5, jitter=0)
        )
        batcher.add(completion(1), 5)
        batcher.add(completion(2), 6)
        drained = batcher.drain()
        self.assertEqual(len(store.completes), 1)
        store.completes[0][3].errback(RuntimeError("db down"))
        self.assertEqual(batcher.pending, 2)
        self.assertNoResult(drained)
        clock.advance(0.5)
        self.assertEqual(len(store.completes), 2)
        store.completes[1][3].callback(None)
        self.assertEqual(len(store.completes), 3)
        self.assertEqual(store.completes[2][2], 6)
        store.completes[2][3].callback(None)
        self.successResultOf(drained)
        self.assertEqual(batcher.pending, 0)

    def test_failed_writes_back_off_and_a_success_resets(self):
        """Retries wait longer each time (fireworq.backoff); completions added meanwhile wait too."""
        clock, store = Clock(), RecordingStore()
        batcher = CompletionBatcher(
            store, "q", clock, delay=0.001, max_batch=2, retry=Backoff(clock, 0.1, 5.0, jitter=0)
        )
        batcher.add(completion(1), 5)
        clock.advance(0.001)
        store.completes[0][3].errback(RuntimeError("db down"))
        batcher.add(completion(2), 5)  # a full batch, but the store is failing
        batcher.add(completion(3), 5)
        clock.advance(0.099)
        self.assertEqual(len(store.completes), 1)
        clock.advance(0.001)
        self.assertEqual(len(store.completes), 2)
        store.completes[1][3].errback(RuntimeError("db down"))
        clock.advance(0.199)
        self.assertEqual(len(store.completes), 2)
        clock.advance(0.001)
        self.assertEqual(len(store.completes), 3)
        store.completes[2][3].callback(None)  # the first two written
        clock.advance(0.001)  # the rest after the usual batching delay
        self.assertEqual(len(store.completes), 4)
        store.completes[3][3].errback(RuntimeError("db down again"))
        clock.advance(0.1)  # a success reset the delay to its first value
        self.assertEqual(len(store.completes), 5)
        store.completes[4][3].callback(None)
        self.assertEqual(batcher.pending, 0)

    def test_drain_retries_at_once(self):
        clock, store = Clock(), RecordingStore()
        batcher = CompletionBatcher(store, "q", clock, delay=0.001)
        batcher.add(completion(1), 5)
        clock.advance(0.001)
        store.completes[0][3].errback(RuntimeError("db down"))
        drained = batcher.drain()
        self.assertEqual(len(store.completes), 2)
        store.completes[1][3].callback(None)
        self.successResultOf(drained)
        clock.advance(10)
        self.assertEqual(len(store.completes), 2)  # the cancelled retry does not write

    def test_full_batch_is_written_at_once(self):
        clock, store = Clock(), RecordingStore()
        batcher = CompletionBatcher(store, "q", clock, max_batch=3)
        for n in range(3):
            batcher.add(completion(n), 1)
        self.assertEqual(len(store.completes), 1)


class TokenBucketTests(SynchronousTestCase):
    def test_rate_and_burst(self):
        clock = Clock()
        bucket = TokenBucket(2.0, 3, clock)
        self.assertEqual(bucket.available(), 3)
        bucket.take(3)
        self.assertEqual(bucket.available(), 0)
        self.assertAlmostEqual(bucket.wait_time(), 0.5)
        clock.advance(0.5)
        self.assertEqual(bucket.available(), 1)
        clock.advance(10)
        self.assertEqual(bucket.available(), 3)

    def test_fractional_rate(self):
        clock = Clock()
        bucket = TokenBucket(0.5, 1, clock)
        bucket.take(1)
        clock.advance(1.9)
        self.assertEqual(bucket.available(), 0)
        clock.advance(0.1)
        self.assertEqual(bucket.available(), 1)


class RateCounterTests(SynchronousTestCase):
    def test_counts_the_last_second(self):
        clock = Clock()
        counter = RateCounter(clock)
        counter.add(3)
        clock.advance(0.5)
        counter.add(2)
        self.assertEqual(counter.rate(), 5)
        clock.advance(0.6)
        self.assertEqual(counter.rate(), 2)
        clock.advance(5)
        self.assertEqual(counter.rate(), 0)
