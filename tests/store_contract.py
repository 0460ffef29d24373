"""
The store contract: one suite that every driver (in-memory, sqlite, MySQL)
passes, so that the three behave the same behind L{IJobStore} and
L{IRepository}.

A driver's test module subclasses the mixins together with
L{twisted.trial.unittest.TestCase} and provides C{makeStores}::

    class SqliteJobStoreContractTests(JobStoreContractMixin, TestCase):
        driverName = "sqlite"

        def makeStores(self, clock):
            ...  # a started job store and a ready repository over an
            ...  # empty database, cleanup registered with self.addCleanup
            return job_store, repository     # or a Deferred firing with it

C{clock} is a L{ContractClock}: a callable returning milliseconds since the
epoch.  A driver that stamps times with the database clock (MySQL) ignores
it and sets C{usesInjectedClock = False}; the tests that move time then
skip, and every other test holds with a real clock too: waiting jobs are
pushed with run_after 0, deferred ones with 3600 s, and times are only
compared by relation.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional, Sequence, Tuple

import attr
from twisted.internet.defer import gatherResults, maybeDeferred
from zope.interface.verify import verifyObject

from fireworq.model import (
    Completion,
    CompletionKind,
    FailedJob,
    FailureOrder,
    Job,
    JobCounts,
    JobState,
    JobStatus,
    NewJob,
    Page,
    PushEntry,
    QueueDefinition,
    Result,
    Routing,
    job_ids,
    sort_key,
)
from fireworq.store.interface import IJobStore, IRepository

#: Seconds that make a job deferred for the whole test.
LATER = 3600

#: Payloads that must round-trip exactly.
PAYLOADS = [
    "",
    "plain text",
    '{"user":1,"items":[1,2.5,{"deep":null}],"flag":true}',
    '"a quoted JSON string"',
    "  leading and trailing whitespace\n\t",
    "h\u00e9llo \u2713 \u65e5\u672c\u8a9e \U0001f600 \u0645\u0631\u062d\u0628\u0627",
    "back\\slash 'single' \"double\" %s %% ? :name",
    "nul\x00inside",
    "0123456789abcdef" * 65536,  # 1 MiB
]


class ContractClock:
    """
    The clock handed to C{makeStores}: milliseconds since the epoch,
    standing still until L{advance}d.
    """

    def __init__(self, now: Optional[int] = None) -> None:
        self.now = int(time.time() * 1000) if now is None else now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += int(seconds * 1000)


def new_job(**fields: Any) -> NewJob:
    """A job for the worker at a fixed URL, category ``cat`` unless given."""
    fields.setdefault("category", "cat")
    fields.setdefault("url", "http://worker.test/work")
    return NewJob(**fields)


class StoreContractFixture:
    """
    What both mixins share: C{setUp} builds the stores with C{makeStores}.

    @ivar store: the job store.
    @ivar repository: the repository.
    @ivar clock: the L{ContractClock} given to C{makeStores}.
    """

    #: The driver's L{IJobStore.name}; None to accept any of the three.
    driverName: Optional[str] = None

    #: Whether the driver stamps times with the clock given to makeStores.
    usesInjectedClock = True

    #: Whether the driver names a queue's storage as the original's tables
    #: do (MySQL, protocol A9), so that names differing only in characters
    #: outside ``[0-9a-z_]`` share it; otherwise every exact name has its own.
    usesOriginalTableNames = False

    def makeStores(self, clock: ContractClock) -> Any:
        """
        Return (or fire with) C{(job_store, repository)}: started, over an
        empty database, with their cleanup registered via C{addCleanup}.
        """
        raise NotImplementedError("a driver's test case provides makeStores")

    async def setUp(self) -> None:
        self.clock = ContractClock()
        self.store, self.repository = await maybeDeferred(self.makeStores, self.clock)

    def needClock(self) -> None:
        """Skip the test unless the driver uses the injected clock."""
        if not self.usesInjectedClock:
            self.skipTest("the driver does not use the injected clock")


class JobStoreContractMixin(StoreContractFixture):
    """The contract of L{IJobStore}."""

    #: Whether L{IJobStore.recover} also returns jobs grabbed under a HIGHER
    #: grabber id than the recovering one.  Single-node stores (memory,
    #: sqlite): yes -- one process at a time is their only holder, so any
    #: other id is a dead predecessor's, even one above ours after the wall
    #: clock stepped back (their grabber id is time-based).  MySQL: no -- ids
    #: are lease epochs, which only rise per queue; a higher one is a NEWER
    #: holder's, whose in-flight jobs must stay its own (issue 19).
    recoversNewerGrabbers = True

    # Helpers

    async def prepared(self, *names: str) -> None:
        for name in names:
            await self.store.prepare_queue(name)

    async def push(self, queue: str, *jobs: NewJob) -> List[Job]:
        return await self.store.push([PushEntry(queue, job) for job in jobs])

    async def push_one(self, queue: str, **fields: Any) -> Job:
        [job] = await self.push(queue, new_job(**fields))
        return job

    async def complete(
        self, queue: str, grabber_id: int, *outcomes: Tuple[Job, CompletionKind, Result]
    ) -> None:
        await self.store.complete(
            queue,
            [Completion(job=job, kind=kind, result=result) for job, kind, result in outcomes],
            grabber_id,
        )

    async def listed(self, queue: str, state: JobState, descending: bool = False) -> List[Job]:
        page = await self.store.list_jobs(queue, state, 10000, None, descending)
        self.assertIsNone(page.next_key)
        return page.items

    async def walk_jobs(
        self, queue: str, state: JobState, limit: int, descending: bool
    ) -> List[Job]:
        """Follow next_key from the first page to the last; check each page."""
        items: List[Job] = []
        start = None
        for _ in range(10000):
            page = await self.store.list_jobs(queue, state, limit, start, descending)
            self.assertLessEqual(len(page.items), limit)
            items.extend(page.items)
            if page.next_key is None:
                return items
            self.assertEqual(len(page.items), limit)
            start = page.next_key
        self.fail("the walk does not end")

    async def walk_failed(self, queue: str, order: FailureOrder, limit: int) -> List[FailedJob]:
        items: List[FailedJob] = []
        start = None
        for _ in range(10000):
            page = await self.store.list_failed(queue, order, limit, start)
            self.assertLessEqual(len(page.items), limit)
            items.extend(page.items)
            if page.next_key is None:
                return items
            self.assertEqual(len(page.items), limit)
            start = page.next_key
        self.fail("the walk does not end")

    async def fail_jobs(self, queue: str, jobs: Sequence[Job], result: Result) -> List[FailedJob]:
        """
        Grab everything due (grabber 1), then FAIL ``jobs`` (due or already
        grabbed by 1) one call at a time, in order; return the failure log.
        """
        grabbed = {job.id: job for job in await self.store.grab(queue, 10000, 1)}
        for job in jobs:
            job = grabbed.get(job.id, job)
            await self.complete(queue, 1, (job, CompletionKind.FAIL, result))
        page = await self.store.list_failed(queue, FailureOrder.FAILED, 10000, None)
        return page.items

    def assertSameJobExceptState(self, actual: Job, expected: Job) -> None:
        for field in ("id", "category", "url", "payload", "created_at", "next_try",
                      "timeout", "fail_count", "retry_count", "retry_delay"):
            self.assertEqual(getattr(actual, field), getattr(expected, field), field)

    # Interface and lifecycle

    def test_provides_interface(self) -> None:
        self.assertTrue(verifyObject(IJobStore, self.store))
        self.assertIn(self.store.name, ("in-memory", "sqlite", "mysql"))
        if self.driverName is not None:
            self.assertEqual(self.store.name, self.driverName)

    async def test_ping(self) -> None:
        self.assertIsNone(await self.store.ping())

    async def test_prepare_queue_idempotent(self) -> None:
        await self.prepared("q", "q")
        job = await self.push_one("q")
        await self.prepared("q")
        self.assertEqual(await self.store.find_job("q", job.id), job)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1))

    # Push

    async def test_push_stores_fields(self) -> None:
        await self.prepared("q")
        job = new_job(category="cat/sub", url="http://worker.test/a?b=1", payload='{"a":1}',
                      max_retries=3, retry_delay=60, timeout=30)
        [stored] = await self.push("q", job)
        self.assertGreater(stored.id, 0)
        self.assertEqual(
            (stored.category, stored.url, stored.payload, stored.status, stored.timeout,
             stored.fail_count, stored.retry_count, stored.max_retries, stored.retry_delay,
             stored.grabber_id),
            ("cat/sub", "http://worker.test/a?b=1", '{"a":1}', "claimed", 30, 0, 3, 3, 60, None),
        )
        self.assertGreater(stored.created_at, 0)
        self.assertGreaterEqual(stored.next_try, stored.created_at)
        self.assertEqual(await self.store.find_job("q", stored.id), stored)

    async def test_push_run_after(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", run_after=LATER)
        self.assertGreaterEqual(job.next_try, job.created_at + LATER * 1000)
        self.assertEqual(await self.store.find_job("q", job.id), job)

    async def test_push_ids_increase(self) -> None:
        await self.prepared("q")
        first = await self.push_one("q")
        batch = await self.push("q", *[new_job(payload=str(i)) for i in range(5)])
        last = await self.push_one("q", run_after=LATER)
        ids = job_ids([first, *batch, last])
        self.assertGreater(ids[0], 0)
        self.assertEqual(ids, sorted(set(ids)))
        self.assertEqual([job.payload for job in batch], [str(i) for i in range(5)])

    async def test_push_empty_list(self) -> None:
        self.assertEqual(await self.store.push([]), [])

    async def test_push_batch_across_queues(self) -> None:
        await self.prepared("q1", "q2", "q3")
        names = ["q1", "q2", "q1", "q3", "q2", "q1"]
        entries = [PushEntry(name, new_job(category=f"c{i}", payload=f"{name}:{i}"))
                   for i, name in enumerate(names)]
        stored = await self.store.push(entries)
        self.assertEqual([job.payload for job in stored], [e.job.payload for e in entries])
        self.assertEqual([job.category for job in stored], [f"c{i}" for i in range(6)])
        for name in ("q1", "q2", "q3"):
            mine = [job for job, entry_name in zip(stored, names) if entry_name == name]
            ids = job_ids(mine)
            self.assertEqual(ids, sorted(set(ids)))
            self.assertEqual(
                sorted(job_ids(await self.listed(name, JobState.WAITING))), ids
            )
            for job in mine:
                self.assertEqual(await self.store.find_job(name, job.id), job)

    async def test_push_batch_is_atomic(self) -> None:
        await self.prepared("q1", "q2")
        entries = [
            PushEntry("q1", new_job(payload="good 1")),
            PushEntry("q2", new_job(payload="good 2")),
            PushEntry("q1", new_job(payload="lone surrogate \ud800 cannot be stored")),
            PushEntry("q2", new_job(payload="good 3")),
        ]
        await self.assertFailure(self.store.push(entries), Exception)
        for name in ("q1", "q2"):
            self.assertEqual(await self.store.count_jobs(name), JobCounts())
            self.assertEqual(await self.listed(name, JobState.WAITING), [])
        job = await self.push_one("q1", payload="after")
        self.assertEqual(await self.listed("q1", JobState.WAITING), [job])

    async def test_payload_round_trip(self) -> None:
        await self.prepared("q")
        batch = await self.push("q", *[new_job(payload=p) for p in PAYLOADS])
        singles = [await self.push_one("q", payload=p) for p in PAYLOADS]
        for job, payload in zip(batch + singles, PAYLOADS + PAYLOADS):
            self.assertEqual(job.payload, payload)
            found = await self.store.find_job("q", job.id)
            self.assertEqual(found.payload, payload)
        grabbed = await self.store.grab("q", 100, 1)
        self.assertEqual(sorted(j.payload for j in grabbed), sorted(PAYLOADS + PAYLOADS))
        failed = await self.fail_jobs("q", [grabbed[5]], Result("failure"))
        self.assertEqual(failed[0].payload, grabbed[5].payload)

    async def test_text_fields_round_trip(self) -> None:
        await self.prepared("q")
        url = "https://w\u00f6rker.test:8443/p\u00e4th/x?q=a%20b&r=\u2713#frag"
        category = "cat\u00e9gorie/\u65e5\u672c/x y"
        job = await self.push_one("q", url=url, category=category)
        found = await self.store.find_job("q", job.id)
        self.assertEqual((found.url, found.category), (url, category))

    # Grab

    async def test_push_already_grabbed(self) -> None:
        """A job pushed with a grabber id is stored grabbed by it (immediate dispatch)."""
        await self.prepared("q")
        direct, queued = await self.store.push(
            [PushEntry("q", new_job(payload="d"), grabber_id=7), PushEntry("q", new_job(payload="q"))]
        )
        self.assertEqual((direct.status, direct.grabber_id), (JobStatus.GRABBED.value, 7))
        self.assertEqual((queued.status, queued.grabber_id), (JobStatus.CLAIMED.value, None))
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1, grabbed=1))
        self.assertEqual([j.id for j in await self.store.grab("q", 10, 7)], [queued.id])
        await self.complete("q", 7, (direct, CompletionKind.SUCCESS, Result("success")))
        self.assertIsNone(await self.store.find_job("q", direct.id))
        [again] = await self.store.push([PushEntry("q", new_job(), grabber_id=7)])
        self.assertEqual(await self.store.recover("q", 8), 2)
        self.assertEqual((await self.store.find_job("q", again.id)).status, JobStatus.CLAIMED.value)

    async def test_grab_takes_due_jobs_in_order(self) -> None:
        await self.prepared("q")
        deferred = await self.push_one("q", run_after=LATER)
        waiting = [await self.push_one("q", payload=str(i)) for i in range(5)]
        expected = sorted(waiting, key=sort_key)

        first = await self.store.grab("q", 2, 7)
        self.assertEqual(job_ids(first), job_ids(expected[:2]))
        for job, original in zip(first, expected):
            self.assertEqual((job.status, job.grabber_id), ("grabbed", 7))
            self.assertSameJobExceptState(job, original)
            self.assertEqual(await self.store.find_job("q", job.id), job)

        rest = await self.store.grab("q", 10, 7)
        self.assertEqual(job_ids(rest), job_ids(expected[2:]))
        self.assertEqual(await self.store.grab("q", 10, 7), [])
        self.assertEqual(await self.store.find_job("q", deferred.id), deferred)

    async def test_grab_counts_attempts(self) -> None:
        """
        Every grab counts an attempt, persisted with it (bug 5): a job whose
        node died mid-delivery (recovered by the next holder) is delivered
        next as attempt 2, and a retry after that as attempt 3.
        """
        await self.prepared("q")
        job = await self.push_one("q", max_retries=3, retry_delay=0)
        self.assertEqual((job.attempts, job.attempt), (0, 1))
        [first] = await self.store.grab("q", 1, 1)
        self.assertEqual((first.attempts, first.attempt), (1, 1))
        self.assertEqual(await self.store.find_job("q", job.id), first)
        # Node 1 dies; node 2 takes the queue over and recovers the job.
        self.assertEqual(await self.store.recover("q", 2), 1)
        recovered = await self.store.find_job("q", job.id)
        self.assertEqual((recovered.status, recovered.attempts), ("claimed", 1))
        [second] = await self.store.grab("q", 1, 2)
        self.assertEqual((second.attempts, second.attempt, second.fail_count), (2, 2, 0))
        self.assertEqual((await self.store.find_job("q", job.id)).attempts, 2)
        await self.complete("q", 2, (second, CompletionKind.RETRY, Result("failure")))
        self.assertEqual((await self.store.find_job("q", job.id)).attempts, 2)
        [third] = await self.store.grab("q", 1, 2)
        self.assertEqual((third.attempts, third.attempt, third.fail_count), (3, 3, 1))
        # A failed job pushed again starts counting anew.
        await self.complete("q", 2, (third, CompletionKind.FAIL, Result("failure")))
        [failed] = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        _, again = await self.store.retry_failed("q", failed.id)
        self.assertEqual((again.attempts, again.attempt), (0, 1))
        [fresh] = await self.store.grab("q", 1, 2)
        self.assertEqual((fresh.id, fresh.attempt), (again.id, 1))

    async def test_push_already_grabbed_counts_its_attempt(self) -> None:
        """A job stored grabbed (immediate dispatch) has its first attempt counted."""
        await self.prepared("q")
        [direct] = await self.store.push([PushEntry("q", new_job(), grabber_id=7)])
        self.assertEqual((direct.attempts, direct.attempt), (1, 1))
        self.assertEqual((await self.store.find_job("q", direct.id)).attempts, 1)
        await self.store.recover("q", 8)
        [again] = await self.store.grab("q", 1, 8)
        self.assertEqual((again.id, again.attempt), (direct.id, 2))

    async def test_grab_zero_or_nothing(self) -> None:
        await self.prepared("q", "empty")
        job = await self.push_one("q")
        self.assertEqual(await self.store.grab("q", 0, 1), [])
        self.assertEqual(await self.store.grab("empty", 10, 1), [])
        self.assertEqual(await self.store.find_job("q", job.id), job)

    async def test_grab_only_its_queue(self) -> None:
        await self.prepared("q1", "q2")
        one = await self.push_one("q1")
        two = await self.push_one("q2")
        self.assertEqual(job_ids(await self.store.grab("q1", 10, 1)), [one.id])
        self.assertEqual(await self.store.find_job("q2", two.id), two)
        self.assertEqual(job_ids(await self.store.grab("q2", 10, 1)), [two.id])

    async def test_grab_orders_by_next_try_then_id(self) -> None:
        self.needClock()
        await self.prepared("q")
        a = await self.push_one("q", run_after=20)
        b = await self.push_one("q", run_after=10)
        c = await self.push_one("q", run_after=0)
        d = await self.push_one("q", run_after=10)
        e = await self.push_one("q", run_after=30)
        self.clock.advance(20)
        self.assertEqual(job_ids(await self.store.grab("q", 3, 1)), [c.id, b.id, d.id])
        self.assertEqual(job_ids(await self.store.grab("q", 3, 1)), [a.id])
        self.clock.advance(9.999)
        self.assertEqual(await self.store.grab("q", 10, 1), [])
        self.clock.advance(0.001)
        self.assertEqual(job_ids(await self.store.grab("q", 10, 1)), [e.id])

    async def test_exact_times(self) -> None:
        self.needClock()
        await self.prepared("q")
        pushed_at = self.clock.now
        job = await self.push_one("q", run_after=5, max_retries=1, retry_delay=7)
        self.assertEqual((job.created_at, job.next_try), (pushed_at, pushed_at + 5000))
        self.clock.advance(5)
        [grabbed] = await self.store.grab("q", 1, 1)
        self.clock.advance(1)
        await self.complete("q", 1, (grabbed, CompletionKind.RETRY, Result("failure")))
        retried = await self.store.find_job("q", job.id)
        self.assertEqual(retried.next_try, self.clock.now + 7000)
        self.assertEqual(retried.created_at, pushed_at)
        self.clock.advance(7)
        [grabbed] = await self.store.grab("q", 1, 1)
        self.clock.advance(2)
        await self.complete("q", 1, (grabbed, CompletionKind.FAIL, Result("failure")))
        [failed] = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        self.assertEqual((failed.failed_at, failed.created_at), (self.clock.now, pushed_at))

    # Complete

    async def test_complete_success(self) -> None:
        await self.prepared("q")
        jobs = await self.push("q", new_job(), new_job())
        grabbed = await self.store.grab("q", 10, 1)
        await self.complete("q", 1, (grabbed[0], CompletionKind.SUCCESS, Result("success")))
        self.assertIsNone(await self.store.find_job("q", jobs[0].id))
        self.assertEqual(await self.store.find_job("q", jobs[1].id), grabbed[1])
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(grabbed=1))
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertEqual(page, Page([], None))

    async def test_complete_retry(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", max_retries=2, retry_delay=0, payload="p")
        [grabbed] = await self.store.grab("q", 1, 1)
        await self.complete("q", 1, (grabbed, CompletionKind.RETRY, Result("failure", 500)))
        retried = await self.store.find_job("q", job.id)
        self.assertEqual(
            (retried.status, retried.grabber_id, retried.retry_count, retried.fail_count,
             retried.max_retries, retried.attempt),
            ("claimed", None, 1, 1, 2, 2),
        )
        self.assertEqual(
            (retried.category, retried.url, retried.payload, retried.created_at,
             retried.retry_delay, retried.timeout),
            (job.category, job.url, job.payload, job.created_at, job.retry_delay, job.timeout),
        )
        self.assertGreaterEqual(retried.next_try, job.next_try)
        [again] = await self.store.grab("q", 1, 1)
        self.assertEqual((again.id, again.fail_count, again.retry_count), (job.id, 1, 1))

    async def test_complete_retry_waits_retry_delay(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", max_retries=1, retry_delay=LATER)
        [grabbed] = await self.store.grab("q", 1, 1)
        await self.complete("q", 1, (grabbed, CompletionKind.RETRY, Result("failure")))
        retried = await self.store.find_job("q", job.id)
        self.assertGreaterEqual(retried.next_try, job.created_at + LATER * 1000)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(deferred=1))
        self.assertEqual(await self.store.grab("q", 1, 1), [])
        self.assertEqual(job_ids(await self.listed("q", JobState.DEFERRED)), [job.id])

    async def test_complete_fail(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", category="c/x", payload="p\u00e9\u2713", timeout=3,
                                  retry_delay=9)
        [grabbed] = await self.store.grab("q", 1, 1)
        result = Result("permanent-failure", 500, 'bad "thing" \u2713 \\ \n')
        await self.complete("q", 1, (grabbed, CompletionKind.FAIL, result))
        self.assertIsNone(await self.store.find_job("q", job.id))
        self.assertEqual(await self.store.count_jobs("q"), JobCounts())
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertIsNone(page.next_key)
        [failed] = page.items
        self.assertGreater(failed.id, 0)
        self.assertEqual(
            (failed.job_id, failed.category, failed.url, failed.payload, failed.result,
             failed.fail_count, failed.created_at),
            (job.id, "c/x", job.url, "p\u00e9\u2713", result, 1, job.created_at),
        )
        self.assertEqual((failed.max_retries, failed.retry_delay, failed.timeout), (0, 9, 3))
        self.assertGreaterEqual(failed.failed_at, job.created_at)
        self.assertEqual(await self.store.find_failed("q", failed.id), failed)

    async def test_complete_fail_with_unstorable_message(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q")
        [grabbed] = await self.store.grab("q", 1, 1)
        result = Result("failure", 200, "lone surrogate \ud800 from a worker")
        await self.complete("q", 1, (grabbed, CompletionKind.FAIL, result))
        self.assertIsNone(await self.store.find_job("q", job.id))
        [failed] = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        self.assertEqual((failed.job_id, failed.result.status, failed.result.code),
                         (job.id, "failure", 200))
        self.assertTrue(failed.result.message.startswith("lone surrogate "))

    async def test_complete_fail_counts_earlier_failures(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q", max_retries=1)
        [grabbed] = await self.store.grab("q", 1, 1)
        await self.complete("q", 1, (grabbed, CompletionKind.RETRY, Result("failure")))
        [grabbed] = await self.store.grab("q", 1, 1)
        await self.complete("q", 1, (grabbed, CompletionKind.FAIL, Result("failure", 0, "x")))
        [failed] = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        self.assertEqual((failed.job_id, failed.fail_count, failed.max_retries), (job.id, 2, 1))
        self.assertEqual(failed.result, Result("failure", 0, "x"))

    async def test_complete_many_in_one_call(self) -> None:
        await self.prepared("q")
        a, b, c = await self.push("q", new_job(max_retries=1), new_job(max_retries=1), new_job())
        grabbed = {job.id: job for job in await self.store.grab("q", 10, 1)}
        await self.complete(
            "q", 1,
            (grabbed[a.id], CompletionKind.SUCCESS, Result("success")),
            (grabbed[b.id], CompletionKind.RETRY, Result("failure")),
            (grabbed[c.id], CompletionKind.FAIL, Result("permanent-failure")),
        )
        self.assertIsNone(await self.store.find_job("q", a.id))
        self.assertEqual((await self.store.find_job("q", b.id)).fail_count, 1)
        self.assertIsNone(await self.store.find_job("q", c.id))
        [failed] = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        self.assertEqual(failed.job_id, c.id)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1))

    async def test_complete_is_fenced_by_grabber_id(self) -> None:
        await self.prepared("q")
        await self.push("q", new_job(max_retries=1), new_job(max_retries=1), new_job())
        grabbed = await self.store.grab("q", 10, 1)
        for job, kind in zip(grabbed, CompletionKind):
            await self.complete("q", 2, (job, kind, Result("failure")))
        for job in grabbed:
            self.assertEqual(await self.store.find_job("q", job.id), job)
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertEqual(page.items, [])
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(grabbed=3))

    async def test_complete_ignores_claimed_jobs(self) -> None:
        await self.prepared("q")
        await self.push("q", new_job(max_retries=1), new_job(max_retries=1), new_job())
        grabbed = await self.store.grab("q", 10, 1)
        self.assertEqual(await self.store.release("q", job_ids(grabbed), 1), 3)
        for job, kind in zip(grabbed, CompletionKind):
            await self.complete("q", 1, (job, kind, Result("failure")))
        for job in grabbed:
            found = await self.store.find_job("q", job.id)
            self.assertEqual((found.status, found.fail_count), ("claimed", 0))
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertEqual(page.items, [])

    async def test_complete_after_recovery_by_another_grabber(self) -> None:
        await self.prepared("q")
        job = await self.push_one("q")
        [old] = await self.store.grab("q", 1, 1)
        self.assertEqual(await self.store.recover("q", 2), 1)
        [new] = await self.store.grab("q", 1, 2)
        await self.complete("q", 1, (old, CompletionKind.SUCCESS, Result("success")))
        self.assertEqual(await self.store.find_job("q", job.id), new)
        await self.complete("q", 2, (new, CompletionKind.SUCCESS, Result("success")))
        self.assertIsNone(await self.store.find_job("q", job.id))

    async def test_complete_twice(self) -> None:
        await self.prepared("q")
        await self.push_one("q")
        [job] = await self.store.grab("q", 1, 1)
        await self.complete("q", 1, (job, CompletionKind.SUCCESS, Result("success")))
        await self.complete("q", 1, (job, CompletionKind.FAIL, Result("failure")))
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.assertEqual(page.items, [])

    # Release and recover

    async def test_release(self) -> None:
        await self.prepared("q")
        jobs = await self.push("q", *[new_job(max_retries=2) for _ in range(3)])
        grabbed = await self.store.grab("q", 10, 1)
        self.assertEqual(
            await self.store.release("q", [jobs[0].id, jobs[1].id, jobs[1].id, 999999], 1), 2
        )
        for job in jobs[:2]:
            # Released as they were, but for the attempt their grab counted
            # (bug 5: counts never go back; the delivery may have started).
            self.assertEqual(await self.store.find_job("q", job.id), attr.evolve(job, attempts=1))
        self.assertEqual(await self.store.find_job("q", jobs[2].id), grabbed[2])
        self.assertEqual(await self.store.release("q", [jobs[2].id], 2), 0)
        self.assertEqual(await self.store.release("q", [jobs[0].id], 1), 0)
        self.assertEqual(await self.store.release("q", [], 1), 0)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=2, grabbed=1))
        again = await self.store.grab("q", 10, 3)
        self.assertEqual(job_ids(again), job_ids(jobs[:2]))

    async def test_recover(self) -> None:
        # Changed deliberately (issue 19): a job grabbed under a HIGHER id
        # ('other', 3) was recovered by every store; the MySQL store now
        # leaves it to its newer holder (see recoversNewerGrabbers).
        await self.prepared("q")
        jobs = await self.push("q", *[new_job(payload=str(i)) for i in range(4)])
        old = await self.store.grab("q", 2, 1)
        other = await self.store.grab("q", 1, 3)
        mine = await self.store.grab("q", 1, 2)
        newer = 1 if self.recoversNewerGrabbers else 0
        self.assertEqual(await self.store.recover("q", 2), 2 + newer)
        for job in old + (other if newer else []):
            found = await self.store.find_job("q", job.id)
            self.assertEqual((found.status, found.grabber_id), ("claimed", None))
            self.assertSameJobExceptState(found, job)
        self.assertEqual(await self.store.find_job("q", mine[0].id), mine[0])
        if not newer:
            self.assertEqual(await self.store.find_job("q", other[0].id), other[0])
        self.assertEqual(await self.store.recover("q", 2), 0)
        self.assertEqual(await self.store.recover("q", 5), 2 - newer)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=4))
        self.assertEqual(sorted(job_ids(await self.listed("q", JobState.WAITING))),
                         job_ids(jobs))

    async def test_recovery_by_an_older_holder(self) -> None:
        """
        A recovery under an older grabber id than a job's (on Galera: a
        claim that stalled past its expiry, then ran after another node
        took the queue again) leaves a NEWER holder's grabbed jobs alone in
        the MySQL store; a single-node store has one holder only and
        recovers them (see recoversNewerGrabbers).
        """
        await self.prepared("q")
        await self.push("q", *[new_job(payload=str(i)) for i in range(3)])
        newer = await self.store.grab("q", 3, 20)
        recovered = await self.store.recover("q", 10)
        if self.recoversNewerGrabbers:
            self.assertEqual(recovered, 3)
            self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=3))
            return
        self.assertEqual(recovered, 0)
        for job in newer:
            self.assertEqual(await self.store.find_job("q", job.id), job)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(grabbed=3))
        # The newer holder still completes them; a later holder recovers the rest.
        await self.complete("q", 20, (newer[0], CompletionKind.SUCCESS, Result("success")))
        self.assertEqual(await self.store.recover("q", 21), 2)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=2))

    # Find and delete

    async def test_find_and_delete_job(self) -> None:
        await self.prepared("q", "other")
        a, b = await self.push("q", new_job(payload="a"), new_job(payload="b"))
        twin = await self.push_one("other", payload="twin")
        self.assertIsNone(await self.store.find_job("q", 999999))
        self.assertIsNone(await self.store.delete_job("q", 999999))
        self.assertEqual(await self.store.delete_job("q", a.id), a)
        self.assertIsNone(await self.store.find_job("q", a.id))
        self.assertIsNone(await self.store.delete_job("q", a.id))
        self.assertEqual(await self.store.find_job("q", b.id), b)
        self.assertEqual(await self.store.find_job("other", twin.id), twin)
        [grabbed] = await self.store.grab("q", 1, 1)
        self.assertEqual(await self.store.delete_job("q", b.id), grabbed)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts())

    async def test_ids_never_reused(self) -> None:
        await self.prepared("q")
        jobs = await self.push("q", new_job(), new_job(), new_job())
        await self.store.delete_job("q", jobs[-1].id)
        after_delete = await self.push_one("q")
        self.assertGreater(after_delete.id, jobs[-1].id)
        for job in await self.store.grab("q", 10, 1):
            await self.complete("q", 1, (job, CompletionKind.SUCCESS, Result("success")))
        self.assertEqual(await self.store.count_jobs("q"), JobCounts())
        after_empty = await self.push_one("q")
        self.assertGreater(after_empty.id, after_delete.id)

    # Inspection lists

    async def fill_states(self) -> Tuple[List[Job], List[Job], List[Job]]:
        """Jobs of queue ``q`` in each state: (waiting, deferred, grabbed)."""
        await self.prepared("q")
        await self.push("q", *[new_job(payload=f"a{i}") for i in range(20)])
        for i in range(5):
            await self.push_one("q", payload=f"b{i}")
        await self.push("q", *[new_job(payload=f"d{i}", run_after=LATER) for i in range(12)])
        await self.push_one("q", payload="d-last", run_after=LATER + 1)
        grabbed = await self.store.grab("q", 9, 4)
        waiting = await self.listed("q", JobState.WAITING)
        deferred = await self.listed("q", JobState.DEFERRED)
        return waiting, deferred, grabbed

    async def test_list_jobs_by_state(self) -> None:
        waiting, deferred, grabbed = await self.fill_states()
        self.assertEqual(sorted(j.payload for j in waiting),
                         sorted([f"a{i}" for i in range(9, 20)] + [f"b{i}" for i in range(5)]))
        self.assertEqual(sorted(j.payload for j in deferred),
                         sorted([f"d{i}" for i in range(12)] + ["d-last"]))
        self.assertEqual(deferred[-1].payload, "d-last")
        for state, expected in ((JobState.WAITING, waiting), (JobState.DEFERRED, deferred),
                                (JobState.GRABBED, grabbed)):
            ascending = await self.listed("q", state)
            self.assertEqual(ascending, sorted(ascending, key=sort_key))
            self.assertEqual(ascending, sorted(expected, key=sort_key))
            descending = await self.listed("q", state, descending=True)
            self.assertEqual(descending, ascending[::-1])
        self.assertTrue(all(j.status == "claimed" for j in waiting + deferred))
        listed_grabbed = await self.listed("q", JobState.GRABBED)
        self.assertTrue(all((j.status, j.grabber_id) == ("grabbed", 4) for j in listed_grabbed))
        self.assertEqual(await self.store.count_jobs("q"),
                         JobCounts(waiting=16, deferred=13, grabbed=9))

    async def test_list_jobs_walks_visit_every_job_once(self) -> None:
        await self.fill_states()
        for state in JobState:
            full = await self.listed("q", state)
            for descending in (False, True):
                expected = full[::-1] if descending else full
                for limit in (1, 4, 7, len(full) - 1, len(full), len(full) + 1):
                    walked = await self.walk_jobs("q", state, limit, descending)
                    self.assertEqual(job_ids(walked), job_ids(expected),
                                     f"{state} descending={descending} limit={limit}")

    async def test_list_jobs_many_with_same_next_try(self) -> None:
        await self.prepared("q")
        jobs = await self.push("q", *[new_job(payload=str(i), run_after=LATER)
                                      for i in range(30)])
        if self.usesInjectedClock:
            self.assertEqual(len({job.next_try for job in jobs}), 1)
        expected = sorted(jobs, key=sort_key)
        for descending in (False, True):
            for limit in (1, 2, 3, 29):
                walked = await self.walk_jobs("q", JobState.DEFERRED, limit, descending)
                self.assertEqual(job_ids(walked),
                                 job_ids(expected[::-1] if descending else expected))

    async def test_list_jobs_start_is_inclusive(self) -> None:
        waiting, _, _ = await self.fill_states()
        third = waiting[2]
        page = await self.store.list_jobs("q", JobState.WAITING, 3, sort_key(third), False)
        self.assertEqual(page.items, waiting[2:5])
        self.assertEqual(page.next_key, sort_key(waiting[5]))
        page = await self.store.list_jobs("q", JobState.WAITING, 3, sort_key(third), True)
        self.assertEqual(page.items, waiting[2::-1])
        self.assertIsNone(page.next_key)
        page = await self.store.list_jobs("q", JobState.WAITING, 100, (0, 0), False)
        self.assertEqual(page.items, waiting)
        page = await self.store.list_jobs("q", JobState.WAITING, 100, (2**62, 0), True)
        self.assertEqual(page.items, waiting[::-1])
        page = await self.store.list_jobs("q", JobState.WAITING, 100, (2**62, 0), False)
        self.assertEqual(page, Page([], None))
        page = await self.store.list_jobs("q", JobState.WAITING, 100, (0, 0), True)
        self.assertEqual(page, Page([], None))

    async def test_list_jobs_key_between_jobs(self) -> None:
        await self.prepared("q")
        jobs = await self.push("q", *[new_job(payload=str(i)) for i in range(4)])
        await self.store.delete_job("q", jobs[1].id)
        gap = (jobs[1].next_try, jobs[1].id)
        page = await self.store.list_jobs("q", JobState.WAITING, 10, gap, False)
        self.assertEqual(job_ids(page.items), [jobs[2].id, jobs[3].id])
        page = await self.store.list_jobs("q", JobState.WAITING, 10, gap, True)
        self.assertEqual(job_ids(page.items), [jobs[0].id])

    async def test_list_jobs_empty(self) -> None:
        await self.prepared("q")
        for state in JobState:
            for descending in (False, True):
                page = await self.store.list_jobs("q", state, 10, None, descending)
                self.assertEqual(page, Page([], None))

    async def test_deferred_job_becomes_waiting(self) -> None:
        self.needClock()
        await self.prepared("q")
        job = await self.push_one("q", run_after=10)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(deferred=1))
        self.assertEqual(await self.store.grab("q", 1, 1), [])
        self.clock.advance(10)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1))
        self.assertEqual(await self.listed("q", JobState.WAITING), [job])
        self.assertEqual(await self.listed("q", JobState.DEFERRED), [])
        self.assertEqual(job_ids(await self.store.grab("q", 1, 1)), [job.id])

    # Failure log

    async def make_failures(self, count: int) -> List[FailedJob]:
        """``count`` failures of queue ``q``, failed in a shuffled order."""
        await self.prepared("q")
        jobs = []
        for i in range(count):
            jobs.append(await self.push_one("q", payload=f"f{i}"))
            if self.usesInjectedClock and i % 3 == 2:
                self.clock.advance(1)
        order = [jobs[(i * 7) % count] for i in range(count)]
        return await self.fail_jobs("q", order, Result("failure", 503, "down"))

    async def test_list_failed_orders(self) -> None:
        failures = await self.make_failures(10)
        by_failed = sorted(failures, key=lambda f: f.id, reverse=True)
        by_created = sorted(failures, key=lambda f: (f.created_at, f.id), reverse=True)
        for order, expected in ((FailureOrder.FAILED, by_failed),
                                (FailureOrder.CREATED, by_created)):
            page = await self.store.list_failed("q", order, 100, None)
            self.assertEqual(page, Page(expected, None))
            for limit in (1, 2, 3, 9, 10, 11):
                walked = await self.walk_failed("q", order, limit)
                self.assertEqual([f.id for f in walked], [f.id for f in expected],
                                 f"{order} limit={limit}")

    async def test_list_failed_orders_differ(self) -> None:
        self.needClock()
        await self.make_failures(9)
        # Pushed f0-f2, f3-f5, f6-f8 a second apart; failed in the order
        # f0 f7 f5 f3 f1 f8 f6 f4 f2.
        failed = (await self.store.list_failed("q", FailureOrder.FAILED, 100, None)).items
        self.assertEqual([f.payload for f in failed],
                         ["f2", "f4", "f6", "f8", "f1", "f3", "f5", "f7", "f0"])
        created = (await self.store.list_failed("q", FailureOrder.CREATED, 100, None)).items
        self.assertEqual([f.payload for f in created],
                         ["f6", "f8", "f7", "f4", "f3", "f5", "f2", "f1", "f0"])

    async def test_list_failed_start(self) -> None:
        failures = await self.make_failures(6)
        by_failed = sorted(failures, key=lambda f: f.id, reverse=True)
        middle = by_failed[2]
        page = await self.store.list_failed("q", FailureOrder.FAILED, 2,
                                            (middle.created_at, middle.id))
        self.assertEqual(page.items, by_failed[2:4])
        self.assertEqual(page.next_key, (by_failed[4].created_at, by_failed[4].id))
        # FAILED compares the id only.
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, (0, middle.id))
        self.assertEqual(page.items, by_failed[2:])
        by_created = sorted(failures, key=lambda f: (f.created_at, f.id), reverse=True)
        middle = by_created[3]
        page = await self.store.list_failed("q", FailureOrder.CREATED, 10,
                                            (middle.created_at, middle.id))
        self.assertEqual(page, Page(by_created[3:], None))
        page = await self.store.list_failed("q", FailureOrder.CREATED, 10, (0, 0))
        self.assertEqual(page, Page([], None))

    async def test_find_and_delete_failed(self) -> None:
        failures = await self.make_failures(3)
        self.assertIsNone(await self.store.find_failed("q", 999999))
        self.assertIsNone(await self.store.delete_failed("q", 999999))
        for failed in failures:
            self.assertEqual(await self.store.find_failed("q", failed.id), failed)
        self.assertEqual(await self.store.delete_failed("q", failures[1].id), failures[1])
        self.assertIsNone(await self.store.find_failed("q", failures[1].id))
        self.assertIsNone(await self.store.delete_failed("q", failures[1].id))
        for order in FailureOrder:
            page = await self.store.list_failed("q", order, 10, None)
            self.assertEqual(sorted(f.id for f in page.items),
                             sorted([failures[0].id, failures[2].id]))

    async def test_retry_failed(self) -> None:
        await self.prepared("q")
        doomed = await self.push_one(
            "q", payload='{"n":1}', max_retries=2, retry_delay=7, timeout=9
        )
        [failed] = await self.fail_jobs("q", [doomed], Result("permanent-failure", 200, "no"))
        self.assertIsNone(await self.store.retry_failed("q", 999999))
        entry, job = await self.store.retry_failed("q", failed.id)
        self.assertEqual(entry, failed)
        self.assertGreater(job.id, doomed.id)
        self.assertEqual(
            (job.category, job.url, job.payload, job.retry_count, job.retry_delay, job.timeout),
            (doomed.category, doomed.url, doomed.payload, 2, 7, 9),
        )
        self.assertEqual((job.status, job.fail_count, job.next_try), ("claimed", 0, job.created_at))
        self.assertEqual(await self.store.find_job("q", job.id), job)
        self.assertEqual(await self.listed("q", JobState.WAITING), [job])
        self.assertIsNone(await self.store.find_failed("q", failed.id))
        # The entry is gone: a second retry pushes nothing.
        self.assertIsNone(await self.store.retry_failed("q", failed.id))
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1))

    async def test_concurrent_retries_push_once(self) -> None:
        await self.prepared("q")
        doomed = await self.push_one("q")
        [failed] = await self.fail_jobs("q", [doomed], Result("failure"))
        results = await gatherResults([self.store.retry_failed("q", failed.id) for _ in range(4)])
        self.assertEqual(len([r for r in results if r is not None]), 1)
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(waiting=1))

    async def test_list_failed_empty(self) -> None:
        await self.prepared("q")
        for order in FailureOrder:
            self.assertEqual(await self.store.list_failed("q", order, 10, None), Page([], None))

    # Counts

    async def test_count_jobs(self) -> None:
        await self.prepared("q", "empty")
        self.assertEqual(await self.store.count_jobs("empty"), JobCounts())
        await self.push("q", new_job(), new_job(), new_job(), new_job())
        await self.push("q", new_job(run_after=LATER), new_job(run_after=LATER))
        await self.store.grab("q", 1, 1)
        self.assertEqual(await self.store.count_jobs("q"),
                         JobCounts(waiting=3, deferred=2, grabbed=1))
        self.assertEqual(await self.store.count_jobs("empty"), JobCounts())

    # Queues

    async def test_jobs_survive_queue_deletion(self) -> None:
        definition = QueueDefinition(name="q", polling_interval=100, max_workers=2)
        await self.repository.put_queue(definition)
        await self.prepared("q")
        kept, doomed = await self.push("q", new_job(payload="kept"), new_job(payload="doomed"))
        [failed] = await self.fail_jobs("q", [doomed], Result("failure"))
        await self.store.release("q", [kept.id], 1)
        kept = attr.evolve(kept, attempts=1)  # its grab by fail_jobs counted (bug 5)
        self.assertEqual(await self.repository.delete_queue("q"), definition)
        self.assertEqual(await self.store.find_job("q", kept.id), kept)
        self.assertEqual(await self.store.find_failed("q", failed.id), failed)
        await self.repository.put_queue(definition)
        await self.prepared("q")
        self.assertEqual(await self.listed("q", JobState.WAITING), [kept])
        later = await self.push_one("q")
        self.assertGreater(later.id, doomed.id)

    async def test_similar_queue_names_do_not_mix(self) -> None:
        names = ["jobs", "jobs2", "jobs_2", "jobs_fail", "fail", "j"]
        await self.prepared(*names)
        pushed = {}
        for count, name in enumerate(names, 1):
            pushed[name] = await self.push(name, *[new_job(payload=f"{name}#{i}")
                                                   for i in range(count)])
        [doomed] = await self.store.grab("jobs", 1, 1)
        await self.complete("jobs", 1, (doomed, CompletionKind.FAIL, Result("failure")))
        for count, name in enumerate(names, 1):
            expected = [j for j in pushed[name] if not (name == "jobs" and j.id == doomed.id)]
            self.assertEqual(await self.listed(name, JobState.WAITING), expected)
            self.assertEqual(await self.store.count_jobs(name), JobCounts(waiting=len(expected)))
            failures = (await self.store.list_failed(name, FailureOrder.FAILED, 10, None)).items
            self.assertEqual([f.payload for f in failures], ["jobs#0"] if name == "jobs" else [])

    def test_storage_keys(self) -> None:
        plain = ["jobs", "jobs2", "jobs_2", "j", "0"]
        alike = [["queueA", "queueB", "queue_", "queue\u00e9"], ["my-q", "my.q", "my q", "my_q"],
                 ["A", "B", "_"]]
        keys = {name: self.store.storage_key(name) for name in plain + sum(alike, [])}
        for name, key in keys.items():
            self.assertIsInstance(key, str)
            self.assertEqual(self.store.storage_key(name), key)
        self.assertEqual(len({keys[name] for name in plain}), len(plain))
        self.assertNotEqual(self.store.storage_key("a"), self.store.storage_key("b"))
        for names in alike:
            distinct = {keys[name] for name in names}
            self.assertEqual(len(distinct), 1 if self.usesOriginalTableNames else len(names), names)

class ExactNameContractMixin(JobStoreContractMixin):
    """
    The job store contract, plus: queues are kept apart by their exact names
    (the in-memory and sqlite stores; the mysql store keeps names that differ
    only outside ``[0-9a-z_]`` in the original's shared tables, A9).
    """

    async def test_names_alike_but_for_case_and_punctuation_do_not_mix(self) -> None:
        names = ["queueA", "queueB", "queue_", "A", "a", "B", "_", "my-q", "my.q", "my_q"]
        for name in names:
            await self.repository.put_queue(QueueDefinition(name=name, polling_interval=100,
                                                            max_workers=2))
        await self.prepared(*names)
        pushed = {}
        for count, name in enumerate(names, 1):
            pushed[name] = await self.push(name, *[new_job(payload=f"{name}#{i}")
                                                   for i in range(count)])
        [doomed] = await self.store.grab("queueA", 1, 1)
        await self.complete("queueA", 1, (doomed, CompletionKind.FAIL, Result("failure")))
        [held] = await self.store.grab("my-q", 1, 7)
        for count, name in enumerate(names, 1):
            expected = [j for j in pushed[name] if not (name == "queueA" and j.id == doomed.id)]
            waiting = [j for j in expected if not (name == "my-q" and j.id == held.id)]
            self.assertEqual(await self.listed(name, JobState.WAITING), waiting, name)
            grabbed = [j.id for j in await self.listed(name, JobState.GRABBED)]
            self.assertEqual(grabbed, [held.id] if name == "my-q" else [], name)
            self.assertEqual(await self.store.count_jobs(name),
                             JobCounts(waiting=len(waiting), grabbed=len(expected) - len(waiting)))
            failures = (await self.store.list_failed(name, FailureOrder.FAILED, 10, None)).items
            self.assertEqual([f.payload for f in failures], ["queueA#0"] if name == "queueA" else [])
        # Nothing done to a queue reaches a queue whose name is alike.
        self.assertEqual(await self.store.recover("my.q", 1), 0)
        self.assertEqual(await self.store.release("my_q", [held.id], 7), 0)
        taken = {j.id for j in pushed["my.q"]}
        other = next(j for j in pushed["my_q"] if j.id not in taken)  # 10 jobs, 9 ids
        self.assertIsNone(await self.store.delete_job("my.q", other.id))
        self.assertEqual(await self.store.find_job("my_q", other.id), other)
        [failed] = (await self.store.list_failed("queueA", FailureOrder.FAILED, 10, None)).items
        self.assertIsNone(await self.store.find_failed("queueB", failed.id))
        self.assertIsNone(await self.store.retry_failed("queue_", failed.id))
        self.assertEqual(await self.store.find_failed("queueA", failed.id), failed)
        # A deleted queue's jobs come back with its exact name, not with an alike one.
        await self.repository.delete_queue("queueB")
        await self.prepared("queueC")
        self.assertEqual(await self.listed("queueC", JobState.WAITING), [])
        await self.repository.put_queue(QueueDefinition(name="queueB", polling_interval=100,
                                                        max_workers=2))
        await self.prepared("queueB")
        self.assertEqual(await self.listed("queueB", JobState.WAITING), pushed["queueB"])


class RepositoryContractMixin(StoreContractFixture):
    """The contract of L{IRepository}."""

    def test_provides_interface(self) -> None:
        self.assertTrue(verifyObject(IRepository, self.repository))

    async def test_empty(self) -> None:
        self.assertEqual(await self.repository.list_queues(), [])
        self.assertEqual(await self.repository.list_routings(), [])
        self.assertIsNone(await self.repository.find_queue("q"))
        self.assertIsNone(await self.repository.find_routing("c"))
        self.assertIsNone(await self.repository.delete_queue("q"))
        self.assertIsNone(await self.repository.delete_routing("c"))
        self.assertIsInstance(await self.repository.revision(), str)

    async def test_put_and_find_queue(self) -> None:
        definition = QueueDefinition(name="q\u00e9 1", polling_interval=250, max_workers=7)
        revision = await self.repository.revision()
        self.assertIs(await self.repository.put_queue(definition), True)
        self.assertNotEqual(await self.repository.revision(), revision)
        found = await self.repository.find_queue("q\u00e9 1")
        self.assertEqual(found, definition)
        self.assertEqual((found.max_dispatches_per_second, found.max_burst_size), (0.0, 0))
        self.assertIsNone(await self.repository.find_queue("q\u00e9"))

    async def test_list_queues_by_name(self) -> None:
        names = ["b", "a", "B", "a-b", "\u00e4", "a_b", "0"]
        for name in names:
            await self.repository.put_queue(QueueDefinition(name, 200, 20))
        listed = await self.repository.list_queues()
        self.assertEqual([d.name for d in listed],
                         sorted(names, key=lambda n: n.encode("utf-8")))

    async def test_put_same_queue_changes_nothing(self) -> None:
        await self.repository.put_queue(QueueDefinition("q", 200, 20, 2.5, 4))
        revision = await self.repository.revision()
        self.assertIs(await self.repository.put_queue(QueueDefinition("q", 200, 20, 2.5, 4)),
                      False)
        self.assertEqual(await self.repository.revision(), revision)
        await self.repository.put_queue(QueueDefinition("plain", 200, 20))
        revision = await self.repository.revision()
        for same in (QueueDefinition("plain", 200, 20, 0.0, 0),
                     QueueDefinition("plain", 200, 20, 0, 9)):
            self.assertIs(await self.repository.put_queue(same), False)
        self.assertEqual(await self.repository.revision(), revision)

    async def test_put_changed_queue(self) -> None:
        base = QueueDefinition("q", 200, 20)
        await self.repository.put_queue(base)
        for changed in (QueueDefinition("q", 100, 20), QueueDefinition("q", 100, 21),
                        QueueDefinition("q", 100, 21, 1.5, 3), QueueDefinition("q", 100, 21, 1.5, 4),
                        QueueDefinition("q", 100, 21, 0.25, 4), QueueDefinition("q", 0, 1)):
            revision = await self.repository.revision()
            self.assertIs(await self.repository.put_queue(changed), True, changed)
            self.assertNotEqual(await self.repository.revision(), revision)
            self.assertEqual(await self.repository.find_queue("q"), changed)
            self.assertEqual(await self.repository.list_queues(), [changed])

    async def test_throttle_round_trip(self) -> None:
        await self.repository.put_queue(QueueDefinition("t", 200, 20, 2.5, 10))
        found = await self.repository.find_queue("t")
        self.assertEqual((found.max_dispatches_per_second, found.max_burst_size), (2.5, 10))
        self.assertTrue(found.throttled)
        await self.repository.put_queue(QueueDefinition("u", 200, 20, 0.0, 5))
        found = await self.repository.find_queue("u")
        self.assertEqual((found.max_dispatches_per_second, found.max_burst_size), (0.0, 0))
        self.assertFalse(found.throttled)
        self.assertIs(await self.repository.put_queue(QueueDefinition("t", 200, 20)), True)
        found = await self.repository.find_queue("t")
        self.assertEqual((found.max_dispatches_per_second, found.max_burst_size), (0.0, 0))

    async def test_delete_queue(self) -> None:
        definition = QueueDefinition("q", 200, 20, 3.0, 1)
        await self.repository.put_queue(definition)
        await self.repository.put_queue(QueueDefinition("other", 200, 20))
        await self.repository.put_routing(Routing("c", "q"))
        revision = await self.repository.revision()
        self.assertEqual(await self.repository.delete_queue("q"), definition)
        self.assertNotEqual(await self.repository.revision(), revision)
        self.assertIsNone(await self.repository.find_queue("q"))
        self.assertEqual([d.name for d in await self.repository.list_queues()], ["other"])
        self.assertEqual(await self.repository.find_routing("c"), Routing("c", "q"))
        revision = await self.repository.revision()
        self.assertIsNone(await self.repository.delete_queue("q"))
        self.assertEqual(await self.repository.revision(), revision)
        self.assertIs(await self.repository.put_queue(QueueDefinition("q", 200, 20)), True)
        self.assertEqual(await self.repository.find_queue("q"), QueueDefinition("q", 200, 20))

    async def test_routings(self) -> None:
        await self.repository.put_queue(QueueDefinition("q1", 200, 20))
        await self.repository.put_queue(QueueDefinition("q2", 200, 20))
        revision = await self.repository.revision()
        self.assertIs(await self.repository.put_routing(Routing("a/b", "q1")), True)
        self.assertNotEqual(await self.repository.revision(), revision)
        revision = await self.repository.revision()
        self.assertIs(await self.repository.put_routing(Routing("a/b", "q1")), False)
        self.assertEqual(await self.repository.revision(), revision)
        self.assertIs(await self.repository.put_routing(Routing("a/b", "q2")), True)
        self.assertNotEqual(await self.repository.revision(), revision)
        self.assertEqual(await self.repository.find_routing("a/b"), Routing("a/b", "q2"))
        self.assertIsNone(await self.repository.find_routing("a"))
        for category in ("b", "a", "A", "a/c", "\u00e9"):
            await self.repository.put_routing(Routing(category, "q1"))
        listed = await self.repository.list_routings()
        categories = ["b", "a", "A", "a/c", "\u00e9", "a/b"]
        self.assertEqual([r.job_category for r in listed],
                         sorted(categories, key=lambda c: c.encode("utf-8")))
        revision = await self.repository.revision()
        self.assertEqual(await self.repository.delete_routing("a/b"), Routing("a/b", "q2"))
        self.assertNotEqual(await self.repository.revision(), revision)
        revision = await self.repository.revision()
        self.assertIsNone(await self.repository.delete_routing("a/b"))
        self.assertEqual(await self.repository.revision(), revision)
        self.assertIsNone(await self.repository.find_routing("a/b"))

    async def test_revision_changes_on_every_change(self) -> None:
        seen = [await self.repository.revision()]
        changes = [
            lambda: self.repository.put_queue(QueueDefinition("q", 200, 20)),
            lambda: self.repository.put_routing(Routing("c", "q")),
            lambda: self.repository.put_queue(QueueDefinition("q", 200, 21)),
            lambda: self.repository.put_routing(Routing("c2", "q")),
            lambda: self.repository.delete_routing("c"),
            lambda: self.repository.delete_queue("q"),
            lambda: self.repository.put_queue(QueueDefinition("q", 200, 20)),
        ]
        for change in changes:
            await change()
            revision = await self.repository.revision()
            self.assertIsInstance(revision, str)
            self.assertNotIn(revision, seen)
            seen.append(revision)


# -- job options (B7) -------------------------------------------------------------

from fireworq.joboptions.values import NO_OPTIONS, JobOptions, QueueDefaults  # noqa: E402
from fireworq.store.idempotency import Replay  # noqa: E402

#: Options of every kind, as a push may give them.
FULL_OPTIONS = JobOptions(
    name="nightly report",
    tags=(("team", "ops"), ("env", "prod")),
    headers=(("Authorization", "Bearer t"), ("X-Trace", "abc \u00e9")),
    priority=7,
    retry_backoff=2.0,
    retry_max_delay=600,
    retry_jitter=True,
    success="2xx",
    deadline=7200,
    idempotency_key="order-1",
)


class JobOptionsContractMixin(StoreContractFixture):
    """
    The job options of protocol B7 in a job store: kept with the job
    everywhere it is read, priorities in the grab order, idempotency keys.
    Kept apart from the Part A contract (whose helpers it borrows) so that
    a driver's Part A suite runs as before.
    """

    prepared = JobStoreContractMixin.prepared
    push = JobStoreContractMixin.push
    complete = JobStoreContractMixin.complete
    listed = JobStoreContractMixin.listed
    fail_jobs = JobStoreContractMixin.fail_jobs

    def keyed(self, queue: str, key: str, answer: str = '{"n":1}', **fields: Any) -> PushEntry:
        return PushEntry(queue, new_job(options=JobOptions(idempotency_key=key), **fields), answer=answer)

    async def test_options_round_trip(self) -> None:
        await self.prepared("q")
        [plain, full] = await self.push("q", new_job(), new_job(options=FULL_OPTIONS, payload="p"))
        self.assertEqual(plain.options, NO_OPTIONS)
        self.assertEqual(full.options, FULL_OPTIONS)
        self.assertEqual(await self.store.find_job("q", full.id), full)
        self.assertEqual(await self.store.find_job("q", plain.id), plain)
        self.assertEqual(await self.listed("q", JobState.WAITING), [plain, full])
        grabbed = await self.store.grab("q", 10, 1)
        self.assertEqual([(j.id, j.options) for j in grabbed], [(full.id, FULL_OPTIONS), (plain.id, NO_OPTIONS)])
        self.assertEqual([j.options for j in await self.listed("q", JobState.GRABBED)], [NO_OPTIONS, FULL_OPTIONS])
        failures = await self.fail_jobs("q", [plain, full], Result("failure", 500, "no"))
        [failed_plain, failed_full] = sorted(failures, key=lambda f: f.job_id)
        self.assertEqual(failed_plain.options, NO_OPTIONS)
        self.assertEqual(failed_full.options, FULL_OPTIONS)
        self.assertEqual((await self.store.find_failed("q", failed_full.id)).options, FULL_OPTIONS)
        _, again = await self.store.retry_failed("q", failed_full.id)
        # Pushed again: the options stay, the key (of the first push) does not.
        self.assertEqual(again.options, attr.evolve(FULL_OPTIONS, idempotency_key=None))
        self.assertEqual((await self.store.find_job("q", again.id)).options, again.options)

    async def test_grab_by_priority(self) -> None:
        await self.prepared("q")
        priorities = [0, 5, -1, 5, 0, 100, -100]
        jobs = await self.push("q", *[new_job(options=JobOptions(priority=p)) for p in priorities])
        [deferred_top] = await self.push("q", new_job(run_after=LATER, options=JobOptions(priority=100)))
        expected = sorted(jobs, key=lambda j: (-j.options.effective_priority, j.id))
        first = await self.store.grab("q", 3, 1)
        self.assertEqual([j.id for j in first], [j.id for j in expected[:3]])
        rest = await self.store.grab("q", 10, 1)
        self.assertEqual([j.id for j in rest], [j.id for j in expected[3:]])
        self.assertEqual(await self.store.grab("q", 10, 1), [])
        self.assertEqual(await self.store.count_jobs("q"), JobCounts(deferred=1, grabbed=len(jobs)))
        # A retried job goes back to its priority's place; a released one too.
        await self.store.release("q", [expected[-1].id], 1)
        [low] = await self.push("q", new_job(options=JobOptions(priority=-50)))
        self.assertEqual([j.id for j in await self.store.grab("q", 10, 1)], [low.id, expected[-1].id])
        self.assertIsNotNone(await self.store.find_job("q", deferred_top.id))

    async def test_priority_zero_keeps_due_order(self) -> None:
        """Jobs without a priority are grabbed in due order, as in Part A; an explicit 0 is the same."""
        await self.prepared("q")
        jobs = await self.push("q", new_job(), new_job(options=JobOptions(priority=0)), new_job())
        self.assertEqual([j.id for j in await self.store.grab("q", 10, 1)], [j.id for j in jobs])

    async def test_idempotency_key_replays(self) -> None:
        await self.prepared("q", "other")
        [first] = await self.store.push([self.keyed("q", "k", '{"first":true}')])
        self.assertIsInstance(first, Job)
        self.assertEqual(first.options.idempotency_key, "k")
        [again] = await self.store.push([self.keyed("q", "k", '{"second":true}', payload="x")])
        self.assertEqual(again, Replay(first.id, '{"first":true}'))
        # Another queue has keys of its own.
        [elsewhere] = await self.store.push([self.keyed("other", "k")])
        self.assertIsInstance(elsewhere, Job)
        self.assertEqual(await self.listed("q", JobState.WAITING), [first])
        # Finished jobs still answer their key.
        [grabbed] = await self.store.grab("q", 1, 1)
        await self.complete("q", 1, (grabbed, CompletionKind.SUCCESS, Result("success")))
        self.assertEqual(await self.store.push([self.keyed("q", "k", "{}")]), [Replay(first.id, '{"first":true}')])

    async def test_batch_repeats_a_key(self) -> None:
        await self.prepared("q")
        result = await self.store.push([
            self.keyed("q", "a", '{"i":0}'), PushEntry("q", new_job()), self.keyed("q", "a", '{"i":2}'),
            self.keyed("q", "b", '{"i":3}'),
        ])
        self.assertIsInstance(result[0], Job)
        self.assertIsInstance(result[1], Job)
        self.assertEqual(result[2], Replay(result[0].id, '{"i":0}'))
        self.assertIsInstance(result[3], Job)
        self.assertEqual(len(await self.listed("q", JobState.WAITING)), 3)
        replayed = await self.store.push([self.keyed("q", "b"), self.keyed("q", "c"), self.keyed("q", "a")])
        self.assertEqual(replayed[0], Replay(result[3].id, '{"i":3}'))
        self.assertIsInstance(replayed[1], Job)
        self.assertEqual(replayed[2], Replay(result[0].id, '{"i":0}'))

    async def test_concurrent_pushes_of_one_key_store_one_job(self) -> None:
        await self.prepared("q")
        results = await gatherResults([self.store.push([self.keyed("q", "same", f'{{"n":{n}}}')]) for n in range(4)])
        jobs = [r for [r] in results if isinstance(r, Job)]
        self.assertEqual(len(jobs), 1)
        replays = [r for [r] in results if isinstance(r, Replay)]
        self.assertEqual({r.job_id for r in replays}, {jobs[0].id})
        self.assertEqual(len(await self.listed("q", JobState.WAITING)), 1)

    async def test_key_window(self) -> None:
        self.needClock()
        self.store.idempotency_window_ms = 60_000
        await self.prepared("q")
        [first] = await self.store.push([self.keyed("q", "k")])
        self.clock.advance(59)
        self.assertIsInstance((await self.store.push([self.keyed("q", "k")]))[0], Replay)
        self.assertEqual(await self.store.delete_expired_keys("q"), 0)
        self.clock.advance(1)
        [second] = await self.store.push([self.keyed("q", "k")])
        self.assertIsInstance(second, Job)
        self.assertNotEqual(second.id, first.id)
        self.clock.advance(60)
        self.assertEqual(await self.store.delete_expired_keys("q"), 1)
        self.assertEqual(await self.store.delete_expired_keys("q"), 0)
        self.assertIsInstance((await self.store.push([self.keyed("q", "k")]))[0], Job)


class QueueDefaultsContractMixin(StoreContractFixture):
    """The job defaults of a queue definition (B7) in a repository."""

    async def test_defaults_round_trip(self) -> None:
        defaults = QueueDefaults(max_retries=3, retry_delay=10, retry_backoff=2.5, retry_max_delay=300,
                                 retry_jitter=True, timeout=30, priority=-4, success="2xx")
        definition = QueueDefinition("q", 200, 20, defaults=defaults)
        self.assertIs(await self.repository.put_queue(definition), True)
        self.assertEqual(await self.repository.find_queue("q"), definition)
        self.assertEqual(await self.repository.list_queues(), [definition])
        revision = await self.repository.revision()
        self.assertIs(await self.repository.put_queue(definition), False)
        self.assertEqual(await self.repository.revision(), revision)
        fewer = QueueDefinition("q", 200, 20, defaults=QueueDefaults(priority=1))
        self.assertIs(await self.repository.put_queue(fewer), True)
        self.assertEqual(await self.repository.find_queue("q"), fewer)
        self.assertIs(await self.repository.put_queue(QueueDefinition("q", 200, 20)), True)
        self.assertEqual(await self.repository.find_queue("q"), QueueDefinition("q", 200, 20))
        self.assertEqual(await self.repository.delete_queue("q"), QueueDefinition("q", 200, 20))

    async def test_paused_round_trip(self) -> None:
        """A paused definition (B9) reads back paused, beside its job defaults."""
        paused = QueueDefinition("q", 200, 20, defaults=QueueDefaults(priority=2), paused=True)
        self.assertIs(await self.repository.put_queue(paused), True)
        self.assertEqual(await self.repository.find_queue("q"), paused)
        self.assertIs(await self.repository.put_queue(paused), False)
        resumed = attr.evolve(paused, paused=False)
        self.assertIs(await self.repository.put_queue(resumed), True)
        self.assertEqual(await self.repository.list_queues(), [resumed])
