"""
Kept finished jobs (protocol B8, job history) in the three stores: one
contract (L{HistoryContractMixin}) run against the in-memory, SQLite and
MySQL job stores, with the fixtures of tests/store_contract.py.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from fireworq.history.interface import IJobHistory
from fireworq.history.record import FinishedState
from fireworq.joboptions.values import JobOptions
from fireworq.model import (
    AttemptTimes,
    Completion,
    CompletionKind,
    FailureOrder,
    Job,
    JobState,
    PushEntry,
    Result,
)
from tests.store_contract import StoreContractFixture, new_job
from tests.test_store_memory import _MemoryStores
from tests.test_store_sqlite import _SqliteStores

GRABBER = 7
KEEP_MS = 60_000


class HistoryContractMixin(StoreContractFixture):
    """What every store does with completions that ask to keep their job."""

    async def grabbed(self, queue: str = "q", count: int = 1, **fields: Any) -> List[Job]:
        await self.store.prepare_queue(queue)
        await self.store.push([PushEntry(queue, new_job(**fields)) for _ in range(count)])
        return await self.store.grab(queue, count, GRABBER)

    def times(self, started: int = 0, finished: int = 0) -> AttemptTimes:
        now = self.clock()
        return AttemptTimes(now + started, now + finished)

    async def finish(self, job: Job, kind: CompletionKind, result: Result, keep_ms: int = KEEP_MS,
                     times: Optional[AttemptTimes] = None, grabber: int = GRABBER, queue: str = "q") -> None:
        completion = Completion(job, kind, result, keep_ms=keep_ms, attempt=times or self.times(-50, 0))
        await self.store.complete(queue, [completion], grabber)

    def test_provides_interface(self) -> None:
        verifyObject(IJobHistory, self.store)

    async def test_completed_job_kept_with_result(self) -> None:
        [job] = await self.grabbed(payload='{"a":1}', max_retries=2, retry_delay=3, timeout=9,
                                   options=JobOptions(name="send", tags=(("t", "1"),)))
        times = self.times(-120, -20)
        output = "h\u00e9llo \U0001f600 " * 3
        await self.finish(job, CompletionKind.SUCCESS, Result("success", 200, "done", output=output), times=times)
        self.assertIsNone(await self.store.find_job("q", job.id))
        kept = await self.store.find_kept("q", job.id)
        self.assertEqual(kept.state, FinishedState.COMPLETED.value)
        self.assertEqual(kept.attempts, 1)
        self.assertEqual((kept.result.status, kept.result.code, kept.result.message), ("success", 200, "done"))
        self.assertEqual(kept.result.output, output)
        self.assertFalse(kept.result.output_truncated)
        self.assertEqual((kept.started_at, kept.finished_at, kept.elapsed), (times.started_at, times.finished_at, 100))
        if self.usesInjectedClock:
            self.assertEqual(kept.expires_at, self.clock() + KEEP_MS)
        self.assertEqual(
            (kept.job.category, kept.job.url, kept.job.payload, kept.job.max_retries, kept.job.retry_delay,
             kept.job.timeout, kept.job.created_at, kept.job.options),
            (job.category, job.url, job.payload, 2, 3, 9, job.created_at, job.options),
        )
        self.assertEqual(await self.store.count_kept("q"),
                         {"completed": 1, "failed": 0, "expired": 0, "canceled": 0})

    async def test_not_kept_without_retention(self) -> None:
        [job] = await self.grabbed()
        await self.finish(job, CompletionKind.SUCCESS, Result("success", 200), keep_ms=0)
        self.assertIsNone(await self.store.find_kept("q", job.id))
        self.assertEqual((await self.store.list_kept("q", 10, None)).items, [])

    async def test_failed_job_kept_and_logged(self) -> None:
        [job] = await self.grabbed(max_retries=0)
        await self.finish(job, CompletionKind.FAIL, Result("permanent-failure", 500, "no", output="bad"))
        kept = await self.store.find_kept("q", job.id)
        self.assertEqual((kept.state, kept.job.fail_count, kept.job.max_retries, kept.attempts), ("failed", 1, 0, 1))
        self.assertEqual(kept.result.output, "bad")
        [failed] = (await self.store.list_failed("q", FailureOrder.FAILED, 10, None)).items
        self.assertEqual((failed.job_id, failed.result.status), (job.id, "permanent-failure"))
        self.assertEqual((await self.store.list_kept("q", 10, None)).items, [], "only completed jobs are listed")

    async def test_expired_job_kept_as_expired(self) -> None:
        [job] = await self.grabbed(max_retries=3)
        await self.finish(job, CompletionKind.FAIL, Result("expired", 0, "deadline passed"))
        kept = await self.store.find_kept("q", job.id)
        self.assertEqual((kept.state, kept.result.status, kept.job.max_retries), ("expired", "expired", 3))

    async def test_canceled_job_kept_as_canceled(self) -> None:
        first, second = await self.grabbed(count=2)
        await self.finish(first, CompletionKind.CANCEL, Result("internal-failure", 0, "aborted"))
        # Marked canceled through the store while grabbed: whatever
        # completion arrives, the job is kept as canceled.
        await self.store.cancel_job("q", second.id)
        await self.finish(second, CompletionKind.SUCCESS, Result("success", 200))
        for job in (first, second):
            kept = await self.store.find_kept("q", job.id)
            self.assertEqual((kept.state, kept.result.status), ("canceled", "canceled"))
            self.assertIsNone(await self.store.find_job("q", job.id))

    async def test_retry_is_not_kept(self) -> None:
        [job] = await self.grabbed(max_retries=2)
        await self.finish(job, CompletionKind.RETRY, Result("failure", 500))
        self.assertIsNone(await self.store.find_kept("q", job.id))
        self.assertEqual((await self.store.find_job("q", job.id)).status, "claimed")

    async def test_fenced_completion_keeps_nothing(self) -> None:
        [job] = await self.grabbed()
        await self.finish(job, CompletionKind.SUCCESS, Result("success", 200), grabber=GRABBER + 1)
        self.assertIsNone(await self.store.find_kept("q", job.id))
        self.assertEqual((await self.store.find_job("q", job.id)).status, "grabbed")

    async def test_list_kept_newest_first_with_cursor(self) -> None:
        jobs = await self.grabbed(count=6)
        for index, job in enumerate(jobs[:5]):
            # Finish times out of push order; equal times order by id.
            finished = [30, 10, 30, 20, 0][index]
            await self.finish(job, CompletionKind.SUCCESS, Result("success", 200),
                              times=self.times(finished - 5, finished))
        await self.finish(jobs[5], CompletionKind.FAIL, Result("failure", 500))
        expected = [jobs[2].id, jobs[0].id, jobs[3].id, jobs[1].id, jobs[4].id]
        seen: List[int] = []
        start = None
        while True:
            page = await self.store.list_kept("q", 2, start)
            self.assertLessEqual(len(page.items), 2)
            seen += [k.id for k in page.items]
            if page.next_key is None:
                break
            start = page.next_key
        self.assertEqual(seen, expected)

    async def test_delete_expired_in_batches(self) -> None:
        self.needClock()
        jobs = await self.grabbed(count=4)
        for job in jobs[:3]:
            await self.finish(job, CompletionKind.SUCCESS, Result("success", 200), keep_ms=1000)
        await self.finish(jobs[3], CompletionKind.SUCCESS, Result("success", 200), keep_ms=10_000)
        self.assertEqual(await self.store.delete_expired_history("q", 2), 0)
        self.clock.advance(1.0)
        self.assertEqual(await self.store.delete_expired_history("q", 2), 2)
        self.assertEqual(await self.store.delete_expired_history("q", 2), 1)
        self.assertEqual(await self.store.delete_expired_history("q", 2), 0)
        self.assertEqual([k.id for k in (await self.store.list_kept("q", 10, None)).items], [jobs[3].id])
        self.assertEqual((await self.store.count_kept("q"))["completed"], 1)

    async def test_truncated_output_round_trip(self) -> None:
        [job] = await self.grabbed()
        await self.finish(job, CompletionKind.SUCCESS,
                          Result("success", 200, output="x" * 65536, output_truncated=True))
        kept = await self.store.find_kept("q", job.id)
        self.assertEqual((len(kept.result.output), kept.result.output_truncated), (65536, True))

    async def test_live_lists_unchanged(self) -> None:
        jobs = await self.grabbed(count=2)
        await self.finish(jobs[0], CompletionKind.SUCCESS, Result("success", 200))
        grabbed = (await self.store.list_jobs("q", JobState.GRABBED, 10, None, False)).items
        self.assertEqual([j.id for j in grabbed], [jobs[1].id])


class MemoryHistoryTests(_MemoryStores, HistoryContractMixin, TestCase):
    """The in-memory store keeps finished jobs."""


class SqliteHistoryTests(_SqliteStores, HistoryContractMixin, TestCase):
    """The SQLite store keeps finished jobs."""


try:
    from tests.test_store_mysql import _MySQLStores
except Exception:  # pragma: no cover - the MySQL tests' own module decides about skips
    _MySQLStores = None

if _MySQLStores is not None:

    class MySQLHistoryTests(_MySQLStores, HistoryContractMixin, TestCase):
        """The MySQL store keeps finished jobs (fireworq_jq_done tables)."""
