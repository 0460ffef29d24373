"""
Unit tests of the job history pieces (protocol B8): the output kept of an
answer, the record the SQL stores keep, the list filters, the clean-up
timer, the dispatcher's kept completions and the delivery's capture.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from fireworq.dispatch.delivery import HTTPDeliverer
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import EventFanout
from fireworq.history.cleaner import BATCH, HistoryCleaner
from fireworq.history.filters import BadFilter, JobFilter, filtered_page, parse_filter
from fireworq.history.record import (
    OUTPUT_LIMIT,
    KeptJob,
    capture_output,
    decode_record,
    encode_record,
    failure_reason,
    kept_job,
    retention_seconds,
)
from fireworq.joboptions.values import JobOptions, QueueDefaults
from fireworq.lease import SoleLease
from fireworq.model import (
    AttemptTimes,
    Completion,
    CompletionKind,
    Job,
    NewJob,
    Page,
    PushEntry,
    QueueDefinition,
    Result,
)
from fireworq.store.interface import NodeInfo
from fireworq.store.memory import MemoryJobStore


def a_job(**fields: Any) -> Job:
    values = dict(id=3, category="c", url="http://w/", payload="p", status="grabbed", created_at=1000,
                  next_try=1000, timeout=5, fail_count=0, retry_count=2, retry_delay=1, grabber_id=9, attempts=1)
    values.update(fields)
    return Job(**values)


class OutputTests(SynchronousTestCase):
    def test_short_body_whole(self) -> None:
        self.assertEqual(capture_output('{"status":"success"} é'.encode()), ('{"status":"success"} é', False))

    def test_cut_at_limit(self) -> None:
        text, cut = capture_output(b"a" * (OUTPUT_LIMIT + 10))
        self.assertEqual((len(text), cut), (OUTPUT_LIMIT, True))

    def test_cut_never_splits_a_character(self) -> None:
        for width, char in ((2, "é"), (3, "日"), (4, "\U0001f600")):
            for pad in range(width):
                body = b"x" * pad + char.encode() * (OUTPUT_LIMIT // width + 2)
                text, cut = capture_output(body)
                raw = text.encode()
                self.assertTrue(cut)
                self.assertLessEqual(len(raw), OUTPUT_LIMIT)
                self.assertGreater(len(raw), OUTPUT_LIMIT - width)
                self.assertNotIn("\ufffd", text, (width, pad))

    def test_exact_limit_not_cut(self) -> None:
        self.assertEqual(capture_output(b"b" * OUTPUT_LIMIT)[1], False)

    def test_invalid_utf8_replaced(self) -> None:
        self.assertEqual(capture_output(b"\xff\xfeok"), ("\ufffd\ufffdok", False))


class RecordTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        job = a_job(options=JobOptions(name="n", tags=(("k", "v"),)))
        completion = Completion(job, CompletionKind.SUCCESS, Result("success", 200, "m", output="out \u2713"),
                                keep_ms=500, attempt=AttemptTimes(900, 950))
        kept = kept_job(completion, 1000)
        again = decode_record(kept.id, kept.state, kept.finished_at, kept.expires_at, encode_record(kept))
        self.assertEqual(again, kept)
        self.assertEqual((kept.expires_at, kept.elapsed, kept.attempts), (1500, 50, 1))

    def test_decode_tolerates_garbage(self) -> None:
        kept = decode_record(1, "completed", 5, 6, b"not json")
        self.assertEqual((kept.id, kept.job.url, kept.result.status), (1, "", ""))

    def test_states_and_reasons(self) -> None:
        job = a_job()
        cases = [
            (CompletionKind.SUCCESS, "success", False, "completed"),
            (CompletionKind.FAIL, "permanent-failure", False, "failed"),
            (CompletionKind.FAIL, "expired", False, "expired"),
            (CompletionKind.CANCEL, "internal-failure", False, "canceled"),
            (CompletionKind.SUCCESS, "success", True, "canceled"),
        ]
        for kind, status, canceled, state in cases:
            kept = kept_job(Completion(job, kind, Result(status), keep_ms=1), 10, canceled)
            self.assertEqual(kept.state, state, (kind, status))
        aborted = kept_job(Completion(job, CompletionKind.CANCEL, Result("internal-failure", 0, "Request failed: CancelledError"), keep_ms=1), 10)
        self.assertEqual((aborted.result.status, aborted.result.message), ("canceled", "the job was canceled while being delivered"))
        answered = kept_job(Completion(job, CompletionKind.SUCCESS, Result("success", 200, "done"), keep_ms=1), 10, True)
        self.assertEqual((answered.result.status, answered.result.code, answered.result.message), ("canceled", 200, "done"))
        self.assertEqual(failure_reason(Result("permanent-failure")), "permanent-failure")
        self.assertEqual(failure_reason(Result("expired")), "expired")
        self.assertEqual(failure_reason(Result("failure")), "retries-exhausted")
        self.assertEqual(failure_reason(Result("internal-failure")), "retries-exhausted")

    def test_failed_job_keeps_its_allowance(self) -> None:
        for retries_left in (0, 2):
            job = a_job(retry_count=retries_left, fail_count=1, attempts=2)
            kept = kept_job(Completion(job, CompletionKind.FAIL, Result("failure"), keep_ms=1), 10)
            self.assertEqual((kept.job.fail_count, kept.job.max_retries, kept.attempts), (2, 1 + retries_left, 2))

    def test_retention(self) -> None:
        plain = QueueDefinition("q", 100, 1)
        own = QueueDefinition("q", 100, 1, defaults=QueueDefaults(retention=60))
        none = QueueDefinition("q", 100, 1, defaults=QueueDefaults(retention=0))
        self.assertEqual([retention_seconds(d, 30) for d in (plain, own, none, None)], [30, 60, 0, 30])


class FilterTests(SynchronousTestCase):
    def test_parse(self) -> None:
        self.assertEqual(parse_filter([], []), JobFilter())
        self.assertEqual(parse_filter(["send*"], ["a:1", "b:x:y"]),
                         JobFilter(prefix="send", tags=(("a", "1"), ("b", "x:y"))))
        self.assertEqual(parse_filter(["exact"], []), JobFilter(name="exact"))
        for names, tags in ((["a", "b"], []), ([""], []), ([], ["nocolon"]), ([], [":v"])):
            self.assertRaises(BadFilter, parse_filter, names, tags)

    def test_matches(self) -> None:
        options = JobOptions(name="send-mail", tags=(("team", "a"), ("env", "prod")))
        self.assertTrue(parse_filter(["send-*"], ["team:a", "env:prod"]).matches(options))
        self.assertTrue(parse_filter(["*"], []).matches(options))
        self.assertFalse(parse_filter(["send"], []).matches(options))
        self.assertFalse(parse_filter([], ["team:b"]).matches(options))
        self.assertFalse(parse_filter(["*"], []).matches(JobOptions()))

    def walk(self, items: List[Tuple[int, str]], job_filter: JobFilter, limit: int, scan_limit: int = 10_000):
        """Every page of a filtered walk over ``items`` (key, name), as a store pages them."""
        calls: List[int] = []

        def fetch(start: Optional[tuple], count: int) -> Deferred:
            calls.append(count)
            rest = [i for i in items if start is None or (i[0], i[0]) >= start]
            page = rest[:count]
            nxt = rest[count] if len(rest) > count else None
            return succeed(Page(page, None if nxt is None else (nxt[0], nxt[0])))

        pages = []
        start = None
        while True:
            page = self.successResultOf(filtered_page(
                fetch, lambda i: (i[0], i[0]), lambda i: JobOptions(name=i[1]), job_filter, limit, start, scan_limit))
            pages.append([i[0] for i in page.items])
            if page.next_key is None:
                return pages, calls
            start = page.next_key

    def test_walk_visits_every_match_once(self) -> None:
        items = [(n, "hit" if n % 3 == 0 else "miss") for n in range(1, 1201)]
        pages, _ = self.walk(items, JobFilter(name="hit"), 7)
        flat = [n for page in pages for n in page]
        self.assertEqual(flat, [n for n, name in items if name == "hit"])
        self.assertTrue(all(len(page) == 7 for page in pages[:-1]))

    def test_scan_limit_bounds_one_request(self) -> None:
        items = [(n, "miss") for n in range(1, 2001)] + [(3000, "hit")]
        pages, _ = self.walk(items, JobFilter(name="hit"), 5, scan_limit=600)
        self.assertEqual(pages[-1], [3000])
        self.assertTrue(all(page == [] for page in pages[:-1]))
        self.assertEqual(len(pages), 4)

    def test_no_filter_is_one_store_call(self) -> None:
        pages, calls = self.walk([(1, "a"), (2, "b")], JobFilter(), 10)
        self.assertEqual((pages, calls), ([[1, 2]], [10]))


class _Lease:
    def __init__(self) -> None:
        self.holding = True

    def held(self) -> bool:
        return self.holding


class _ExpiringStore:
    def __init__(self, due: int) -> None:
        self.due = due
        self.calls: List[int] = []

    def delete_expired_history(self, queue_name: str, limit: int) -> Deferred:
        self.calls.append(limit)
        gone = min(self.due, limit)
        self.due -= gone
        return succeed(gone)


class CleanerTests(SynchronousTestCase):
    def test_batches_until_a_short_one(self) -> None:
        clock = Clock()
        store = _ExpiringStore(BATCH * 2 + 3)
        deleted: List[int] = []
        cleaner = HistoryCleaner(store, "q", _Lease(), clock, interval=5, on_deleted=lambda q, n: deleted.append(n))
        cleaner.startService()
        self.assertEqual(store.calls, [])
        clock.advance(5)
        # (Each next batch is a callLater(0): a Clock runs them in one advance.)
        self.assertEqual((len(store.calls), deleted, cleaner.deleted), (3, [BATCH, BATCH, 3], BATCH * 2 + 3))
        cleaner.stopService()

    def test_nothing_without_the_lease(self) -> None:
        clock = Clock()
        store = _ExpiringStore(10)
        lease = _Lease()
        lease.holding = False
        cleaner = HistoryCleaner(store, "q", lease, clock, interval=5)
        cleaner.startService()
        clock.advance(5)
        self.assertEqual(store.calls, [])
        cleaner.stopService()


class _Answering:
    """A deliverer answering every job with one result at once."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.keep_output = False

    def deliver(self, queue_name: str, job: Job) -> Deferred:
        return succeed(self.result)


