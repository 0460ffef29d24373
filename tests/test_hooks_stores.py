"""
Event hooks (protocol B12) in the three stores, with the fixtures of
tests/store_contract.py:

  - L{HookStoreContractMixin}: the hook definitions (memory, the sqlite
    file, the MySQL ``fireworq_hook`` table);
  - L{HookWriteContractMixin}: the atomic write -- a push, completion,
    retry, failure or cancellation and the hook jobs of its event are
    stored together (or not at all), only for jobs the change really
    touched, and with no matcher nothing is written to ``_hooks``.
"""

from __future__ import annotations

import json
import re
from typing import Any, List

from twisted.internet.defer import succeed
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from fireworq.hooks.matcher import HookMatcher
from fireworq.hooks.model import HOOKS_QUEUE, HookDefinition, parse_hook
from fireworq.hooks.storage import IHookStore, open_hook_store
from fireworq.joboptions.values import JobOptions
from fireworq.model import Completion, CompletionKind, FailureOrder, Job, JobState, PushEntry, Result
from tests.store_contract import StoreContractFixture, new_job
from tests.test_store_memory import _MemoryStores
from tests.test_store_sqlite import _SqliteStores

GRABBER = 11
ALL_EVENTS = ["job.pushed", "job.completed", "job.retried", "job.failed", "job.expired", "job.canceled"]


def hook(name: str = "h", **body: Any) -> HookDefinition:
    body.setdefault("url", "http://receiver.test/hook")
    body.setdefault("events", ALL_EVENTS)
    return parse_hook(name, body)[0]


class HookStoreContractMixin(StoreContractFixture):
    """What every driver's hook store keeps."""

    async def setUp(self) -> None:
        await super().setUp()
        self.hooks = open_hook_store(self.repository)
        await self.hooks.start()
        self.addCleanup(self.hooks.stop)
        await self.hooks.prepare()
        await self.hooks.prepare()  # idempotent

    def test_interface(self) -> None:
        verifyObject(IHookStore, self.hooks)

    async def test_put_find_list_delete(self) -> None:
        self.assertEqual(await self.hooks.load_all(), [])
        first = hook("b", queues="orders-*", events=["job.failed", "job.completed"])
        second = hook("a")
        await self.hooks.put(first)
        await self.hooks.put(second)
        self.assertEqual(await self.hooks.find("b"), first)
        # Kept as given (A16: parse_hook no longer reorders them to the types' table order).
        self.assertEqual((await self.hooks.find("b")).events, ("job.failed", "job.completed"))
        self.assertEqual(await self.hooks.load_all(), [second, first])
        self.assertIsNone(await self.hooks.find("c"))
        changed = HookDefinition("b", "https://other.test/x", ("job.pushed",), first.secret, None)
        await self.hooks.put(changed)
        self.assertEqual(await self.hooks.find("b"), changed)
        self.assertEqual(await self.hooks.delete("b"), changed)
        self.assertIsNone(await self.hooks.delete("b"))
        self.assertEqual(await self.hooks.load_all(), [second])

    async def test_unicode_and_long_values(self) -> None:
        h = hook("x", url="http://receiver.test/" + "\u00e9" * 500, queues="q\u00fc*")
        await self.hooks.put(h)
        self.assertEqual(await self.hooks.find("x"), h)


class _Raising(HookMatcher):
    """A matcher that fails: the change it was asked about must not be stored."""

    def pushed(self, queue_name: str, job: Job, now_ms: int) -> list:
        raise RuntimeError("matcher broke")

    def finished(self, queue_name: str, completion: Completion, now_ms: int, canceled: bool = False) -> list:
        raise RuntimeError("matcher broke")


