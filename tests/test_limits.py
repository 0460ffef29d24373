"""
The limits of the API, each answered with a clear 4xx and a JSON error body:

- request bodies over ``max_request_body`` (1 MiB by default): 413, whether
  the length is declared or the body is chunked; a body right at the limit
  is accepted and its payload delivered unchanged;
- category and queue names: at most 255 bytes of UTF-8, no control
  characters (no ``/`` in queue names); longer or impossible names are
  refused with 400, never truncated;
- the ``limit`` query parameter (1 to 10000) and other query parameters;
- numbers out of range (job fields 0 to 2^32-1, queue fields, ids), with a
  message that names the field and quotes the number as sent;
- bodies that are not UTF-8, JSON with NaN or Infinity, lone surrogates,
  JSON nested too deeply (never a RecursionError and a 500);
- payload numbers of any size or precision, kept exactly as sent;
- URL paths and Host headers that are not UTF-8 (400 in JSON, not HTML).

Most tests run the real site (L{FireworqSite}, L{FireworqRequest} and the
Klein application) in process over the in-memory store, on a loopback port;
L{RealServerLimitTests} checks the setting and the delivery of a payload at
the limit against a real ``twistd fireworq`` and a real worker.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from fireworq.config import load
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease.sole import SoleLease
from fireworq.events import EventFanout
from fireworq.logging import now_ms
from fireworq.manager import QueueManager
from fireworq.model import QueueDefinition, Result
from fireworq.pushing import PushBatcher
from fireworq.stats import QueueStats
from fireworq.store.interface import NodeInfo
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from fireworq.web import body
from fireworq.inspection import Inspection
from fireworq.web.app import FireworqAPI
from fireworq.web.body import MAX_ID, MAX_JSON_DEPTH, JsonNumber, dump_json
from fireworq.web.site import FireworqSite
from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until

UINT32_MAX = 2**32 - 1
NODE = NodeInfo("node-limits", "localhost")


@implementer(IBodyProducer)
class ChunkedBody:
    """A request body of unknown length: the client sends it chunked."""

    length = UNKNOWN_LENGTH

    def __init__(self, data: bytes, chunk: int = 16384) -> None:
        self.data = data
        self.chunk = chunk

    def startProducing(self, consumer: Any) -> Deferred:
        for start in range(0, len(self.data), self.chunk):
            consumer.write(self.data[start : start + self.chunk])
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _RawClient(Protocol):
    """Sends raw bytes, collects everything until the server closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received: List[bytes] = []
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Any) -> None:
        self.done.callback(b"".join(self.received))


def raw_request(port: int, request: bytes, timeout: float = 10.0) -> Deferred:
    """
    Send ``request`` as is to 127.0.0.1:``port``; fire with the whole answer
    once the server closes the connection (fail after ``timeout`` seconds).
    """
    client = _RawClient(request)
    d = connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    d.addCallback(lambda _: client.done)

    def too_slow(failure: Any) -> Any:
        if client.transport is not None:
            client.transport.abortConnection()
        return failure

    d.addTimeout(timeout, reactor)
    d.addErrback(too_slow)
    return d