class DispatcherKeepTests(SynchronousTestCase):
    def dispatch(self, definition: QueueDefinition, job_lifetime: int, result: Result) -> Tuple[MemoryJobStore, Any]:
        clock = Clock()
        clock.advance(1_700_000_000)
        store = MemoryJobStore(lambda: int(clock.seconds() * 1000))
        store.prepare_queue("q")
        deliverer = _Answering(result)
        lease = SoleLease("q", store, NodeInfo("n", "h"), 42, clock)
        dispatcher = QueueDispatcher(definition, store, lease, deliverer, EventFanout([]), clock,
                                     shutdown_timeout=1, job_lifetime=job_lifetime)
        [job] = self.successResultOf(store.push([PushEntry("q", NewJob("c", "http://w/"))]))
        dispatcher.startService()
        clock.advance(0)
        clock.advance(1)
        self.successResultOf(dispatcher.stopService())
        return store, job, deliverer

    def test_kept_with_queue_retention(self) -> None:
        definition = QueueDefinition("q", 100, 2, defaults=QueueDefaults(retention=60))
        store, job, deliverer = self.dispatch(definition, 0, Result("success", 200, output="o"))
        self.assertTrue(deliverer.keep_output)
        kept = self.successResultOf(store.find_kept("q", job.id))
        self.assertEqual((kept.state, kept.result.output, kept.expires_at - kept.finished_at >= 59_000),
                         ("completed", "o", True))

    def test_kept_with_job_lifetime(self) -> None:
        store, job, _ = self.dispatch(QueueDefinition("q", 100, 2), 30, Result("permanent-failure", 200))
        self.assertEqual(self.successResultOf(store.find_kept("q", job.id)).state, "failed")

    def test_not_kept_by_default(self) -> None:
        store, job, deliverer = self.dispatch(QueueDefinition("q", 100, 2), 0, Result("success", 200))
        self.assertFalse(deliverer.keep_output)
        self.assertIsNone(self.successResultOf(store.find_kept("q", job.id)))

    def test_retention_zero_overrides_job_lifetime(self) -> None:
        definition = QueueDefinition("q", 100, 2, defaults=QueueDefaults(retention=0))
        store, job, _ = self.dispatch(definition, 30, Result("success", 200))
        self.assertIsNone(self.successResultOf(store.find_kept("q", job.id)))


