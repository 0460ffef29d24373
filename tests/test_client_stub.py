"""
Unit tests of the client's requests and of answers a real server gives only
rarely, against a tiny local HTTP stub: the method, path, query, headers and
body each call sends; 503 answers on demand (retried for idempotent calls
and keyed pushes only, by both clients); a 502 page that is not JSON; an
answer of the wrong shape; a Server-Sent Events stream resumed with
Last-Event-ID; a server without ``/events``.

Every call is also tested against real server processes (tests/test_client*.py,
tests/test_cli*.py): auth errors 401/403/429 in tests/test_client_auth.py
(the stub test of them was removed for that), 503 from a node whose
database is down in tests/test_client_outage.py.  The stub runs in the
test's reactor and the client in a thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import attr
from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from fireworq.client import (
    AsyncClient,
    Client,
    Forbidden,
    RetryPolicy,
    ServiceUnavailable,
)


@attr.s(auto_attribs=True)
class Seen:
    """One request the stub received."""

    method: str
    path: str
    query: List[Tuple[str, str]]
    headers: Dict[str, str]
    body: Any


Answer = Tuple[int, Dict[str, str], Any]


class _Stub(Resource):
    isLeaf = True

    def __init__(self, answer: Callable[[Seen], Optional[Answer]]) -> None:
        super().__init__()
        self.answer = answer
        self.seen: List[Seen] = []

    def render(self, request: Any) -> Any:
        raw = request.content.read()
        query = [
            (k.decode(), v.decode()) for k, values in sorted(request.args.items()) for v in values
        ]
        seen = Seen(
            request.method.decode(),
            request.path.decode(),
            query,
            {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
            json.loads(raw) if raw else None,
        )
        self.seen.append(seen)
        result = self.answer(seen)
        if result is None:
            return NOT_DONE_YET
        code, headers, body = result
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name.encode(), value.encode())
        if isinstance(body, bytes):
            return body
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(body).encode()


class StubCase(TestCase):
    """Starts a stub whose answers come from L{answer}."""

    def answer(self, seen: Seen) -> Optional[Answer]:
        return 200, {}, {}

    def setUp(self) -> None:
        self.stub = _Stub(lambda seen: self.answer(seen))
        site = Site(self.stub)
        site.noisy = False
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        self.client = Client(self.url, token="t0k", retry=RetryPolicy(attempts=3, backoff=0.01, max_delay=0.05))
        self.addCleanup(self.client.close)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return threads.deferToThread(getattr(self.client, method), *args, **kwargs)


class RequestTests(StubCase):
    """What each call sends."""

    def answer(self, seen: Seen) -> Answer:
        if seen.path.startswith("/jobs/"):
            return 200, {}, [{"id": 1, "queue_name": "q"}, {"id": 2, "queue_name": "q"}]
        if seen.path.startswith("/job/"):
            return 200, {"Idempotent-Replayed": "true"}, {"id": 7, "queue_name": "q", "priority": 5}
        if seen.path.endswith("/purge"):
            return 200, {}, {"purged": 12}
        if seen.path.endswith(("/pause", "/resume")):
            return 200, {}, {"name": "q", "paused": seen.path.endswith("/pause")}
        if seen.path.endswith("/completed"):
            return 200, {}, {"jobs": [{"id": 1, "state": "completed", "attempts": 2, "result": {"status": "success"}}],
                             "next_cursor": ""}
        return 200, {}, {"id": 3, "queue_name": "q"} if seen.method == "POST" else {}

    @inlineCallbacks
    def test_push_sends_job_options_and_the_idempotency_key_header(self) -> Any:
        import datetime

        job = yield self.call(
            "push", "mail/x", "http://w/", {"a": 1}, run_after=datetime.timedelta(minutes=2), max_retries=3,
            name="welcome", tags={"tenant": "t1"}, headers={"X-Trace": "1"}, priority=5, retry_backoff=2.0,
            retry_max_delay=600, retry_jitter=True, success="2xx", deadline=3600, idempotency_key="order-1",
            future_field="kept",
        )
        seen = self.stub.seen[-1]
        self.assertEqual((seen.method, seen.path), ("POST", "/job/mail/x"))
        self.assertEqual(seen.headers["idempotency-key"], "order-1")
        self.assertEqual(seen.headers["authorization"], "Bearer t0k")
        self.assertEqual(seen.headers["content-type"], "application/json")
        self.assertEqual(seen.body, {
            "url": "http://w/", "payload": {"a": 1}, "run_after": 120, "max_retries": 3, "name": "welcome",
            "tags": {"tenant": "t1"}, "headers": {"X-Trace": "1"}, "priority": 5, "retry_backoff": 2.0,
            "retry_max_delay": 600, "retry_jitter": True, "success": "2xx", "deadline": 3600,
            "future_field": "kept",
        })
        self.assertTrue(job.replayed)
        self.assertEqual(job.extra, {"priority": 5})

    @inlineCallbacks
    def test_batch_elements_carry_their_own_keys(self) -> Any:
        yield self.call("push_batch", "c", [{"url": "u", "idempotency_key": "a"}, {"url": "u", "idempotency_key": "b"}])
        seen = self.stub.seen[-1]
        self.assertEqual(seen.path, "/jobs/c")
        self.assertNotIn("idempotency-key", seen.headers)
        self.assertEqual([j["idempotency_key"] for j in seen.body], ["a", "b"])

    @inlineCallbacks
    def test_second_wave_paths(self) -> Any:
        c = self.client
        calls: List[Tuple[Callable[[], Any], str, str, Any]] = [
            (lambda: c.pause("q 1"), "POST", "/queue/q%201/pause", None),
            (lambda: c.resume("q"), "POST", "/queue/q/resume", None),
            (lambda: c.purge("q"), "POST", "/queue/q/purge", None),
            (lambda: c.retry_job("q", 5), "POST", "/queue/q/job/5/retry", None),
            (lambda: c.list_completed("q", limit=5, name="send*", tags={"t": "1"}), "GET", "/queue/q/completed", None),
            (lambda: c.schedules(), "GET", "/schedules", None),
            (lambda: c.schedule("n"), "GET", "/schedule/n", None),
            (lambda: c.put_schedule("n", cron="@hourly", category="c", url="http://w/", job_name="j", max_retries=2),
             "PUT", "/schedule/n",
             {"url": "http://w/", "cron": "@hourly", "category": "c", "job_name": "j", "max_retries": 2}),
            (lambda: c.delete_schedule("n"), "DELETE", "/schedule/n", None),
            (lambda: c.run_schedule("n"), "POST", "/schedule/n/run", None),
            (lambda: c.signing_key("q"), "GET", "/queue/q/signing-key", None),
            (lambda: c.rotate_signing_key("q"), "POST", "/queue/q/signing-key/rotate", None),
            (lambda: c.hooks(), "GET", "/hooks", None),
            (lambda: c.hook("h"), "GET", "/hook/h", None),
            (lambda: c.put_hook("h", url="http://h/", events=["job.failed"], queues="mail*"), "PUT", "/hook/h",
             {"url": "http://h/", "events": ["job.failed"], "queues": "mail*"}),
            (lambda: c.delete_hook("h"), "DELETE", "/hook/h", None),
            (lambda: c.tokens(), "GET", "/tokens", None),
            (lambda: c.token("abc"), "GET", "/token/abc", None),
            (lambda: c.create_token("ci", ["push", "read"], queues="ci-*", rate=10, burst=20), "POST", "/tokens",
             {"name": "ci", "scopes": ["push", "read"], "queues": "ci-*", "rate": 10, "burst": 20}),
            (lambda: c.delete_token("abc"), "DELETE", "/token/abc", None),
        ]
        results = []
        for action, method, path, body in calls:
            result = yield threads.deferToThread(action)
            results.append(result)
            seen = self.stub.seen[-1]
            self.assertEqual((seen.method, seen.path, seen.body), (method, path, body))
        self.assertTrue(results[0].paused)
        self.assertFalse(results[1].paused)
        self.assertEqual(results[2], 12)
        completed = results[4]
        self.assertEqual((completed.items[0].state, completed.items[0].attempts), ("completed", 2))
        query = self.stub.seen[4].query
        self.assertEqual(query, [("limit", "5"), ("name", "send*"), ("tag", "t:1")])

    @inlineCallbacks
    def test_filters_of_lists(self) -> Any:
        self.answer = lambda seen: (200, {}, {"failed_jobs": [], "next_cursor": ""})  # type: ignore[assignment]
        yield self.call("list_failed", "q", order="created", tags=["a:1", "b:2"], cursor="abc")
        self.assertEqual(self.stub.seen[-1].query,
                         [("cursor", "abc"), ("order", "created"), ("tag", "a:1"), ("tag", "b:2")])


class ErrorTests(StubCase):
    """503 is retried for idempotent calls only; odd answers become typed errors."""

    answers: List[Answer] = []

    def answer(self, seen: Seen) -> Answer:
        return self.answers.pop(0) if self.answers else (200, {}, [])

    @inlineCallbacks
    def test_503_is_retried_for_idempotent_calls_only(self) -> Any:
        unavailable = (503, {"Retry-After": "0"}, {"error": "Service Unavailable", "message": "the store is unavailable"})
        self.answers = [unavailable, unavailable]
        queues = yield self.call("queues")
        self.assertEqual(queues, [])
        self.assertEqual(len(self.stub.seen), 3)
        self.answers = [unavailable] * 5
        error = yield self.assertFailure(self.call("queues"), ServiceUnavailable)
        self.assertEqual(error.message, "the store is unavailable")
        self.assertEqual(len(self.stub.seen), 6, "3 tries in all")
        self.answers = [unavailable]
        yield self.assertFailure(self.call("push", "c", "http://w/"), ServiceUnavailable)
        self.assertEqual(len(self.stub.seen), 7, "a push without a key is never repeated")
        self.answers = [unavailable, (200, {}, {"id": 1, "queue_name": "q"})]
        job = yield self.call("push", "c", "http://w/", idempotency_key="k")
        self.assertEqual(job.id, 1)
        self.assertEqual([s.headers.get("idempotency-key") for s in self.stub.seen[-2:]], ["k", "k"])

    @inlineCallbacks
    def test_async_client_retries_and_raises_alike(self) -> Any:
        unavailable = (503, {"Retry-After": "0"}, {"error": "Service Unavailable", "message": "down"})
        self.answers = [unavailable, (200, {}, [{"name": "q"}]), unavailable,
                        (403, {}, {"error": "Forbidden", "message": "no"})]

        async def scenario() -> Any:
            async with AsyncClient(self.url, token="t", retry=RetryPolicy(attempts=3, backoff=0.01)) as client:
                queues = await client.queues()
                try:
                    await client.push("c", "http://w/")
                except ServiceUnavailable as e:
                    unavailable_message = e.message
                try:
                    await client.queues()
                except Forbidden as e:
                    return queues, unavailable_message, e.message

        queues, unavailable_message, forbidden = yield threads.deferToThread(lambda: asyncio.run(scenario()))
        self.assertEqual([q.name for q in queues], ["q"])
        self.assertEqual((unavailable_message, forbidden), ("down", "no"))
        self.assertEqual([s.method for s in self.stub.seen], ["GET", "GET", "POST", "GET"])
        self.assertEqual(self.stub.seen[0].headers["authorization"], "Bearer t")

    @inlineCallbacks
    def test_a_body_that_is_not_json(self) -> Any:
        self.answers = [(502, {"Content-Type": "text/html"}, b"<h1>Bad Gateway</h1>")]
        from fireworq.client import ServerError

        error = yield self.assertFailure(self.call("queues"), ServerError)
        self.assertEqual((error.status, error.message), (502, "<h1>Bad Gateway</h1>"))

    @inlineCallbacks
    def test_an_answer_of_the_wrong_shape(self) -> Any:
        from fireworq.client import UnexpectedAnswer

        self.answers = [(200, {}, {"not": "a list"})]
        error = yield self.assertFailure(self.call("queues"), UnexpectedAnswer)
        self.assertIn("/queues", str(error))


class EventTests(StubCase):
    """``events()`` reads a real SSE stream, skips comments, resumes with Last-Event-ID."""

    def answer(self, seen: Seen) -> Optional[Answer]:
        if seen.path != "/events":
            return 404, {}, {"error": "Not Found", "message": "no such endpoint"}
        last = seen.headers.get("last-event-id")
        if last is None:
            body = (
                b": keep-alive\n\n"
                b"event: job.pushed\nid: 1\ndata: {\"type\":\"job.pushed\",\"queue\":\"q\",\"job\":{\"id\":5}}\n\n"
                b"event: stats\nid: 2\ndata: {\"queue\":\"q\",\"total_pushes\":1}\n\n"
            )
        else:
            body = b"event: job.completed\nid: 3\ndata: {\"type\":\"job.completed\",\"resumed_after\":\"" + last.encode() + b"\"}\n\n"
        return 200, {"Content-Type": "text/event-stream"}, body

    @inlineCallbacks
    def test_events_and_resume(self) -> Any:
        def read() -> List[Any]:
            out = []
            for event in self.client.events(queues=["q", "r"]):
                out.append(event)
                if len(out) == 3:
                    break
            return out

        events = yield threads.deferToThread(read)
        self.assertEqual([(e.type, e.id) for e in events], [("job.pushed", "1"), ("stats", "2"), ("job.completed", "3")])
        self.assertEqual(events[0].data["job"], {"id": 5})
        self.assertEqual(events[2].data["resumed_after"], "2")
        self.assertEqual(self.stub.seen[0].query, [("queue", "q"), ("queue", "r")])
        self.assertEqual(self.stub.seen[0].headers["accept"], "text/event-stream")

    @inlineCallbacks
    def test_async_events(self) -> Any:
        async def read() -> List[Any]:
            async with AsyncClient(self.url, retry=RetryPolicy(backoff=0.01)) as client:
                out = []
                async for event in client.events(last_event_id="9"):
                    out.append(event)
                    break
                return out

        events = yield threads.deferToThread(lambda: asyncio.run(read()))
        self.assertEqual(events[0].data["resumed_after"], "9")

    @inlineCallbacks
    def test_a_server_without_events(self) -> Any:
        from fireworq.client import NotFound

        self.client.url = self.url
        self.answer = lambda seen: (404, {}, {"error": "Not Found", "message": "no such endpoint"})  # type: ignore
        error = yield self.assertFailure(threads.deferToThread(lambda: next(iter(self.client.events()))), NotFound)
        self.assertEqual(error.message, "no such endpoint")