class HookWriteContractMixin(StoreContractFixture):
    """The hook jobs of an event are written with the change it reports."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.store.prepare_queue("q")
        await self.store.prepare_queue("other")
        await self.store.prepare_queue(HOOKS_QUEUE)
        self.raw = getattr(self.store, "observed", self.store)

    def hooked(self, *hooks: HookDefinition) -> None:
        self.raw.event_hooks = HookMatcher(hooks or [hook(queues="q")])

    async def hook_events(self) -> List[Any]:
        page = await self.store.list_jobs(HOOKS_QUEUE, JobState.WAITING, 1000, None, False)
        return [json.loads(job.payload) for job in page.items]

    async def hook_jobs(self) -> List[Job]:
        return (await self.store.list_jobs(HOOKS_QUEUE, JobState.WAITING, 1000, None, False)).items

    async def grabbed(self, count: int = 1, **fields: Any) -> List[Job]:
        await self.store.push([PushEntry("q", new_job(**fields)) for _ in range(count)])
        return await self.store.grab("q", count, GRABBER)

    async def test_no_matcher_no_hook_jobs(self) -> None:
        self.assertIsNone(self.raw.event_hooks)
        [job] = await self.grabbed()
        await self.store.complete("q", [Completion(job, CompletionKind.SUCCESS, Result("success", 200))], GRABBER)
        self.assertEqual(await self.hook_jobs(), [])

    async def test_push_and_its_event(self) -> None:
        self.hooked()
        stored = await self.store.push([PushEntry("q", new_job(payload='{"a":1}')), PushEntry("other", new_job())])
        jobs = await self.hook_jobs()
        self.assertEqual(len(jobs), 1)  # "other" does not match the hook's queues
        hook_job = jobs[0]
        self.assertEqual((hook_job.category, hook_job.url), ("h", "http://receiver.test/hook"))
        self.assertEqual((hook_job.max_retries, hook_job.retry_delay), (15, 5))
        self.assertEqual(hook_job.options.success, "2xx")
        self.assertEqual(hook_job.options.retry_backoff, 2)
        self.assertEqual(hook_job.options.retry_max_delay, 3600)
        self.assertEqual(hook_job.options.name, "job.pushed")
        event = json.loads(hook_job.payload)
        self.assertEqual(event["type"], "job.pushed")
        self.assertEqual(event["queue"], "q")
        self.assertEqual(event["job"]["id"], stored[0].id)
        self.assertEqual(event["job"]["payload"], {"a": 1})

    async def test_idempotent_replay_makes_no_event(self) -> None:
        self.hooked()
        options = JobOptions(idempotency_key="k1")
        await self.store.push([PushEntry("q", new_job(options=options))])
        await self.store.push([PushEntry("q", new_job(options=options))])
        self.assertEqual(len(await self.hook_jobs()), 1)

    async def test_each_outcome_and_its_event(self) -> None:
        self.hooked(hook(queues="q", events=ALL_EVENTS[1:]))
        jobs = await self.grabbed(4, max_retries=3)
        await self.store.complete(
            "q",
            [
                Completion(jobs[0], CompletionKind.SUCCESS, Result("success", 200, "ok")),
                Completion(jobs[1], CompletionKind.RETRY, Result("failure", 500, "again")),
                Completion(jobs[2], CompletionKind.FAIL, Result("permanent-failure", 200, "no")),
                Completion(jobs[3], CompletionKind.FAIL, Result("expired", 0, "deadline passed")),
            ],
            GRABBER,
        )
        events = await self.hook_events()
        by_job = {e["job"]["id"]: e for e in events}
        self.assertEqual(len(events), 4)
        self.assertEqual(by_job[jobs[0].id]["type"], "job.completed")
        self.assertEqual(by_job[jobs[0].id]["job"]["result"]["message"], "ok")
        self.assertEqual(by_job[jobs[1].id]["type"], "job.retried")
        self.assertEqual(by_job[jobs[1].id]["job"]["fail_count"], 1)
        self.assertEqual(by_job[jobs[2].id]["type"], "job.failed")
        self.assertEqual(by_job[jobs[3].id]["type"], "job.expired")
        self.assertEqual(len({e["id"] for e in events}), 4)

    async def test_completion_of_a_job_not_ours_makes_no_event(self) -> None:
        self.hooked()
        [job] = await self.grabbed()
        before = len(await self.hook_jobs())  # its push
        await self.store.complete("q", [Completion(job, CompletionKind.SUCCESS, Result("success", 200))], GRABBER + 1)
        self.assertEqual(len(await self.hook_jobs()), before)
        await self.store.complete("q", [Completion(job, CompletionKind.SUCCESS, Result("success", 200))], GRABBER)
        await self.store.complete("q", [Completion(job, CompletionKind.SUCCESS, Result("success", 200))], GRABBER)
        self.assertEqual(len(await self.hook_jobs()), before + 1)  # once, not again

    async def test_cancel_of_a_waiting_job(self) -> None:
        [job] = await self.store.push([PushEntry("q", new_job())])
        self.hooked(hook(queues="q", events=["job.canceled"]))
        await self.store.cancel_job("q", job.id)
        [event] = await self.hook_events()
        self.assertEqual((event["type"], event["job"]["id"], event["job"]["state"]), ("job.canceled", job.id, "canceled"))

    async def test_canceled_while_grabbed(self) -> None:
        self.hooked(hook(queues="q", events=["job.canceled", "job.completed"]))
        [job] = await self.grabbed()
        await self.store.cancel_job("q", job.id)
        self.assertEqual(await self.hook_events(), [])  # only marked: the delivery ends it
        await self.store.complete("q", [Completion(job, CompletionKind.SUCCESS, Result("success", 200))], GRABBER)
        [event] = await self.hook_events()
        self.assertEqual(event["type"], "job.canceled")

    async def test_hook_jobs_trigger_no_hooks(self) -> None:
        self.hooked(hook(events=ALL_EVENTS))  # every queue
        await self.store.push([PushEntry("q", new_job())])
        self.assertEqual(len(await self.hook_jobs()), 1)
        hook_job = (await self.store.grab(HOOKS_QUEUE, 1, GRABBER))[0]
        await self.store.complete(
            HOOKS_QUEUE, [Completion(hook_job, CompletionKind.SUCCESS, Result("success", 204))], GRABBER
        )
        self.assertEqual(await self.hook_jobs(), [])

    async def test_retry_from_the_failure_log_is_a_push(self) -> None:
        [job] = await self.grabbed()
        await self.store.complete("q", [Completion(job, CompletionKind.FAIL, Result("failure", 500))], GRABBER)
        page = await self.store.list_failed("q", FailureOrder.FAILED, 10, None)
        self.hooked(hook(queues="q", events=["job.pushed"]))
        failed, again = await self.store.retry_failed("q", page.items[0].id)
        [event] = await self.hook_events()
        self.assertEqual((event["type"], event["job"]["id"]), ("job.pushed", again.id))

    async def test_failing_matcher_stores_nothing(self) -> None:
        [job] = await self.grabbed()
        self.raw.event_hooks = _Raising([hook(queues="q")])
        with self.assertRaises(RuntimeError):
            await self.store.push([PushEntry("q", new_job(category="lost"))])
        waiting = (await self.store.list_jobs("q", JobState.WAITING, 100, None, False)).items
        self.assertEqual([j.category for j in waiting], [])
        with self.assertRaises(RuntimeError):
            await self.store.complete("q", [Completion(job, CompletionKind.SUCCESS, Result("success", 200))], GRABBER)
        self.assertIsNotNone(await self.store.find_job("q", job.id))  # still grabbed: not completed
        self.assertEqual(await self.hook_jobs(), [])


class _TracingCursor:
    """A DB-API cursor that records the statements it runs."""

    def __init__(self, cursor: Any, statements: List[str]) -> None:
        self._cursor = cursor
        self._statements = statements

    def execute(self, sql: str, *args: Any) -> Any:
        self._statements.append(sql)
        return self._cursor.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._statements.append(sql)
        return self._cursor.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def shapes(statements: List[str]) -> List[str]:
    """The statements with their numbers taken out (ids and times differ between runs)."""
    return [re.sub(r"\d+", "N", " ".join(sql.split())) for sql in statements]


class HotPathMixin(StoreContractFixture):
    """
    With no hook, or hooks only for other queues, a push and a completion
    run exactly the statements they ran before hooks existed.
    """

    async def setUp(self) -> None:
        await super().setUp()
        await self.store.prepare_queue("q")
        await self.store.prepare_queue(HOOKS_QUEUE)
        self.raw = getattr(self.store, "observed", self.store)
        self.statements: List[str] = []
        await self.trace(self.statements)

    async def round(self) -> List[str]:
        """The statement shapes of one push, grab and completion of two jobs."""
        del self.statements[:]
        # The MySQL grab remembers a queue's one priority (its next grab is
        # then one statement): every round starts from the same state.
        getattr(self.raw, "_lone_priority", {}).clear()
        await self.store.push([PushEntry("q", new_job()), PushEntry("q", new_job())])
        jobs = await self.store.grab("q", 2, GRABBER)
        await self.store.complete(
            "q",
            [Completion(jobs[0], CompletionKind.SUCCESS, Result("success", 200)),
             Completion(jobs[1], CompletionKind.RETRY, Result("failure", 500))],
            GRABBER,
        )
        await self.store.grab("q", 2, GRABBER)  # the retried job is not due: nothing
        return shapes(self.statements)

    async def test_no_extra_statements_without_a_matching_hook(self) -> None:
        before = await self.round()
        self.assertTrue(before)
        self.raw.event_hooks = HookMatcher([hook(queues="other-*")])
        self.assertEqual(await self.round(), before)
        self.raw.event_hooks = HookMatcher([hook(queues="q", events=["job.completed"])])
        hooked = await self.round()
        self.assertGreater(len(hooked), len(before))  # the test sees statements at all
        self.assertEqual(len(await self.hook_jobs()), 1)

    async def hook_jobs(self) -> List[Job]:
        return (await self.store.list_jobs(HOOKS_QUEUE, JobState.WAITING, 1000, None, False)).items


class SqliteHotPathTests(_SqliteStores, HotPathMixin, TestCase):
    """The sqlite store's statements with and without hooks."""

    def trace(self, statements: List[str]) -> Any:
        return self.raw.db.run(lambda conn: conn.set_trace_callback(statements.append))