class _Answer(Resource):
    isLeaf = True

    def __init__(self, body: bytes, code: int = 200) -> None:
        super().__init__()
        self.body = body
        self.code = code

    def render_POST(self, request: Any) -> bytes:
        request.setResponseCode(self.code)
        return self.body


class DeliveryCaptureTests(SynchronousTestCase):
    def deliver(self, body: bytes, keep: bool, code: int = 200, **kwargs: Any) -> Result:
        stub = StubTreq(_Answer(body, code))
        deliverer = HTTPDeliverer(stub, "ua", Clock(), **kwargs)
        deliverer.keep_output = keep
        d = deliverer.deliver("q", a_job())
        stub.flush()
        return self.successResultOf(d)

    def test_output_only_when_kept(self) -> None:
        body = b'{"status":"success","message":"m"}'
        self.assertIsNone(self.deliver(body, False).output)
        result = self.deliver(body, True)
        self.assertEqual((result.status, result.output, result.output_truncated), ("success", body.decode(), False))

    def test_long_answer_cut(self) -> None:
        result = self.deliver(b'{"status":"failure","pad":"' + b"x" * 100_000 + b'"}', True, 500)
        self.assertEqual((len(result.output), result.output_truncated, result.status), (OUTPUT_LIMIT, True, "failure"))

    def test_too_large_answer_keeps_its_start(self) -> None:
        result = self.deliver(b"y" * 200_000, True, max_response_bytes=100_000)
        self.assertEqual((result.status, result.output_truncated), ("failure", True))
        self.assertEqual(result.output, "y" * OUTPUT_LIMIT)