def parse_raw(answer: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """(status, lower-cased headers, body) of a raw HTTP/1.1 answer (no chunking)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def push_body(size: int, url: str = "http://127.0.0.1:9/work", **fields: Any) -> bytes:
    """A push body of exactly ``size`` bytes: its string payload is padded to fit."""
    job = {"url": url, "payload": ""}
    job.update(fields)
    empty = len(json.dumps(job, separators=(",", ":")).encode())
    job["payload"] = "x" * (size - empty)
    body = json.dumps(job, separators=(",", ":")).encode()
    assert len(body) == size
    return body


def nested(depth: int, kind: str = "array") -> bytes:
    """JSON text of ``depth`` nested arrays (or objects)."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


class SucceedingDeliverer:
    """Every delivery succeeds at once."""

    def deliver(self, queue_name: str, job: Any) -> Deferred:
        return succeed(Result("success", 200, "ok"))


class InProcessTestCase(TestCase):
    """The real site and application over memory stores, on a loopback port."""

    settings: Dict[str, str] = {"driver": "in-memory", "queue_default": "default"}

    def setUp(self) -> None:
        self.config = load(self.settings, environ={})
        self.store = MemoryJobStore()
        self.repository = MemoryRepository()
        self.successResultOf(self.store.start())
        stats = QueueStats(reactor, now_ms)
        events = EventFanout([stats])

        def make_dispatcher(definition: QueueDefinition) -> QueueDispatcher:
            lease = SoleLease(definition.name, self.store, NODE, 1, reactor)
            return QueueDispatcher(
                definition, self.store, lease, SucceedingDeliverer(), events, reactor
            )

        self.manager = QueueManager(
            self.store,
            self.repository,
            PushBatcher(self.store, reactor),
            make_dispatcher,
            events,
            stats,
            reactor,
            default_queue=QueueDefinition("default", 200, 4),
        )
        self.manager.startService()
        self.addCleanup(self.manager.stopService)
        api = FireworqAPI(
            self.manager, Inspection(self.store, self.repository, self.manager), self.config
        )
        site = FireworqSite(
            api.resource(), None, self.config.max_request_body, self.config.keep_alive
        )
        self.listening = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.listening.stopListening)
        self.port = self.listening.getHost().port
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        return wait_until(lambda: self.manager.ready, 5, message="the manager to load")

    @inlineCallbacks
    def call(self, method: str, path: str, body: Any = None, raw: Any = None):
        """(code, decoded JSON or text, headers) of one request."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = yield treq.request(
            method,
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            pool=self.pool,
            timeout=20,
        )
        content = yield response.content()
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
        value: Any = content.decode("utf-8", "replace")
        if ctype.startswith(b"application/json"):
            value = json.loads(content)
        return response.code, value, response.headers

    @inlineCallbacks
    def call_raw(self, method: str, path: str, raw: bytes):
        """(code, body bytes) of one request, the body not decoded."""
        response = yield treq.request(
            method, f"http://127.0.0.1:{self.port}{path}", data=raw, pool=self.pool, timeout=20
        )
        content = yield response.content()
        return response.code, content

    @inlineCallbacks
    def refused(self, code: int, method: str, path: str, body: Any = None, raw: Any = None,
                mentions: Optional[str] = None):
        """Assert that the request is answered ``code`` with a JSON error; return the message."""
        status, answer, _ = yield self.call(method, path, body, raw)
        self.assertEqual(status, code, f"{method} {path[:80]}: {answer!r:.300}")
        self.assertIsInstance(answer, dict, f"{method} {path[:80]}: not a JSON error: {answer!r:.300}")
        self.assertEqual(set(answer), {"error", "message"})
        if mentions is not None:
            self.assertIn(mentions, answer["message"])
        return answer["message"]

    @inlineCallbacks
    def accepted(self, method: str, path: str, body: Any = None, raw: Any = None):
        """Assert that the request is answered 200; return the decoded answer."""
        status, answer, _ = yield self.call(method, path, body, raw)
        self.assertEqual(status, 200, f"{method} {path[:80]}: {answer!r:.300}")
        return answer


class BodySizeTests(InProcessTestCase):
    """``max_request_body`` (1 MiB by default)."""

    def test_default_limit_is_one_mebibyte(self):
        self.assertEqual(self.config.max_request_body, 1 << 20)

    @inlineCallbacks
    def test_body_at_the_limit_is_accepted_and_kept_whole(self):
        limit = self.config.max_request_body
        body = push_body(limit, run_after=3600)
        job = yield self.accepted("POST", "/job/big", raw=body)
        self.assertEqual(len(job["payload"]), len(json.loads(body)["payload"]))
        stored = yield self.accepted("GET", f"/queue/default/job/{job['id']}")
        self.assertEqual(stored["payload"], json.loads(body)["payload"])

    @inlineCallbacks
    def test_body_over_the_limit_is_413(self):
        limit = self.config.max_request_body
        body = push_body(limit + 1)
        answer = yield raw_request(
            self.port,
            b"POST /job/big HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        status, headers, content = parse_raw(answer)
        self.assertEqual(status, 413)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["connection"], "close")
        error = json.loads(content)
        self.assertEqual(error["error"], "Request Entity Too Large")
        self.assertIn(str(limit), error["message"])
        # Nothing was stored.
        page = yield self.accepted("GET", "/queue/default/deferred")
        self.assertEqual(page["jobs"], [])

    @inlineCallbacks
    def test_chunked_body_over_the_limit_is_413(self):
        limit = self.config.max_request_body
        status, answer, _ = yield self.call("POST", "/job/big", raw=ChunkedBody(push_body(limit + 1)))
        self.assertEqual((status, answer["error"]), (413, "Request Entity Too Large"))
        status, answer, _ = yield self.call("POST", "/jobs/big", raw=ChunkedBody(b"[" + b" " * limit + b"]"))
        self.assertEqual(status, 413)

    @inlineCallbacks
    def test_chunked_body_at_the_limit_is_accepted(self):
        body = push_body(self.config.max_request_body, run_after=3600)
        job = yield self.accepted("POST", "/job/big", raw=ChunkedBody(body))
        self.assertEqual(job["payload"], json.loads(body)["payload"])

    @inlineCallbacks
    def test_every_endpoint_is_limited(self):
        big = b" " * (self.config.max_request_body + 1)
        for method, path in (("PUT", "/queue/q"), ("PUT", "/routing/c"), ("GET", "/queues"),
                             ("POST", "/queue/default/failed/1/retry")):
            yield self.refused(413, method, path, raw=big)

    @inlineCallbacks
    def test_connection_is_closed_after_each_answer(self):
        """With keep_alive off (the default) the server closes, whatever the client asks."""
        self.assertFalse(self.config.keep_alive)
        answer = yield raw_request(
            self.port, b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
        )
        status, headers, _ = parse_raw(answer)
        self.assertEqual((status, headers["connection"]), (200, "close"))

    @inlineCallbacks
    def test_server_keeps_answering_after_413(self):
        yield self.call("POST", "/job/big", raw=push_body(self.config.max_request_body + 1))
        yield self.accepted("GET", "/health")


class PayloadSizeTests(InProcessTestCase):
    """A payload must fit the payload column (16 MiB - 1) whatever max_request_body allows."""

    settings = {"driver": "in-memory", "queue_default": "default", "max_request_body": str(64 << 20)}

    @inlineCallbacks
    def test_payload_over_the_column_is_413_naming_payload(self):
        big = "x" * (1 << 24)
        message = yield self.refused(413, "POST", "/job/big", {"url": "http://w.test/", "payload": big},
                                     mentions="payload")
        self.assertIn(str((1 << 24) - 1), message)
        message = yield self.refused(413, "POST", "/jobs/big", [{"url": "http://w.test/"},
                                                                {"url": "http://w.test/", "payload": big}],
                                     mentions="job [1]")
        counts = yield self.store.count_jobs("default")
        self.assertEqual(counts.waiting + counts.deferred + counts.grabbed, 0)

    @inlineCallbacks
    def test_payload_at_the_column_size_is_accepted(self):
        payload = "x" * ((1 << 24) - 1)
        answer = yield self.accepted("POST", "/job/big", {"url": "http://w.test/", "payload": payload,
                                                          "run_after": 3600})
        job = yield self.store.find_job("default", answer["id"])
        self.assertEqual(len(job.payload), (1 << 24) - 1)


class NameTests(InProcessTestCase):
    """Categories and queue names: 255 bytes of UTF-8, no control characters."""

    @inlineCallbacks
    def test_category_of_255_bytes_is_kept_whole(self):
        for category in ("c" * 255, "é" * 127 + "c", "日" * 85, "a/" * 127 + "b"):
            self.assertEqual(len(category.encode()), 255)
            job = yield self.accepted("POST", "/job/" + quote(category),
                                      {"url": "http://w/", "run_after": 3600})
            self.assertEqual(job["category"], category)
            stored = yield self.accepted("GET", f"/queue/default/job/{job['id']}")
            self.assertEqual(stored["category"], category)

    @inlineCallbacks
    def test_category_over_255_bytes_is_400(self):
        for category in ("c" * 256, "é" * 128, "😀" * 64, "c" * 5000):
            yield self.refused(400, "POST", "/job/" + quote(category), {"url": "http://w/"},
                               mentions="at most 255 bytes")
            yield self.refused(400, "POST", "/jobs/" + quote(category), [{"url": "http://w/"}])
            yield self.refused(400, "PUT", "/routing/" + quote(category), {"queue_name": "default"})

    @inlineCallbacks
    def test_category_with_control_characters_is_400(self):
        for bad in ("%00", "%01", "%09", "%0A", "%1F", "%7F"):
            yield self.refused(400, "POST", f"/job/a{bad}b", {"url": "http://w/"},
                               mentions="control characters")
            yield self.refused(400, "PUT", f"/routing/a{bad}b", {"queue_name": "default"})

    @inlineCallbacks
    def test_queue_name_of_255_bytes_is_kept_whole(self):
        for name in ("q" * 255, "é" * 127 + "q"):
            definition = yield self.accepted("PUT", "/queue/" + quote(name), {})
            self.assertEqual(definition["name"], name)
            shown = yield self.accepted("GET", "/queue/" + quote(name))
            self.assertEqual(shown["name"], name)
            routing = yield self.accepted("PUT", "/routing/r", {"queue_name": name})
            self.assertEqual(routing["queue_name"], name)

    @inlineCallbacks
    def test_queue_name_over_255_bytes_is_400(self):
        for name in ("q" * 256, "é" * 128, "q" * 4000):
            yield self.refused(400, "PUT", "/queue/" + quote(name), {}, mentions="at most 255 bytes")
            yield self.refused(400, "PUT", "/routing/r", {"queue_name": name}, mentions="queue_name")
            yield self.refused(404, "GET", "/queue/" + quote(name))

    @inlineCallbacks
    def test_queue_name_characters(self):
        for bad in ("%00", "%1F", "%7F"):
            yield self.refused(400, "PUT", f"/queue/a{bad}b", {}, mentions="control characters")
        # An encoded "/" in a queue name is refused with 400 like any other
        # refused name (a 404 before issue 11, bug 7), and refused in bodies.
        for path in ("/queue/a%2Fb", "/queue/a%2fb/stats", "/queue/%2F/waiting"):
            yield self.refused(400, "PUT" if path.count("/") == 2 else "GET", path, {}, mentions="'/'")
        yield self.refused(400, "PUT", "/routing/r", {"queue_name": "a/b"}, mentions="'/'")
        yield self.refused(400, "PUT", "/routing/r", {"queue_name": "a\u0000b"})


class QueryTests(InProcessTestCase):
    """Query parameters of the list endpoints."""

    @inlineCallbacks
    def test_limit_bounds(self):
        for path in ("/queue/default/waiting", "/queue/default/grabbed",
                     "/queue/default/deferred", "/queue/default/failed"):
            for good in ("1", "10000", "100", ""):  # empty: the default, as the original
                yield self.accepted("GET", f"{path}?limit={good}")
            for bad in ("0", "10001", "-1", "%201", "1_0", "1e3", "0x10", "1.0", "%D9%A3",
                        "99999999999999999999999999", "9" * 5000):
                yield self.refused(400, "GET", f"{path}?limit={bad}", mentions="limit")
            yield self.refused(400, "GET", f"{path}?limit=1&limit=2", mentions="more than once")

    @inlineCallbacks
    def test_order_and_cursor(self):
        yield self.accepted("GET", "/queue/default/waiting?order=asc&cursor=")
        yield self.accepted("GET", "/queue/default/failed?order=created")
        yield self.accepted("GET", "/queue/default/waiting?order=&limit=")  # defaults
        for bad in ("ASC", "up", "%FF"):
            yield self.refused(400, "GET", f"/queue/default/waiting?order={bad}")
        for bad in ("x", "%FF", "A" * 5000, "LTEsMQ==", "MSwy%00"):
            yield self.refused(400, "GET", f"/queue/default/waiting?cursor={bad}")

    @inlineCallbacks
    def test_ids_in_paths(self):
        # Any whole number up to MAX_ID is an id: one that is not stored is
        # a 404 (protocol A5), 0 and leading zeros included.
        for good in (str(MAX_ID), "0", "000", "0" * 30 + "7", "0" * 5000 + "1"):
            for method in ("GET", "DELETE"):
                yield self.refused(404, method, f"/queue/default/job/{good}", mentions="holds no job")
                yield self.refused(404, method, f"/queue/default/failed/{good}", mentions="holds no entry")
            yield self.refused(404, "POST", f"/queue/default/failed/{good}/retry", mentions="holds no entry")
        for bad, problem in ((str(MAX_ID + 1), f"must be at most {MAX_ID}, got {MAX_ID + 1}"),
                             (str(2**64), "must be at most"), ("9" * 100, "must be at most"),
                             ("-1", "must not be negative, got -1"), ("-0", ""),
                             ("+1", "must be a whole number"), ("1.0", "must be a whole number"),
                             ("%D9%A3", "must be a whole number"), ("1e3", "must be a whole number"),
                             ("x", "must be a whole number, not 'x'")):
            yield self.refused(400, "GET", f"/queue/default/job/{bad}", mentions=f"job id {problem}")
            yield self.refused(400, "DELETE", f"/queue/default/job/{bad}", mentions="job id")
            yield self.refused(400, "GET", f"/queue/default/failed/{bad}", mentions="failure id")
            yield self.refused(400, "DELETE", f"/queue/default/failed/{bad}", mentions="failure id")
            yield self.refused(400, "POST", f"/queue/default/failed/{bad}/retry", mentions="failure id")

class NumberTests(InProcessTestCase):
    """Numbers of jobs and queue definitions."""

    @inlineCallbacks
    def test_job_fields_are_unsigned_32_bit(self):
        for field in ("run_after", "max_retries", "retry_delay", "timeout"):
            for good in (0, UINT32_MAX, 2.0, None):
                job = yield self.accepted("POST", "/job/c", {"url": "http://w/", "run_after": 3600, field: good})
                self.assertEqual(job[field], 0 if good is None else int(good))
            for good, value in ((b"1e3", 1000), (b"-0", 0), (b"0.0", 0), (b"4294967295.000", UINT32_MAX)):
                job = yield self.accepted("POST", "/job/c", raw=b'{"url":"http://w/","run_after":3600,"%s":%s}'
                                          % (field.encode(), good))
                self.assertEqual(job[field], value)
                self.assertIs(type(job[field]), int)
            for bad in (UINT32_MAX + 1, 2**64, -1, 1.5, "1", True, [], {}):
                yield self.refused(400, "POST", "/job/c", {"url": "http://w/", field: bad}, mentions=field)
                yield self.refused(400, "POST", "/jobs/c", [{"url": "http://w/"}, {"url": "http://w/", field: bad}],
                                   mentions="job [1]")
            yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","%s":1e999}' % field.encode())

    @inlineCallbacks
    def test_number_messages_name_the_problem_and_the_value(self):
        def body(field: str, number: bytes) -> bytes:
            return b'{"url":"http://w/","%s":%s}' % (field.encode(), number)

        for field in ("run_after", "retry_delay", "timeout"):
            for number in (b"1.5", b"0.5", b"2.50", b"1e-400", b"4294967294.9999999999999999"):
                yield self.refused(400, "POST", "/job/c", raw=body(field, number),
                                   mentions=f"field {field} must be a whole number of seconds, got {number.decode()}")
        yield self.refused(400, "POST", "/job/c", raw=body("max_retries", b"1.5"),
                           mentions="field max_retries must be a whole number, got 1.5")
        for number in (b"4294967296", b"1e10", b"1E+10", b"4294967295.5e1", b"1e999", b"1e99999999999999999999"):
            yield self.refused(400, "POST", "/job/c", raw=body("timeout", number),
                               mentions=f"field timeout must be at most 4294967295, got {number.decode()}")
        for number in (b"-1", b"-1.5", b"-1e999", b"-1e-99999999999999999999"):
            yield self.refused(400, "POST", "/job/c", raw=body("run_after", number),
                               mentions=f"field run_after must not be negative, got {number.decode()}")
        yield self.refused(400, "POST", "/job/c", raw=body("run_after", b'"5"'),
                           mentions="field run_after must be a whole number of seconds, not a string")
        yield self.refused(400, "PUT", "/queue/q", raw=b'{"max_workers":1e10}',
                           mentions="field max_workers must be at most 100000, got 1e10")
        yield self.refused(400, "PUT", "/queue/q", raw=b'{"polling_interval":0.5}',
                           mentions="field polling_interval must be a whole number of milliseconds, got 0.5")
        queue = yield self.accepted("PUT", "/queue/q", raw=b'{"max_workers":1e3}')
        self.assertEqual(queue["max_workers"], 1000)

    @inlineCallbacks
    def test_integers_of_thousands_of_digits(self):
        # Python converts at most 4300 digits: such numbers must get the
        # field's range message, never Python's.
        for digits in (301, 4300, 4301, 100_000):
            huge = b"9" * digits
            for field in ("run_after", "max_retries"):
                message = yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","%s":%s}' % (field.encode(), huge),
                                             mentions=f"field {field} must be at most 4294967295, got 99999")
                self.assertIn(f"({digits} characters)", message)
                self.assertLess(len(message), 200)
                yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","%s":-%s}' % (field.encode(), huge),
                                   mentions=f"field {field} must not be negative")
            yield self.refused(400, "PUT", "/queue/q", raw=b'{"max_workers":%s}' % huge,
                               mentions="field max_workers must be at most 100000")
            yield self.refused(400, "PUT", "/queue/q", raw=b'{"max_dispatches_per_second":%s,"max_burst_size":1}' % huge,
                               mentions="field max_dispatches_per_second must be at most 1000000")
            yield self.refused(400, "PUT", "/routing/c", raw=b'{"queue_name":%s}' % huge,
                               mentions="field queue_name must be a string, not a number")
            message = yield self.refused(400, "POST", "/job/c", raw=b'{"url":%s}' % huge, mentions="field url")
            for leak in ("4300", "sys.", "int_max_str_digits", "Exceeds"):
                self.assertNotIn(leak, message)

    @inlineCallbacks
    def test_queue_fields(self):
        bounds = {"polling_interval": 86_400_000, "max_workers": 100_000, "max_burst_size": 1_000_000}
        for field, maximum in bounds.items():
            extra = {"max_dispatches_per_second": 1} if field == "max_burst_size" else {}
            yield self.accepted("PUT", "/queue/q", {field: maximum, **extra})
            for bad in (maximum + 1, -1, 0.5, "1", True):
                yield self.refused(400, "PUT", "/queue/q", {field: bad, **extra}, mentions=field)
        yield self.accepted("PUT", "/queue/q", {"max_dispatches_per_second": 1_000_000, "max_burst_size": 1})
        yield self.accepted("PUT", "/queue/q", {"max_dispatches_per_second": 0.25, "max_burst_size": 1})
        for bad in (1_000_000.5, -0.1, "1", True):
            yield self.refused(400, "PUT", "/queue/q", {"max_dispatches_per_second": bad, "max_burst_size": 1},
                               mentions="max_dispatches_per_second")
        for text in (b"1e999", b"-1e999", b"NaN", b"Infinity"):
            yield self.refused(400, "PUT", "/queue/q",
                               raw=b'{"max_dispatches_per_second":%s,"max_burst_size":1}' % text)

    @inlineCallbacks
    def test_rate_too_small_for_a_float_column_is_refused(self):
        # MySQL keeps the rate in a FLOAT column: a tiny rate would read
        # back as 0 there, a queue without a throttle on the other nodes.
        def put(rate: bytes) -> bytes:
            return b'{"max_dispatches_per_second":%s,"max_burst_size":1}' % rate

        for rate in (b"1e-50", b"5e-324", b"1e-46", b"1e-400", b"0.0009999", b"0.00099999999999999999999"):
            yield self.refused(400, "PUT", "/queue/q", raw=put(rate),
                               mentions=f"field max_dispatches_per_second must be 0 or at least 0.001, got {rate.decode()}")
        for rate in (b"1e39", b"3.5e38", b"1000000.0000000001"):
            yield self.refused(400, "PUT", "/queue/q", raw=put(rate),
                               mentions=f"field max_dispatches_per_second must be at most 1000000, got {rate.decode()}")
        for rate, shown in ((b"0.001", 0.001), (b"1e-3", 0.001), (b"1E6", 1_000_000)):
            queue = yield self.accepted("PUT", "/queue/q", raw=put(rate))
            self.assertEqual(queue["max_dispatches_per_second"], shown)
        queue = yield self.accepted("PUT", "/queue/q", raw=b'{"max_dispatches_per_second":0}')
        self.assertNotIn("max_dispatches_per_second", queue)

    @inlineCallbacks
    def test_batch_size(self):
        jobs = [{"url": "http://w/", "run_after": 3600}] * 1000
        accepted = yield self.accepted("POST", "/jobs/c", jobs)
        self.assertEqual(len(accepted), 1000)
        yield self.refused(400, "POST", "/jobs/c", jobs + jobs[:1], mentions="at most 1000")
        yield self.refused(400, "POST", "/jobs/c", [], mentions="at least one")


class EncodingTests(InProcessTestCase):
    """Text that is not UTF-8, JSON the server cannot keep faithfully."""

    @inlineCallbacks
    def test_body_not_utf8_is_400(self):
        for raw in (b'{"url":"http://w/","payload":"\xff"}',
                    '{"url":"http://w/","payload":"é"}'.encode("latin-1"),
                    '{"url":"http://w/"}'.encode("utf-16"),
                    b'{"url":"http://w/","payload":"\xed\xa0\x80"}'):
            yield self.refused(400, "POST", "/job/c", raw=raw, mentions="UTF-8")
        yield self.refused(400, "PUT", "/queue/q", raw=b'{"max_workers":1,"x":"\xc3"}', mentions="UTF-8")
        yield self.refused(400, "PUT", "/routing/c", raw=b'{"queue_name":"\xfe"}', mentions="UTF-8")

    @inlineCallbacks
    def test_utf8_with_bom_is_accepted(self):
        job = yield self.accepted("POST", "/job/c", raw=b'\xef\xbb\xbf{"url":"http://w/","run_after":60,"payload":"\xc3\xa9"}')
        self.assertEqual(job["payload"], "é")

    @inlineCallbacks
    def test_lone_surrogates_are_400(self):
        yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","payload":"\\ud800"}')
        yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","payload":{"\\udfff":1}}')
        yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/\\ud800"}')
        yield self.refused(400, "PUT", "/routing/c", raw=b'{"queue_name":"q\\ud800"}')

    @inlineCallbacks
    def test_nan_and_infinity_are_400(self):
        # Not JSON at all (whereas 1e400 is: see test_payload_numbers_are_kept_exactly).
        for number in (b"NaN", b"Infinity", b"-Infinity", b"[NaN]", b'{"a":-Infinity}'):
            yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","payload":%s}' % number,
                               mentions="not valid JSON")
            yield self.refused(400, "POST", "/jobs/c", raw=b'[{"url":"http://w/","payload":%s}]' % number,
                               mentions="not valid JSON")

    @inlineCallbacks
    def test_large_finite_numbers_round_trip(self):
        job = yield self.accepted("POST", "/job/c", raw=b'{"url":"http://w/","run_after":60,"payload":[1e308,-1e308,123456789012345678901234567890]}')
        self.assertEqual(job["payload"], [1e308, -1e308, 123456789012345678901234567890])

    @inlineCallbacks
    def test_payload_numbers_are_kept_exactly(self):
        # A payload is stored as its JSON text: numbers of any size or
        # precision are echoed, stored and shown exactly as they were sent.
        payloads = [
            b"1e400",
            b"-" + b"7" * 5000,
            b'{"big":%s,"tiny":1e-400,"precise":0.10000000000000000000001,"exp":1E5,'
            b'"zero":-0,"trailing":2.50,"plain":[1,2.5,-3,"1e400"],"deep":[[[{"n":1e999}]]]}' % (b"9" * 4301),
        ]
        for payload in payloads:
            push = b'{"url":"http://w/","run_after":3600,"payload":%s}' % payload
            code, answer = yield self.call_raw("POST", "/job/c", push)
            self.assertEqual(code, 200, answer[:300])
            self.assertIn(b'"payload":%s,"run_after":3600' % payload, answer)
            job_id = json.loads(answer, parse_int=str, parse_float=str)["id"]
            stored = yield self.store.find_job("default", int(job_id))
            self.assertEqual(stored.payload, payload.decode())
            code, shown = yield self.call_raw("GET", f"/queue/default/job/{job_id}", b"")
            self.assertEqual(code, 200, shown[:300])
            self.assertIn(b'"payload":%s,"status"' % payload, shown)
            code, page = yield self.call_raw("GET", "/queue/default/deferred?limit=1", b"")
            self.assertIn(b'"payload":%s,"status"' % payload, page)
            code, batch = yield self.call_raw("POST", "/jobs/c", b"[%s,%s]" % (push, push))
            self.assertEqual(code, 200, batch[:300])
            self.assertEqual(batch.count(b'"payload":%s,' % payload), 2)

    @inlineCallbacks
    def test_nesting_at_the_limit_is_accepted(self):
        for kind in ("array", "object"):
            payload = nested(MAX_JSON_DEPTH - 1, kind)
            job = yield self.accepted("POST", "/job/c", raw=b'{"url":"http://w/","run_after":60,"payload":%s}' % payload)
            stored = yield self.accepted("GET", f"/queue/default/job/{job['id']}")
            self.assertEqual(json.dumps(stored["payload"], separators=(",", ":")).encode(), payload)

    @inlineCallbacks
    def test_deeper_nesting_is_400_not_500(self):
        for depth in (MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 990, 5000, 150_000):
            for kind in ("array", "object"):
                payload = nested(depth if kind == "array" else min(depth, 100_000), kind)
                yield self.refused(400, "POST", "/job/c", raw=b'{"url":"http://w/","payload":%s}' % payload,
                                   mentions="nested too deeply")
                yield self.refused(400, "POST", "/jobs/c", raw=b'[{"url":"http://w/","payload":%s}]' % payload,
                                   mentions="nested too deeply")
        yield self.refused(400, "PUT", "/queue/q", raw=b'{"x":%s}' % nested(100_000))
        yield self.accepted("GET", "/health")

    @inlineCallbacks
    def test_path_not_utf8_is_a_json_400(self):
        for path in ("/queue/%FF", "/queue/%C3/stats", "/job/%ED%A0%80", "/routing/a%FFb", "/%FF",
                     "/queue/default/job/%FF"):
            yield self.refused(400, "GET" if not path.startswith("/job") else "POST", path,
                               mentions="not valid UTF-8")

    @inlineCallbacks
    def test_host_not_utf8_is_a_json_400(self):
        answer = yield raw_request(self.port, b"GET /queues HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n")
        status, headers, body = parse_raw(answer)
        self.assertEqual(status, 400)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertIn("Host", json.loads(body)["message"])

    @inlineCallbacks
    def test_query_not_utf8_is_400(self):
        yield self.refused(400, "GET", "/queue/default/waiting?cursor=%FF", mentions="UTF-8")


def quote(text: str) -> str:
    """Percent-encode ``text`` for a URL path (keeping ``/``)."""
    from urllib.parse import quote as _quote

    return _quote(text, safe="/")


class RealServerLimitTests(ServerTestCase):
    """The setting and a payload at the limit, through ``twistd fireworq`` to a worker."""

    @inlineCallbacks
    def test_payload_right_under_the_default_limit_is_delivered_unchanged(self):
        server = yield self.server()
        body = push_body(1 << 20, url=self.worker.url("/success"))
        code, answer = yield server.call("POST", "/job/big", raw=body)
        self.assertEqual(code, 200, answer if code != 200 else "")
        yield wait_until(lambda: self.worker.deliveries, 20, message="the delivery")
        self.assertEqual(self.worker.deliveries[0].body, json.loads(body)["payload"].encode())

        structured = {"url": self.worker.url("/success"), "payload": {"items": list(range(150_000))}}
        body = json.dumps(structured, separators=(",", ":")).encode()
        self.assertLess(len(body), 1 << 20)
        code, _ = yield server.call("POST", "/job/big", raw=body)
        self.assertEqual(code, 200)
        yield wait_until(lambda: len(self.worker.deliveries) >= 2, 20, message="the second delivery")
        self.assertEqual(json.loads(self.worker.deliveries[1].body), structured["payload"])

        code, answer = yield server.call("POST", "/job/big", raw=push_body((1 << 20) + 1))
        self.assertEqual((code, answer["error"]), (413, "Request Entity Too Large"))

    @inlineCallbacks
    def test_max_request_body_setting(self):
        server = yield self.server(max_request_body="4096")
        code, _ = yield server.call("POST", "/job/c", raw=push_body(4096, run_after=3600))
        self.assertEqual(code, 200)
        code, answer = yield server.call("POST", "/job/c", raw=push_body(4097))
        self.assertEqual(code, 413)
        self.assertIn("4096", answer["message"])
        response = yield treq.post(server.url("/job/c"), data=ChunkedBody(push_body(4097), 1000), timeout=10)
        self.assertEqual(response.code, 413)
        yield response.content()
        code, _ = yield server.call("GET", "/health")
        self.assertEqual(code, 200)
        code, settings = yield server.call("GET", "/settings")
        self.assertEqual(settings["max_request_body"], "4096")

    @inlineCallbacks
    def test_slow_request_and_connection_settings(self):
        """
        The real server applies request_header_timeout, request_body_timeout
        and max_connections (issue 11, bug 7): a request that stops arriving
        is answered 408, connections over the cap 503.
        """
        server = yield self.server(request_header_timeout="1", request_body_timeout="1", max_connections="3")
        port = server.port
        answer = yield raw_request(port, b"GET /queues HTTP/1.1\r\nHo", timeout=15)
        self.assertEqual(parse_raw(answer)[0], 408)
        answer = yield raw_request(port, b"POST /job/c HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{", timeout=15)
        status, _, body = parse_raw(answer)
        self.assertEqual(status, 408)
        self.assertIn("body", json.loads(body)["message"])
        # Three idle connections are open: the fourth is refused at once.
        held = []
        for _ in range(3):
            client = _RawClient(b"")
            yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
            held.append(client)
        try:
            answer = yield raw_request(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=15)
            status, headers, body = parse_raw(answer)
            self.assertEqual((status, headers.get("retry-after")), (503, "1"))
            self.assertIn("max_connections", json.loads(body)["message"])
        finally:
            for client in held:
                client.transport.loseConnection()
            yield gatherResults([client.done for client in held])
        code, settings = yield server.call("GET", "/settings")
        self.assertEqual(
            (settings["request_header_timeout"], settings["request_body_timeout"], settings["max_connections"]),
            ("1", "1", "3"),
        )
        # Once they are closed (the server notices soon), requests are served again.
        deadline = reactor.seconds() + 10
        while True:
            code, _ = yield server.call("GET", "/health")
            if code == 200 or reactor.seconds() > deadline:
                break
            yield deferLater(reactor, 0.1)
        self.assertEqual(code, 200)


class CrossOriginTests(InProcessTestCase):
    """A browser page of another site cannot change anything."""

    @inlineCallbacks
    def origin_call(self, method: str, path: str, origin: str, body: Any):
        response = yield treq.request(
            method,
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={b"Origin": [origin.encode()], b"Content-Type": [b"text/plain"]},
            pool=self.pool,
            timeout=20,
        )
        content = yield response.content()
        return response.code, content

    @inlineCallbacks
    def test_foreign_origin_is_refused(self):
        code, content = yield self.origin_call(
            "POST", "/job/c", "http://evil.example", {"url": "http://127.0.0.1:9/x"}
        )
        self.assertEqual(code, 403)
        self.assertIn(b"cross-origin", content)
        counts = yield self.store.count_jobs("default")
        self.assertEqual(counts.waiting + counts.deferred + counts.grabbed, 0)

    @inlineCallbacks
    def test_own_origin_is_accepted(self):
        code, _ = yield self.origin_call(
            "PUT", "/queue/q", f"http://127.0.0.1:{self.port}", {}
        )
        self.assertEqual(code, 200)

    @inlineCallbacks
    def test_reads_and_clients_without_origin_are_unaffected(self):
        code, _ = yield self.origin_call("GET", "/queues", "http://evil.example", {})
        self.assertEqual(code, 200)
        yield self.accepted("POST", "/job/c", {"url": "http://127.0.0.1:9/x"})


def _typed(value: Any) -> Any:
    """``value`` with the type of every part, so that 1, 1.0 and True differ."""
    if isinstance(value, dict):
        return ("object", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("array", [_typed(item) for item in value])
    if isinstance(value, JsonNumber):
        return ("JsonNumber", value.text)
    return (type(value).__name__, value)


def _exact_loads(text: str) -> Any:
    """How the body was read before the fast path: every integer through the hook."""
    return json.loads(
        text,
        parse_constant=body._refuse_constant,
        parse_float=body._exact_float,
        parse_int=body._exact_int,
    )


def _outcome(loads: Any, text: str) -> Any:
    try:
        return _typed(loads(text))
    except (ValueError, RecursionError) as e:
        return (type(e).__name__, str(e))


class ExactNumberFastPathTests(SynchronousTestCase):
    """Bodies read without the integer hook come out as they would with it."""

    def texts(self) -> List[str]:
        texts = [
            "-0", "[-0]", '{"a":-0}', "-0 ", "\t-0\n", '{"a":-0,"b":1}', "[1,-0]", "-0.0", "-0e1",
            "-0E1", "-01", "-00", "0", "[0,-1,10,-10]", '"2024-01-02"', '"x-0"', '{"-0":1}',
            '{"created":"2024-01-02T03:04:05Z","n":-0}', "1e400", "1E5", "2.50", "0.1", "1.0",
            "1e-400", "-1e999", "0." + "0" * 400 + "1", "1" + "0" * 400 + ".5", '"' + "1" * 700 + '"',
            "NaN", "[Infinity]", '{"a":-Infinity}', "", " ", "{", '{"a":1}x', "[1,]", "\ufeff{}",
            "\ufeff\ufeff{}", '{"a":1,"a":2}', '{"a":"\\ud800"}', "[" * 600 + "]" * 600,
            "[" * 100_000 + "]" * 100_000,
            (
                '{"url":"http://w/","run_after":3600,"payload":{"user":12345,'
                '"items":[1,2,3,4,5],"count":7,"page":2,"limit":50}}'
            ),
        ]
        for digits in (299, 300, 301, 599, 600, 601, 4300, 4301, 100_000):
            for sign in ("", "-"):
                texts.append(sign + "9" * digits)
                texts.append(sign + "1" + "0" * (digits - 1))
        # Runs of digits at every offset from the sampled characters.
        for run in (298, 299, 300, 301):
            for offset in range(0, 605, 11):
                texts.append("[" + " " * offset + "7" * run + "]")
                texts.append('["' + "x" * offset + '",' + "-" + "7" * run + ",1]")
                texts.append("[" + "1," * offset + "7" * run + "]")
        return texts

    def test_same_values_as_with_the_integer_hook(self):
        for text in self.texts():
            self.assertEqual(_outcome(body._loads, text), _outcome(_exact_loads, text), text[:80])

    def test_long_runs_are_found_wherever_they_are(self):
        pattern = re.compile(f"[0-9]{{{body.LONG_INTEGER}}}")
        for text in self.texts():
            self.assertEqual(
                body._may_hold_long_integer(text), pattern.search(text) is not None, text[:80]
            )

    def test_common_bodies_take_the_fast_path(self):
        for text in (
            '{"url":"http://w/","run_after":3600,"payload":{"n":[1,-2,30],"at":"2024-01-02"}}',
            "[" + "12345678," * 1000 + "0]",
            '{"a":-0.5,"b":-0e3}',
        ):
            self.assertFalse(body._needs_exact_integers(text), text[:80])
        for text in ("-0", '{"a":[-0]}', "9" * 300, "[" + "1," * 500 + "9" * 300 + "]"):
            self.assertTrue(body._needs_exact_integers(text), text[:80])


class DumpJsonTests(SynchronousTestCase):
    """L{dump_json} through its shared encoder writes what json.dumps would."""

    def test_plain_values_as_json_dumps(self):
        values = [
            {"a": [1, 2.5, "é\u2028", None, True], "b": {"c": {}}},
            [float("nan"), float("inf"), -0.0, 1e300],
            {1: "int key", False: "bool key", None: "null key", 2.5: "float key"},
            "text \" quoted \\ \x00",
            12,
            None,
        ]
        for value in values:
            expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            self.assertEqual(dump_json(value), expected)
            self.assertEqual(dump_json(value), expected)

    def test_json_numbers_are_written_as_their_text(self):
        for _ in range(2):
            self.assertEqual(
                dump_json({"a": JsonNumber("1e400"), "b": [1, "x", {"c": JsonNumber("-0")}]}),
                '{"a":1e400,"b":[1,"x",{"c":-0}]}',
            )
            self.assertEqual(dump_json([JsonNumber("2.50")]), "[2.50]")
            self.assertEqual(dump_json(JsonNumber("1E5")), "1E5")
            self.assertEqual(dump_json({"plain": [1, 2]}), '{"plain":[1,2]}')

    def test_other_objects_are_still_refused(self):
        with self.assertRaises(TypeError) as raised:
            dump_json({"a": object()})
        self.assertEqual(str(raised.exception), "Object of type object is not JSON serializable")


class EdgeInputTests(InProcessTestCase):
    """
    Input a new user tries (issue 11, bug 7): names a path cannot carry,
    control characters, requests the HTTP parser refuses.  Every one is
    answered with the API's JSON error, never silence or an empty body.
    """

    @inlineCallbacks
    def raw_refused(self, code: int, request: bytes, mentions: str = "") -> Any:
        """Send ``request`` as is; assert a JSON error ``code`` whose phrase matches the status line."""
        answer = yield raw_request(self.port, request)
        self.assertTrue(answer, "no answer at all")
        status, headers, body = parse_raw(answer)
        self.assertEqual(status, code, answer[:300])
        self.assertEqual(headers.get("content-type"), "application/json", answer[:300])
        error = json.loads(body)
        self.assertEqual(set(error), {"error", "message"})
        self.assertEqual(answer.split(b"\r\n", 1)[0].split(b" ", 2)[2].decode(), error["error"])
        self.assertIn(mentions, error["message"])
        self.assertEqual(headers.get("content-length"), str(len(body)))
        return error

    @inlineCallbacks
    def test_dot_queue_names_are_400(self):
        # Sent raw: HTTP client libraries would resolve the dot-segments.
        for name in (b".", b".."):
            yield self.raw_refused(
                400, b"PUT /queue/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}" % name,
                mentions="must not be",
            )
            yield self.refused(400, "PUT", "/routing/r", {"queue_name": name.decode()}, mentions="must not be")
        # Names that merely contain dots are fine.
        for name in ("...", ".a", "a."):
            yield self.accepted("PUT", f"/queue/{name}", {})

    @inlineCallbacks
    def test_c1_control_characters_are_400(self):
        for char in ("\u0085", "\u0080", "\u009f"):
            encoded = quote(char)
            yield self.refused(400, "PUT", f"/queue/a{encoded}b", {}, mentions="control characters")
            yield self.refused(400, "POST", f"/job/a{encoded}b", {"url": "http://w/"}, mentions="control characters")
            yield self.refused(400, "PUT", f"/routing/a{encoded}b", {"queue_name": "default"},
                               mentions="control characters")
            yield self.refused(400, "PUT", "/routing/r", {"queue_name": f"a{char}b"}, mentions="control characters")
            yield self.refused(400, "POST", "/job/c", {"url": f"http://w/{char}"}, mentions="control characters")
        # The characters right after the C1 block are text.
        yield self.accepted("PUT", f"/queue/a{quote(chr(0xA0))}b{quote(chr(0xE9))}", {})

    @inlineCallbacks
    def test_raw_byte_in_the_path_is_a_json_400(self):
        yield self.raw_refused(400, b"GET /queue/\xff HTTP/1.1\r\nHost: x\r\n\r\n", mentions="0xff")
        yield self.raw_refused(400, b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", mentions="single spaces")
        yield self.raw_refused(400, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", mentions="HTTP/1.1")

    @inlineCallbacks
    def test_every_raw_byte_outside_printable_ascii_is_a_json_400(self):
        # Twisted's request-line parser lets 0x7f-0xb0 through (it compares
        # with 176, meaning octal 0o176): docs/security.md refuses every raw
        # byte outside printable ASCII in the request line, query included.
        for byte in (0x7F, 0x80, 0x85, 0xB0):
            for target in (b"/queues?x=%c" % byte, b"/queue/a%cb" % byte, b"/job/a%cb" % byte):
                yield self.raw_refused(
                    400, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target, mentions=f"raw byte 0x{byte:02x}"
                )

    @inlineCallbacks
    def test_bad_content_length_is_a_json_400(self):
        for value in (b"-5", b"abc", b"1.5", b""):
            yield self.raw_refused(
                400, b"POST /job/c HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n{}" % value,
                mentions="Content-Length",
            )
        yield self.raw_refused(400, b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", mentions="header line")
        yield self.raw_refused(
            400, b"POST /job/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            mentions="chunked",
        )

    @inlineCallbacks
    def test_long_request_line_is_414(self):
        path = b"/queue/" + b"a" * 20_000
        yield self.raw_refused(414, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path, mentions="request line")
        # Even when it never ends.
        yield self.raw_refused(414, b"GET /" + b"a" * 70_000, mentions="request line")

    @inlineCallbacks
    def test_long_header_line_is_431(self):
        for size in (20_000, 70_000):
            yield self.raw_refused(
                431, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % (b"a" * size), mentions="header line"
            )

    @inlineCallbacks
    def test_too_many_header_bytes_or_fields_is_431(self):
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 10_000) for i in range(8))
        yield self.raw_refused(431, b"GET / HTTP/1.1\r\nHost: x\r\n%s\r\n" % many, mentions="together")
        fields = b"".join(b"X-H%d: v\r\n" % i for i in range(501))
        yield self.raw_refused(431, b"GET / HTTP/1.1\r\nHost: x\r\n%s\r\n" % fields, mentions="header fields")

    @inlineCallbacks
    def test_requests_at_the_limits_are_answered(self):
        answer = yield raw_request(
            self.port,
            b"GET /queues?x=%s HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
            % (b"a" * 15_000, b"b" * 15_000),
        )
        self.assertEqual(parse_raw(answer)[0], 200)

    @inlineCallbacks
    def test_id_zero_is_a_404_as_for_any_id_not_stored(self):
        # docs/security.md and docs/api.md say so (they said 400 before issue 11).
        yield self.refused(404, "GET", "/queue/default/job/0", mentions="holds no job 0")


class ErrorBodyTests(SynchronousTestCase):
    """Error bodies (issue 11, bugs 9 and 10): one phrase table, compact JSON."""

    def test_status_line_and_body_use_one_phrase_table(self):
        from twisted.web.test.requesthelper import DummyRequest

        from fireworq.web.errors import PHRASES, write_error

        for code, text in PHRASES.items():
            request = DummyRequest([b""])
            body = write_error(request, code, "m")
            self.assertEqual(request.responseCode, code)
            self.assertEqual(request.responseMessage, text.encode("ascii"))
            self.assertEqual(json.loads(body)["error"], text)
        # The phrases clients have always seen, whatever http.HTTPStatus says
        # on this Python (3.13 renamed these).
        self.assertEqual(PHRASES[413], "Request Entity Too Large")
        self.assertEqual(PHRASES[414], "Request-URI Too Long")
        self.assertEqual(PHRASES[416], "Requested Range Not Satisfiable")
        self.assertEqual(PHRASES[422], "Unprocessable Entity")

    def test_error_bodies_are_compact_like_every_other_answer(self):
        from fireworq.web.errors import error_body

        self.assertEqual(
            error_body(404, "no such endpoint: /x"),
            b'{"error":"Not Found","message":"no such endpoint: /x"}',
        )
        self.assertEqual(error_body(400, "caf\u00e9"), '{"error":"Bad Request","message":"caf\u00e9"}'.encode())


class ChannelTests(SynchronousTestCase):
    """
    L{FireworqChannel}'s deadlines and the connection cap, on a Clock and
    string transports (no real time passes).
    """

    def site(self, **kwargs: Any) -> Any:
        from twisted.internet.task import Clock
        from twisted.web.resource import Resource

        class Hello(Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                request.content.read()
                return b"hello"

        self.clock = Clock()
        return FireworqSite(Hello(), None, 1 << 20, True, reactor=self.clock, **kwargs)

    def connect(self, site: Any) -> Tuple[Any, Any]:
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def answer(self, transport: Any) -> Tuple[int, Dict[str, Any]]:
        status, _, body = parse_raw(transport.value())
        return status, json.loads(body)

    def test_headers_must_arrive_within_header_timeout(self):
        site = self.site(header_timeout=10, body_timeout=60)
        protocol, transport = self.connect(site)
        # A byte every 5 seconds: the idle timeout would never fire.
        for byte in b"GET / HT":
            protocol.dataReceived(bytes([byte]))
            self.clock.advance(1.2)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.5)
        status, error = self.answer(transport)
        self.assertEqual(status, 408)
        self.assertIn("10 seconds", error["message"])
        self.assertTrue(transport.disconnecting)

    def test_body_must_arrive_within_body_timeout(self):
        site = self.site(header_timeout=10, body_timeout=60)
        protocol, transport = self.connect(site)
        protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        self.clock.advance(59)
        protocol.dataReceived(b"d")
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        status, error = self.answer(transport)
        self.assertEqual((status, error["error"]), (408, "Request Timeout"))
        self.assertIn("body", error["message"])

    def test_prompt_requests_are_answered_and_each_gets_its_own_deadline(self):
        site = self.site(header_timeout=10, body_timeout=60)
        protocol, transport = self.connect(site)
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", transport.value())
        self.assertTrue(transport.value().endswith(b"hello"))
        transport.clear()
        self.clock.advance(30)  # idle between requests: only the idle timeout applies
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab")
        self.clock.advance(30)
        protocol.dataReceived(b"c")
        self.assertIn(b"200 OK", transport.value())
        transport.clear()
        protocol.dataReceived(b"GET")
        self.clock.advance(10)
        self.assertEqual(self.answer(transport)[0], 408)

    def test_pipelined_requests_are_all_answered(self):
        site = self.site(header_timeout=10, body_timeout=60)
        protocol, transport = self.connect(site)
        one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
        protocol.dataReceived(one + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + one[:20])
        self.assertEqual(transport.value().count(b"200 OK"), 2)
        self.clock.advance(5)
        protocol.dataReceived(one[20:])
        self.assertEqual(transport.value().count(b"200 OK"), 3)
        self.clock.advance(100)  # no deadline is left behind
        self.assertNotIn(b"408", transport.value())

    def test_no_deadline_when_disabled(self):
        site = self.site(header_timeout=0, body_timeout=None)
        protocol, transport = self.connect(site)
        protocol.dataReceived(b"GET / HT")
        self.clock.advance(50)
        self.assertEqual(transport.value(), b"")
        protocol.connectionLost(None)

    def test_connections_over_the_cap_are_answered_503(self):
        from twisted.logger import capturedLogs

        site = self.site(max_connections=2)
        first, first_transport = self.connect(site)
        second, _ = self.connect(site)
        self.assertEqual(site.open_connections, 2)
        with capturedLogs() as events:
            third, third_transport = self.connect(site)
            self.connect(site)
        warnings = [e for e in events if "max_connections" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1, "logged once while connections are refused")
        status, error = self.answer(third_transport)
        self.assertEqual(status, 503)
        self.assertIn("max_connections", error["message"])
        self.assertIn(b"Retry-After: 1", third_transport.value())
        self.clock.advance(1)  # a client that does not close is cut off
        self.assertTrue(third_transport.disconnecting or third_transport.value())
        third.connectionLost(None)
        with capturedLogs() as events:
            first.connectionLost(None)
        self.assertEqual(site.open_connections, 1)
        self.assertEqual([e["log_format"] for e in events if "below" in e.get("log_format", "")],
                         ["API connections are below the max_connections limit again"])
        fourth, fourth_transport = self.connect(site)
        fourth.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", fourth_transport.value())

    def test_twisted_private_api_canary(self):
        """
        The private parts of Twisted the channel relies on still exist and
        still mean what they did: if this fails after a Twisted upgrade,
        revisit L{fireworq.web.channel.FireworqChannel}.
        """
        from twisted.internet.testing import StringTransport
        from twisted.web import http

        from fireworq.web.channel import TWISTED_PRIVATE_API, FireworqChannel

        self.assertEqual(
            TWISTED_PRIVATE_API,
            ("HTTPChannel._respondToBadRequestAndDisconnect", "HTTPChannel._receivedHeaderSize",
             "HTTPChannel._receivedHeaderCount", "HTTPChannel._HTTPChannel__header", "HTTPChannel._command",
             "HTTPChannel._path", "HTTPChannel._version", "HTTPChannel._transferDecoder",
             "LineReceiver._buffer", "LineReceiver._busyReceiving",
             "_ChunkedTransferDecoder.state", "_ChunkedTransferDecoder._buffer"),
        )
        for name in ("_receivedHeaderSize", "_receivedHeaderCount", "_HTTPChannel__header"):
            self.assertTrue(hasattr(http.HTTPChannel, name), name)

        class Watched(http.HTTPChannel):
            def _respondToBadRequestAndDisconnect(self) -> None:
                calls.append((hasattr(self, "_command"), self._receivedHeaderCount, self._receivedHeaderSize,
                              self._HTTPChannel__header))

        # Twisted answers a bad request line through that method, before _command is set.
        calls: List[Any] = []
        channel = Watched()
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"GET /\xff HTTP/1.1\r\n")
        self.assertEqual(calls, [(False, 0, 15, b"")])
        # ... and a bad header with _command set, the header line being parsed
        # in __header, and the counters of header bytes and fields.
        calls = []
        channel = Watched()
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        self.assertEqual(calls, [(True, 1, 14 + 7 + 18, b"Content-Length: -5")])
        # The parsed request line, and the line parser's pending bytes (no
        # CR LF in them) once it is done with a read.
        channel = Watched()
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"GET /p HTTP/1.1\r\nHost: x\nX")
        self.assertEqual((channel._command, channel._path, channel._version), (b"GET", b"/p", b"HTTP/1.1"))
        self.assertEqual((channel._buffer, channel._busyReceiving), (b"Host: x\nX", False))
        # The chunked decoder's state and pending bytes while it waits for a size line's CR LF.
        channel = Watched()
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\n")
        decoder = channel._transferDecoder
        self.assertIsInstance(decoder, http._ChunkedTransferDecoder)
        self.assertEqual((decoder.state, bytes(decoder._buffer)), ("CHUNK_LENGTH", b"2\n"))
        # Its line limit and header hooks are the ones overridden.
        self.assertTrue(issubclass(FireworqChannel, http.HTTPChannel))
        for hook in ("allHeadersReceived", "allContentReceived", "requestDone", "lineLengthExceeded",
                     "dataReceived"):
            self.assertTrue(callable(getattr(http.HTTPChannel, hook, None)), hook)