class MemoryHookStoreTests(_MemoryStores, HookStoreContractMixin, TestCase):
    """Hook definitions in memory."""


class SqliteHookStoreTests(_SqliteStores, HookStoreContractMixin, TestCase):
    """Hook definitions in the sqlite file."""


class MemoryHookWriteTests(_MemoryStores, HookWriteContractMixin, TestCase):
    """The in-memory store writes hook jobs with their events."""


class SqliteHookWriteTests(_SqliteStores, HookWriteContractMixin, TestCase):
    """The sqlite store writes hook jobs in the transaction of their events."""


try:
    from tests.test_store_mysql import _MySQLStores
except Exception:  # pragma: no cover - the MySQL tests' own module decides about skips
    _MySQLStores = None

if _MySQLStores is not None:

    class MySQLHookStoreTests(_MySQLStores, HookStoreContractMixin, TestCase):
        """Hook definitions in the fireworq_hook table."""

    class MySQLHookWriteTests(_MySQLStores, HookWriteContractMixin, TestCase):
        """The MySQL store writes hook jobs in the transaction of their events."""

    class MySQLHotPathTests(_MySQLStores, HotPathMixin, TestCase):
        """The MySQL store's statements with and without hooks."""

        def trace(self, statements: List[str]) -> Any:
            store = self.raw
            go = store._go

            def traced(work: Any, *args: Any, **kwargs: Any) -> Any:
                return go(lambda cursor: work(_TracingCursor(cursor, statements)), *args, **kwargs)

            store._go = traced
            return succeed(None)