from tests.test_web import APITestCase as _APITestCase  # noqa: E402


class HistoryAPITests(_APITestCase):
    """The history answers of the API over memory stores (the in-process API of tests/test_web.py)."""

    def push(self, **body: Any) -> dict:
        body.setdefault("url", "http://w/")
        code, answer = self.call("POST", "/job/c", body)
        self.assertEqual(code, 200, answer)
        return answer

    def test_retention_shown_only_when_not_the_default(self) -> None:
        code, q = self.call("PUT", "/queue/q", {"retention": 600})
        self.assertEqual((code, q["retention"]), (200, 600))
        code, q = self.call("PUT", "/queue/q", {"retention": 0})  # the server's job_lifetime is 0
        self.assertNotIn("retention", q)
        code, error = self.call("PUT", "/queue/q", {"retention": -1})
        self.assertEqual(code, 400)
        self.assertIn("retention", error["message"])
        code, error = self.call("PUT", "/queue/q", {"retention": "1h"})
        self.assertEqual(code, 400)

    def test_state_and_attempts_only_with_retention(self) -> None:
        self.call("PUT", "/queue/q", {"max_workers": 1})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        job = self.push(run_after=60)
        code, shown = self.call("GET", f"/queue/q/job/{job['id']}")
        self.assertEqual(code, 200)
        self.assertNotIn("state", shown)
        self.call("PUT", "/queue/q", {"max_workers": 1, "retention": 60})
        shown = self.call("GET", f"/queue/q/job/{job['id']}")[1]
        self.assertEqual((shown["state"], shown["attempts"]), ("deferred", 0))
        listed = self.call("GET", "/queue/q/deferred")[1]["jobs"][0]
        self.assertEqual(listed["state"], "deferred")

    def test_filters_on_job_lists_and_failure_log(self) -> None:
        self.call("PUT", "/queue/q", {"max_workers": 1})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        ids = {}
        for name, tags in (("send-a", {"t": "1"}), ("send-b", {"t": "2"}), ("other", {"t": "1", "u": "x"})):
            ids[name] = self.push(run_after=60, name=name, tags=tags)["id"]
        self.push(run_after=60)  # no name, no tags

        def listed(query: str) -> list:
            code, page = self.call("GET", "/queue/q/deferred" + query)
            self.assertEqual(code, 200, page)
            return [j["id"] for j in page["jobs"]]

        self.assertEqual(listed("?name=send-a"), [ids["send-a"]])
        self.assertEqual(sorted(listed("?name=send-*")), sorted([ids["send-a"], ids["send-b"]]))
        self.assertEqual(sorted(listed("?tag=t:1")), sorted([ids["send-a"], ids["other"]]))
        self.assertEqual(listed("?tag=t:1&tag=u:x"), [ids["other"]])
        self.assertEqual(listed("?name=send-*&tag=t:2"), [ids["send-b"]])
        self.assertEqual(listed("?name=nothing"), [])
        # Paging a filtered list visits every match once.
        seen, cursor = [], ""
        while True:
            code, page = self.call("GET", "/queue/q/deferred?limit=1&tag=t:1" + (f"&cursor={cursor}" if cursor else ""))
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(sorted(seen), sorted([ids["send-a"], ids["other"]]))
        for query, word in (("?tag=nocolon", "tag"), ("?tag=:v", "tag"), ("?name=", "name"), ("?name=a&name=b", "name")):
            code, error = self.call("GET", "/queue/q/deferred" + query)
            self.assertEqual(code, 400, query)
            self.assertIn(word, error["message"])
        code, error = self.call("GET", "/queue/q/failed?tag=x")
        self.assertEqual(code, 400)
        code, page = self.call("GET", "/queue/q/failed?name=x*")
        self.assertEqual((code, page), (200, {"failed_jobs": [], "next_cursor": ""}))

    def test_push_answers_show_state_only_with_retention(self) -> None:
        """
        B8: in a queue with retention every job answer -- single and batch
        pushes, replays of an idempotency key, pushes again -- shows state
        and attempts; elsewhere push answers keep the Part A shape.
        """
        self.call("PUT", "/queue/q", {"max_workers": 1})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        part_a = {"id", "queue_name", "category", "url", "payload", "run_after", "max_retries", "retry_delay", "timeout"}
        self.assertEqual(set(self.push(run_after=60)), part_a)
        code, batch = self.call("POST", "/jobs/c", [{"url": "http://w/", "run_after": 60}])
        self.assertEqual((code, set(batch[0])), (200, part_a))
        self.push(run_after=60, idempotency_key="k0")
        self.assertEqual(set(self.push(run_after=60, idempotency_key="k0")), part_a | {"idempotency_key"})

        self.call("PUT", "/queue/q", {"max_workers": 1, "retention": 60})
        deferred = self.push(run_after=60)
        self.assertEqual((deferred["state"], deferred["attempts"]), ("deferred", 0))
        code, batch = self.call("POST", "/jobs/c", [{"url": "http://w/", "run_after": 60}, {"url": "http://w/", "run_after": 5}])
        self.assertEqual([(j["state"], j["attempts"]) for j in batch], [("deferred", 0), ("deferred", 0)])
        first = self.push(run_after=60, idempotency_key="k1")
        self.assertEqual(first["state"], "deferred")
        code, replay = self.call("POST", "/job/c", {"url": "http://w/", "run_after": 60, "idempotency_key": "k1"})
        self.assertEqual((replay["id"], replay["state"], replay["attempts"]), (first["id"], "deferred", 0))
        code, replays = self.call("POST", "/jobs/c", [{"url": "http://w/", "idempotency_key": "k1"}])
        self.assertEqual((replays[0]["id"], replays[0]["state"]), (first["id"], "deferred"))
        # Due now: handed straight to the idle dispatcher (B4), or waiting for its poll.
        due = self.push()
        self.assertIn((due["state"], due["attempts"]), [("grabbed", 1), ("waiting", 0)])

    def test_schedule_run_answer_shows_state_with_retention(self) -> None:
        self.call("PUT", "/queue/q", {"max_workers": 1})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        code, _ = self.call("PUT", "/schedule/s", {"cron": "0 3 * * *", "category": "c", "url": "http://w/", "run_after": 60})
        self.assertEqual(code, 200, _)
        code, job = self.call("POST", "/schedule/s/run")
        self.assertEqual(code, 200, job)
        self.assertNotIn("state", job)
        self.call("PUT", "/queue/q", {"max_workers": 1, "retention": 60})
        code, job = self.call("POST", "/schedule/s/run")
        self.assertEqual((code, job["state"], job["attempts"]), (200, "deferred", 0))

    def test_retry_of_an_unfinished_job_is_a_conflict(self) -> None:
        self.call("PUT", "/queue/q", {"max_workers": 1, "retention": 60})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        job = self.push(run_after=60)
        code, error = self.call("POST", f"/queue/q/job/{job['id']}/retry")
        self.assertEqual(code, 409, error)
        self.assertIn("deferred", error["message"])
        self.assertEqual(self.call("GET", "/queue/q/deferred")[1]["jobs"][0]["id"], job["id"])

    def test_failure_log_reason_only_with_retention(self) -> None:
        self.call("PUT", "/queue/q", {"max_workers": 1})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        for _ in range(2):
            self.push()
        self.clock.advance(1)
        for _ in range(4):
            for job_id, d in list(self.deliverer.pending.items()):
                del self.deliverer.pending[job_id]
                d.callback(Result("permanent-failure", 200, "no"))
            self.clock.advance(1)
        entries = self.call("GET", "/queue/q/failed")[1]["failed_jobs"]
        self.assertEqual(len(entries), 2, entries)
        self.assertNotIn("reason", entries[0])
        self.assertNotIn("reason", self.call("DELETE", f"/queue/q/failed/{entries[0]['id']}")[1])
        self.call("PUT", "/queue/q", {"max_workers": 1, "retention": 60})
        shown = self.call("GET", f"/queue/q/failed/{entries[1]['id']}")[1]
        self.assertEqual(shown["reason"], "permanent-failure")
        deleted = self.call("DELETE", f"/queue/q/failed/{entries[1]['id']}")[1]
        self.assertEqual(deleted["reason"], "permanent-failure")

    def test_completed_order(self) -> None:
        self.assertEqual(self.call("GET", "/queue/default/completed?order=desc")[0], 200)
        code, error = self.call("GET", "/queue/default/completed?order=asc")
        self.assertEqual(code, 400)
        self.assertIn("order", error["message"])

    def test_completed_and_retry_of_unknown(self) -> None:
        self.assertEqual(self.call("GET", "/queue/nope/completed")[0], 404)
        self.assertEqual(self.call("GET", "/queue/default/completed")[1], {"jobs": [], "next_cursor": ""})
        self.assertEqual(self.call("POST", "/queue/default/job/5/retry")[0], 404)
        self.assertEqual(self.call("POST", "/queue/default/job/x/retry")[0], 400)
        self.assertEqual(self.call("GET", "/queue/default/completed?limit=0")[0], 400)

    def test_canceled_job_is_kept_as_canceled(self) -> None:
        self.call("PUT", "/queue/q", {"max_workers": 1, "retention": 60})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        job = self.push()
        self.clock.advance(1)
        self.assertIn(job["id"], self.deliverer.pending)
        code, answer = self.call("DELETE", f"/queue/q/job/{job['id']}")
        self.assertEqual((code, answer["state"], answer["canceling"], answer["attempts"]), (202, "grabbed", True, 1))
        # The delivery is aborted (its Deferred canceled) and completes as CANCEL.
        self.clock.advance(1)
        code, kept = self.call("GET", f"/queue/q/job/{job['id']}")
        self.assertEqual((code, kept["state"], kept["result"]["status"], kept["status"]), (200, "canceled", "canceled", "finished"))
        # Run again: the new job's push answer, with its state (the queue keeps jobs).
        code, again = self.call("POST", f"/queue/q/job/{job['id']}/retry")
        self.assertEqual(code, 200, again)
        self.assertNotEqual(again["id"], job["id"])
        self.assertIn((again["state"], again["attempts"]), [("grabbed", 1), ("waiting", 0)])
