"""
Unit tests of the dispatch side of job options (backoff, jitter,
Retry-After, the success rule, extra headers, deadlines) and of queue
control (pause, purge, cancel), with a task.Clock, the in-memory and
sqlite stores, a scripted deliverer and StubTreq.
"""

from __future__ import annotations

import random
from typing import List, Tuple

import attr
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from fireworq.dispatch.delivery import HTTPDeliverer
from fireworq.dispatch.cancels import CANCEL_POLL_INTERVAL
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import EventFanout
from fireworq.joboptions.values import JobOptions
from fireworq.lease.sole import SoleLease
from fireworq.model import (
    Completion,
    CompletionKind,
    FailureOrder,
    Job,
    JobState,
    NewJob,
    PushEntry,
    QueueDefinition,
    Result,
)
from fireworq.stats import QueueStats
from fireworq.store.interface import NodeInfo
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from fireworq.store.sqlite import open_sqlite
from tests.support.deliverers import ScriptedDeliverer

NODE = NodeInfo("node-1", "localhost")
START = 1_700_000_000


class Expiries:
    """An event observer that records expired jobs (as the metrics count them)."""

    def __init__(self) -> None:
        self.seen: List[Tuple[str, int]] = []

    def pushed(self, queue_name, jobs):
        pass

    def popped(self, queue_name, jobs):
        pass

    def finished(self, queue_name, completion, duration):
        pass

    def expired(self, queue_name, jobs):
        self.seen.extend((queue_name, job.id) for job in jobs)


class DispatchOptionsTests(SynchronousTestCase):
    """Retry timing, deadlines, pause and cancel in the dispatcher (memory store)."""

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(START)
        self.store = MemoryJobStore(clock=self.now_ms)
        self.deliverer = ScriptedDeliverer()
        self.observer = Expiries()
        self.stats = QueueStats(self.clock, self.now_ms)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def make(self, **definition) -> QueueDispatcher:
        fields = {"name": "q", "polling_interval": 100, "max_workers": 4}
        fields.update(definition)
        spec = QueueDefinition(**fields)
        self.successResultOf(self.store.prepare_queue(spec.name))
        lease = SoleLease(spec.name, self.store, NODE, 42, self.clock)
        dispatcher = QueueDispatcher(
            spec, self.store, lease, self.deliverer,
            EventFanout([self.stats, self.observer]), self.clock, shutdown_timeout=5,
        )
        self.addCleanup(lambda: dispatcher.running and dispatcher.stopService())
        return dispatcher

    def push(self, **fields) -> int:
        job = NewJob(category="c", url="http://worker/", **fields)
        return self.successResultOf(self.store.push([PushEntry("q", job)]))[0].id

    def job(self, job_id: int) -> Job:
        return self.successResultOf(self.store.find_job("q", job_id))

    def failures(self):
        return self.successResultOf(self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items

    def fail_once(self, job_id: int, result: Result = Result("failure", 500, "no")) -> float:
        """Answer the pending delivery of ``job_id`` and return the wait before its next try (s)."""
        self.deliverer.answer(job_id, result)
        self.clock.advance(0.01)  # the completion batch is written
        job = self.job(job_id)
        self.assertEqual(job.status, "claimed")
        return (job.next_try - self.now_ms()) / 1000.0

    def test_backoff_and_cap(self):
        """Waits grow by retry_backoff from retry_delay and stop at retry_max_delay."""
        job_id = self.push(
            max_retries=5, retry_delay=2,
            options=JobOptions(retry_backoff=2.0, retry_max_delay=5),
        )
        self.make().startService()
        waits = []
        for _ in range(4):
            self.clock.advance(0)
            waits.append(round(self.fail_once(job_id), 1))
            self.clock.advance(waits[-1] + 0.1)  # due again: the next poll grabs it
        self.assertEqual(waits, [2.0, 4.0, 5.0, 5.0])

    def test_jitter_within_upper_half(self):
        job_id = self.push(
            max_retries=20, retry_delay=8, options=JobOptions(retry_jitter=True),
        )
        self.make().startService()
        waits = []
        for _ in range(10):
            self.clock.advance(0)
            waits.append(self.fail_once(job_id))
            self.clock.advance(8.1)
        self.assertTrue(all(3.99 <= w <= 8.0 for w in waits), waits)
        self.assertGreater(len({round(w, 3) for w in waits}), 1, "jitter spreads the waits")

    def test_retry_after_is_a_floor(self):
        """A Retry-After longer than the job's wait raises it, for a Part A job too."""
        job_id = self.push(max_retries=3, retry_delay=1)
        self.make().startService()
        self.clock.advance(0)
        wait = self.fail_once(job_id, Result("failure", 503, "busy", retry_after=30.0))
        self.assertAlmostEqual(wait, 30.0, delta=0.02)
        # A shorter Retry-After does not shorten the job's own wait.
        self.clock.advance(30.1)
        wait = self.fail_once(job_id, Result("failure", 503, "busy", retry_after=0.0))
        self.assertAlmostEqual(wait, 1.0, delta=0.02)

    def test_retry_after_of_connection_errors_too(self):
        """Every retried failure kind follows the policy (an internal failure too)."""
        job_id = self.push(max_retries=3, retry_delay=1, options=JobOptions(retry_backoff=3.0))
        self.make().startService()
        self.clock.advance(0)
        self.assertAlmostEqual(self.fail_once(job_id, Result("internal-failure", 0, "refused")), 1.0, delta=0.02)
        self.clock.advance(1.1)
        self.assertAlmostEqual(self.fail_once(job_id, Result("internal-failure", 0, "refused")), 3.0, delta=0.02)

    def test_part_a_job_keeps_fixed_delay(self):
        job_id = self.push(max_retries=3, retry_delay=7)
        self.make().startService()
        self.clock.advance(0)
        self.assertAlmostEqual(self.fail_once(job_id), 7.0, delta=0.02)

    def test_expired_at_grab(self):
        """A job grabbed past its deadline is not delivered: failure log, status expired."""
        job_id = self.push(options=JobOptions(deadline=5))
        self.clock.advance(6)
        self.make().startService()
        self.clock.advance(0)
        self.clock.advance(0.01)
        self.assertEqual(self.deliverer.calls, [])
        [failed] = self.failures()
        self.assertEqual(failed.job_id, job_id)
        self.assertEqual((failed.result.status, failed.result.code), ("expired", 0))
        self.assertIn("never tried", failed.result.message)
        self.assertEqual(self.observer.seen, [("q", job_id)])
        self.assertIsNone(self.job(job_id))

    def test_expires_instead_of_a_retry_after_the_deadline(self):
        job_id = self.push(max_retries=5, retry_delay=10, options=JobOptions(deadline=5))
        self.make().startService()
        self.clock.advance(0)
        self.deliverer.answer(job_id, Result("failure", 500, "down"))
        self.clock.advance(0.01)
        [failed] = self.failures()
        self.assertEqual(failed.result.status, "expired")
        self.assertIn("after 1 attempt", failed.result.message)
        self.assertIn("down", failed.result.message)
        self.assertEqual(self.observer.seen, [("q", job_id)])

    def test_retry_within_deadline(self):
        job_id = self.push(max_retries=5, retry_delay=1, options=JobOptions(deadline=60))
        self.make().startService()
        self.clock.advance(0)
        self.assertAlmostEqual(self.fail_once(job_id), 1.0, delta=0.02)
        self.assertEqual(self.failures(), [])

    def test_2xx_outcome_completes(self):
        job_id = self.push(max_retries=2, options=JobOptions(success="2xx"))
        self.make().startService()
        self.clock.advance(0)
        self.deliverer.answer(job_id, Result("ok", 204, "", outcome="success"))
        self.clock.advance(0.01)
        self.assertIsNone(self.job(job_id))
        self.assertEqual(self.failures(), [])

    def test_paused_queue_dispatches_nothing(self):
        job_id = self.push()
        dispatcher = self.make(paused=True)
        dispatcher.startService()
        self.clock.advance(1)
        self.assertEqual(self.deliverer.calls, [])
        self.assertEqual(dispatcher.reserve(1), (None, 0), "no immediate dispatch while paused")
        dispatcher.reconfigure(attr.evolve(dispatcher.definition, paused=False))
        self.clock.advance(0)
        self.assertEqual(self.deliverer.calls, [("q", job_id)])

    def test_pause_lets_inflight_finish(self):
        first = self.push()
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        second = self.push()
        dispatcher.reconfigure(attr.evolve(dispatcher.definition, paused=True))
        self.clock.advance(1)
        self.assertEqual(self.deliverer.calls, [("q", first)])
        self.deliverer.answer(first, Result("success", 200))
        self.clock.advance(0.01)
        self.assertIsNone(self.job(first))
        self.assertEqual(self.job(second).status, "claimed")

    def test_cancel_local(self):
        """A cancel on the holding node aborts the delivery at once; the job is deleted, not logged."""
        job_id = self.push(max_retries=3)
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        canceled = self.successResultOf(self.store.cancel_job("q", job_id))
        self.assertEqual(canceled.status, "grabbed")
        self.assertTrue(dispatcher.cancel(job_id))
        self.assertEqual(self.deliverer.canceled, [job_id])
        self.clock.advance(0.01)
        self.assertIsNone(self.job(job_id))
        self.assertEqual(self.failures(), [])
        self.assertEqual(dispatcher.in_flight, 0)
        self.assertEqual(dispatcher.free_workers, 4)
        self.flushLoggedErrors(CancelledError)

    def test_cancel_seen_by_polling_marks(self):
        """A cancel recorded through another node is noticed within the poll interval."""
        job_id = self.push(max_retries=3)
        dispatcher = self.make()
        dispatcher.startService()
        self.clock.advance(0)
        self.successResultOf(self.store.cancel_job("q", job_id))
        self.assertEqual(self.deliverer.canceled, [])
        self.clock.advance(CANCEL_POLL_INTERVAL)
        self.assertEqual(self.deliverer.canceled, [job_id])
        self.clock.advance(0.01)
        self.assertIsNone(self.job(job_id))
        self.assertEqual(self.failures(), [])
        self.assertLessEqual(CANCEL_POLL_INTERVAL, 0.5)
        self.flushLoggedErrors(CancelledError)

    def test_no_mark_polling_while_idle(self):
        """Cancel marks are read only while deliveries run."""
        calls = []
        real = self.store.canceling_jobs
        self.store.canceling_jobs = lambda *a: calls.append(a) or real(*a)
        job_id = self.push()
        self.make().startService()
        self.clock.advance(0)
        self.clock.advance(CANCEL_POLL_INTERVAL)
        self.assertEqual(len(calls), 1)
        self.deliverer.answer(job_id, Result("success", 200))
        for _ in range(10):
            self.clock.advance(CANCEL_POLL_INTERVAL)
        self.assertEqual(len(calls), 1)


class RetryHeaderResource(Resource):
    """A worker answering with a fixed code, body and extra headers; records request headers."""

    isLeaf = True

    def __init__(self, code: int, body: bytes, headers=()) -> None:
        super().__init__()
        self.code, self.body, self.headers = code, body, list(headers)
        self.seen = []

    def render_POST(self, request):
        self.seen.append(request.requestHeaders)
        request.setResponseCode(self.code)
        for name, value in self.headers:
            request.setHeader(name, value)
        return self.body


def a_job(**fields) -> Job:
    values = dict(
        id=7, category="c", url="http://worker.example/", payload="{}", status="grabbed",
        created_at=1, next_try=1, timeout=0, fail_count=0, retry_count=1, retry_delay=0,
    )
    values.update(fields)
    return Job(**values)


class DeliveryOptionsTests(SynchronousTestCase):
    def deliver(self, resource, job, now=START):
        clock = Clock()
        clock.advance(now)
        stub = StubTreq(resource)
        d = HTTPDeliverer(stub, "Fireworq/test", clock).deliver("q", job)
        stub.flush()
        return self.successResultOf(d)

    def test_job_headers_on_delivery(self):
        resource = RetryHeaderResource(200, b'{"status":"success"}')
        options = JobOptions(headers=(("Authorization", "Bearer x"), ("User-Agent", "mine/1")))
        self.deliver(resource, a_job(options=options))
        headers = resource.seen[0]
        self.assertEqual(headers.getRawHeaders(b"authorization"), [b"Bearer x"])
        self.assertEqual(headers.getRawHeaders(b"user-agent"), [b"mine/1"])
        self.assertEqual(headers.getRawHeaders(b"x-fireworq-job-id"), [b"7"])

    def test_retry_after_seconds(self):
        resource = RetryHeaderResource(503, b'{"status":"failure"}', [(b"Retry-After", b"120")])
        result = self.deliver(resource, a_job())
        self.assertEqual((result.status, result.retry_after), ("failure", 120.0))

    def test_retry_after_date(self):
        resource = RetryHeaderResource(
            429, b"busy", [(b"Retry-After", b"Tue, 14 Nov 2023 22:15:20 GMT")]
        )
        result = self.deliver(resource, a_job(), now=1_700_000_000)  # 22:13:20 GMT
        self.assertEqual(result.retry_after, 120.0)

    def test_no_retry_after_on_success(self):
        resource = RetryHeaderResource(200, b'{"status":"success"}', [(b"Retry-After", b"5")])
        self.assertIsNone(self.deliver(resource, a_job()).retry_after)

    def test_2xx_rule(self):
        resource = RetryHeaderResource(202, b"accepted")
        result = self.deliver(resource, a_job(options=JobOptions(success="2xx")))
        self.assertTrue(result.is_success)
        self.assertEqual(result.status, "success")
        # Without the rule the same answer is a failure (A1).
        self.assertFalse(self.deliver(resource, a_job()).is_success)

    def test_2xx_rule_keeps_body_status(self):
        resource = RetryHeaderResource(200, b'{"status":"ok"}')
        result = self.deliver(resource, a_job(options=JobOptions(success="2xx")))
        self.assertEqual((result.status, result.is_success), ("ok", True))


class StoreControlMixin:
    """Purge and cancel marks, for every store (``self.store``, its clock at ``now``)."""

    now = START * 1000

    async def push(self, **fields) -> Job:
        job = NewJob(category="c", url="http://w/", **fields)
        return (await self.store.push([PushEntry("q", job)]))[0]

    async def test_purge_counts_waiting_and_deferred(self):
        for _ in range(3):
            await self.push()
        await self.push(run_after=600)
        self.assertEqual(len(await self.store.grab("q", 1, 5)), 1)
        self.assertEqual(await self.store.purge("q"), 3)
        counts = await self.store.count_jobs("q")
        self.assertEqual((counts.waiting, counts.deferred, counts.grabbed), (0, 0, 1))
        self.assertEqual(await self.store.purge("q"), 0)

    async def test_cancel_claimed_deletes(self):
        job = await self.push()
        self.assertEqual((await self.store.cancel_job("q", job.id)).status, "claimed")
        self.assertIsNone(await self.store.find_job("q", job.id))
        self.assertIsNone(await self.store.cancel_job("q", job.id))

    async def test_cancel_grabbed_marks(self):
        job = await self.push(max_retries=3)
        [grabbed] = await self.store.grab("q", 1, 5)
        self.assertEqual((await self.store.cancel_job("q", job.id)).status, "grabbed")
        self.assertEqual((await self.store.find_job("q", job.id)).status, "grabbed")
        self.assertEqual(await self.store.canceling_jobs("q", 5), [job.id])
        self.assertEqual(await self.store.canceling_jobs("q", 6), [])
        # Whatever outcome arrives, a canceled job is neither retried nor logged.
        await self.store.complete("q", [Completion(grabbed, CompletionKind.RETRY, Result("failure"))], 5)
        self.assertIsNone(await self.store.find_job("q", job.id))

    async def test_canceled_failure_not_logged(self):
        job = await self.push()
        [grabbed] = await self.store.grab("q", 1, 5)
        await self.store.cancel_job("q", job.id)
        await self.store.complete("q", [Completion(grabbed, CompletionKind.FAIL, Result("failure"))], 5)
        self.assertIsNone(await self.store.find_job("q", job.id))
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertEqual(page.items, [])

    async def test_cancel_completion_deletes(self):
        job = await self.push()
        [grabbed] = await self.store.grab("q", 1, 5)
        await self.store.complete("q", [Completion(grabbed, CompletionKind.CANCEL, Result("x"))], 5)
        self.assertIsNone(await self.store.find_job("q", job.id))
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertEqual(page.items, [])

    async def test_canceled_release_and_recover_delete(self):
        first, second = await self.push(), await self.push()
        await self.store.grab("q", 2, 5)
        await self.store.cancel_job("q", first.id)
        await self.store.cancel_job("q", second.id)
        self.assertEqual(await self.store.release("q", [first.id], 5), 1)
        self.assertIsNone(await self.store.find_job("q", first.id))
        self.assertEqual(await self.store.recover("q", 6), 1)
        self.assertIsNone(await self.store.find_job("q", second.id))

    async def test_retry_wait_ms(self):
        job = await self.push(max_retries=3, retry_delay=100)
        [grabbed] = await self.store.grab("q", 1, 5)
        completion = Completion(grabbed, CompletionKind.RETRY, Result("failure"), retry_wait_ms=2500)
        await self.store.complete("q", [completion], 5)
        stored = await self.store.find_job("q", job.id)
        self.assertEqual(stored.status, "claimed")
        self.assertEqual(stored.next_try, self.now + 2500)
        self.assertEqual((stored.fail_count, stored.retry_count), (1, 2))
        # Without a wait: the job's retry_delay (A1).
        self.now += 2500
        [grabbed] = await self.store.grab("q", 1, 5)
        await self.store.complete("q", [Completion(grabbed, CompletionKind.RETRY, Result("failure"))], 5)
        self.assertEqual((await self.store.find_job("q", job.id)).next_try, self.now + 100_000)


class MemoryStoreControlTests(StoreControlMixin, TestCase):
    def setUp(self):
        self.store = MemoryJobStore(clock=lambda: self.now)
        return self.store.prepare_queue("q")


class SqliteStoreControlTests(StoreControlMixin, TestCase):
    def setUp(self):
        self.store, self.repository = open_sqlite(self.mktemp() + ".sqlite3", clock=lambda: self.now)
        return self.store.start()

    def tearDown(self):
        return self.store.stop()

    async def test_repository_keeps_paused(self):
        await self.repository.put_queue(QueueDefinition("p", 100, 2, paused=True))
        self.assertTrue((await self.repository.find_queue("p")).paused)
        await self.repository.put_queue(QueueDefinition("p", 100, 2))
        self.assertFalse((await self.repository.find_queue("p")).paused)


class MySQLStoreControlTests(StoreControlMixin, TestCase):
    """The same on MySQL (a fresh database of the throwaway MariaDB; its clock injected)."""

    def setUp(self):
        from twisted.internet import reactor

        from fireworq.server.stores import open_mysql
        from tests.support import mariadb

        database = mariadb.database_for(self)
        self.store, self.repository, leases = open_mysql(
            database.dsn, None, reactor, fence_grabs=False, clock=lambda: self.now
        )
        self.addCleanup(leases.stop)
        self.addCleanup(self.repository.stop)
        self.addCleanup(self.store.stop)
        d = self.store.start()
        d.addCallback(lambda _: self.repository.start())
        d.addCallback(lambda _: self.store.prepare_queue("q"))
        return d

    async def test_repository_keeps_paused(self):
        await self.repository.put_queue(QueueDefinition("p", 100, 2, paused=True))
        self.assertTrue((await self.repository.find_queue("p")).paused)
        await self.repository.put_queue(QueueDefinition("p", 100, 2))
        self.assertFalse((await self.repository.find_queue("p")).paused)


class RepositoryPausedTests(SynchronousTestCase):
    def test_definition_json(self):
        definition = QueueDefinition("q", 100, 2)
        self.assertNotIn("paused", definition.to_json())
        self.assertIs(attr.evolve(definition, paused=True).to_json()["paused"], True)

    def test_memory_repository_keeps_paused(self):
        repository = MemoryRepository()
        self.successResultOf(repository.put_queue(QueueDefinition("q", 100, 2, paused=True)))
        self.assertTrue(self.successResultOf(repository.find_queue("q")).paused)
