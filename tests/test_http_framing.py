"""
HTTP-level behaviour of the API's own channel and site (fireworq/web/site.py, channel.py, request.py)
and the names a URL can carry (fireworq/names.py):

- a request head (or a chunked body's size line) ended with a bare LF or CR
  is answered 400 at once, not 408 after the header deadline, and a request
  that follows another in one read gets its own deadline and checks;
- every answer the channel sends itself (a request it cannot parse, a line
  too long, a deadline, the connection cap) has its access-log line, in the
  format of every other request's;
- a TLS bind offers only ``http/1.1`` over ALPN, also when the ``h2``
  package is importable (Twisted would offer ``h2`` too, and the HTTP/1.1
  channel would then answer an HTTP/2 client in HTTP/1.1);
- a job category that no URL can reach (``.``, ``..``, a leading ``/``) is
  refused with 400 naming the category on every route that takes one, while
  dot-segments inside a category stay reachable when percent-encoded.

The channel tests run on a Clock and string transports; the others run the
real site in process (see tests/test_limits.py) on a loopback port.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString, wrapClientTLS
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq.logging import AccessLog
from fireworq.web.site import FireworqSite
from tests.support.certs import ThrowawayCA
from tests.test_limits import InProcessTestCase, parse_raw, raw_request


def raw_put_or_post(method: bytes, target: bytes, body: Any) -> bytes:
    """A whole request with a JSON ``body``, its target sent exactly as given."""
    data = json.dumps(body).encode()
    return b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (method, target, len(data), data)


class CollectedLines:
    """An access-log output that keeps the lines it is given, decoded."""

    def __init__(self) -> None:
        self.lines: List[Dict[str, Any]] = []

    def write_line(self, line: str) -> None:
        self.lines.append(json.loads(line))


class ChannelCase(SynchronousTestCase):
    """A site over a resource that answers "hello", on a Clock, with a collected access log."""

    def site(self, **kwargs: Any) -> Any:
        from twisted.internet.task import Clock
        from twisted.web.resource import Resource

        class Hello(Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                request.content.read()
                return b"hello"

        self.clock = Clock()
        self.log = CollectedLines()
        kwargs.setdefault("header_timeout", 10)
        kwargs.setdefault("body_timeout", 60)
        return FireworqSite(Hello(), AccessLog(self.log, "fireworq.access"), 1 << 20, True, reactor=self.clock,
                            **kwargs)

    def connect(self, site: Any = None) -> Tuple[Any, Any]:
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        protocol = (site or self.site()).buildProtocol(IPv4Address("TCP", "127.0.0.1", 12345))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 12345))
        protocol.makeConnection(transport)
        return protocol, transport

    def refusal(self, transport: Any) -> Tuple[int, str]:
        """The status and message of the one error answer written, which closes the connection."""
        data = transport.value()
        self.assertEqual(data.count(b"\r\n\r\n"), 1, data)
        status, headers, body = parse_raw(data)
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(transport.disconnecting)
        return status, json.loads(body)["message"]


class BareLineEndTests(ChannelCase):
    """Malformed line ends are a prompt 400 that says so, never a 408 ten seconds later."""

    def test_bare_lf_everywhere_is_400_at_once(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /version HTTP/1.1\nHost: x\n\n")
        status, message = self.refusal(transport)
        self.assertEqual(status, 400)
        self.assertIn("must end with CR LF", message)
        self.assertIn("bare LF", message)

    def test_bare_lf_after_a_proper_request_line_is_400(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /version HTTP/1.1\r\nHost: x\n\n")
        self.assertEqual(self.refusal(transport)[0], 400)

    def test_bare_lf_arriving_in_a_later_read_is_400(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /version HTTP/1.1\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"Host: x\n")
        self.assertEqual(self.refusal(transport)[0], 400)

    def test_bare_cr_is_400(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /version HTTP/1.1\rHost: x\r\r")
        status, message = self.refusal(transport)
        self.assertEqual(status, 400)
        self.assertIn("bare CR", message)

    def test_cr_lf_split_between_reads_is_fine(self):
        protocol, transport = self.connect()
        for part in (b"GET / HTTP/1.1\r", b"\nHost: x\r", b"\n\r", b"\n"):
            protocol.dataReceived(part)
        self.assertIn(b"200 OK", transport.value())
        self.assertFalse(transport.disconnecting)

    def test_a_request_sent_byte_by_byte_is_answered(self):
        protocol, transport = self.connect()
        for byte in b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na\nb":
            protocol.dataReceived(bytes([byte]))
        self.assertIn(b"200 OK", transport.value())
        self.assertTrue(transport.value().endswith(b"hello"))

    def test_chunked_size_line_with_bare_lf_is_400(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\n0\n\n")
        status, message = self.refusal(transport)
        self.assertEqual(status, 400)
        self.assertIn("chunked", message)
        # The last chunk's trailer ended with a bare LF.
        protocol, transport = self.connect()
        protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\n")
        self.assertEqual(self.refusal(transport)[0], 400)

    def test_line_feeds_inside_chunk_data_are_data(self):
        protocol, transport = self.connect()
        head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        for part in (head, b"2\r", b"\n\n\n", b"\r\n0\r", b"\n\r\n"):
            protocol.dataReceived(part)
        self.assertIn(b"200 OK", transport.value())

    def test_a_request_following_another_in_one_read_is_checked(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\nHost: x\n\n")
        data = transport.value()
        self.assertIn(b"200 OK", data)
        self.assertIn(b"400 Bad Request", data)
        self.assertIn(b"bare LF", data)
        self.assertTrue(transport.disconnecting)

    def test_a_request_following_another_in_one_read_has_its_deadline(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HT")
        self.assertIn(b"200 OK", transport.value())
        self.clock.advance(10)
        self.assertIn(b"408 Request Timeout", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_the_second_request_line_is_explained_as_such(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /a b HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"single spaces", transport.value())


class RefusalAccessLogTests(ChannelCase):
    """Answers the channel sends itself are in the access log, like every other answer."""

    def logged_refusal(self, *steps: Any) -> Dict[str, Any]:
        """The one access-log line of a request sent in ``steps``: bytes to send, or seconds to wait."""
        protocol, transport = self.connect()
        for step in steps:
            if isinstance(step, bytes):
                protocol.dataReceived(step)
            else:
                self.clock.advance(step)
        status, _ = self.refusal(transport)
        self.assertEqual(len(self.log.lines), 1, self.log.lines)
        line = self.log.lines.pop()
        self.assertEqual(line["status"], status)
        self.assertEqual(line["size"], len(parse_raw(transport.value())[2]))
        self.assertEqual(line["remote_addr"], "127.0.0.1")
        self.assertEqual((line["level"], line["tag"]), ("info", "fireworq.access"))
        self.assertEqual(
            set(line),
            {"level", "time", "tag", "method", "uri", "proto", "status", "size", "elapsed", "remote_addr",
             "user_agent"},
        )
        return line

    def assertShows(self, line: Dict[str, Any], method: str, uri: str, proto: str, user_agent: str = "") -> None:
        self.assertEqual((line["method"], line["uri"], line["proto"], line["user_agent"]),
                         (method, uri, proto, user_agent))

    def test_a_normal_answer_is_logged_once(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"GET /x HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\n\r\n")
        self.assertEqual([(e["status"], e["uri"], e["user_agent"]) for e in self.log.lines], [(200, "/x", "t/1")])

    def test_malformed_request_line(self):
        line = self.logged_refusal(b"GARBAGE\r\n\r\n")
        self.assertShows(line, "", "", "")
        line = self.logged_refusal(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertShows(line, "GET", "/a b", "HTTP/1.1")

    def test_bad_content_length(self):
        line = self.logged_refusal(b"POST /job/c HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\nContent-Length: abc\r\n\r\n")
        self.assertEqual(line["status"], 400)
        self.assertShows(line, "POST", "/job/c", "HTTP/1.1", "t/1")

    def test_line_too_long(self):
        line = self.logged_refusal(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
        self.assertEqual(line["status"], 414)
        self.assertEqual(line["method"], "GET")
        self.assertEqual(line["uri"], "/" + "a" * 1023, "the target is cut")
        line = self.logged_refusal(b"GET /q HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n")
        self.assertEqual(line["status"], 431)
        self.assertShows(line, "GET", "/q", "HTTP/1.1")

    def test_bare_lf(self):
        line = self.logged_refusal(b"GET /version HTTP/1.1\nHost: x\n\n")
        self.assertEqual(line["status"], 400)
        self.assertShows(line, "GET", "/version", "HTTP/1.1")

    def test_header_deadline(self):
        line = self.logged_refusal(b"GET /slow HTTP/1.1\r\nHost: x\r\n", 10)
        self.assertEqual(line["status"], 408)
        self.assertShows(line, "GET", "/slow", "HTTP/1.1")
        # The last header line that arrived is shown too.
        line = self.logged_refusal(b"GET /slow HTTP/1.1\r\nHost: x\r\nUser-Agent: t/2\r\n", 10)
        self.assertShows(line, "GET", "/slow", "HTTP/1.1", "t/2")
        # Before the request line is whole the request object does not exist;
        # the wait is still the deadline's.
        line = self.logged_refusal(b"GET /sl", 10)
        self.assertEqual(line["status"], 408)
        self.assertShows(line, "GET", "/sl", "")
        self.assertGreaterEqual(line["elapsed"], 10_000)
        self.assertLess(line["elapsed"], 11_000)

    def test_body_deadline(self):
        # A byte now and then keeps Twisted's idle timeout away; the body's deadline is firm.
        line = self.logged_refusal(
            b"POST /job/c HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\nContent-Length: 10\r\n\r\nabc", 59, b"d", 1
        )
        self.assertEqual(line["status"], 408)
        self.assertShows(line, "POST", "/job/c", "HTTP/1.1", "t/1")

    def test_connection_cap(self):
        site = self.site(max_connections=1)
        self.connect(site)
        _, transport = self.connect(site)
        self.assertIn(b"503 Service Unavailable", transport.value())
        [line] = self.log.lines
        self.assertEqual((line["status"], line["remote_addr"]), (503, "127.0.0.1"))
        self.assertEqual(line["size"], len(parse_raw(transport.value())[2]))
        self.assertShows(line, "", "", "")

    def test_request_line_parts(self):
        from fireworq.web.access_log import request_line_parts

        self.assertEqual(request_line_parts(b"GET /a HTTP/1.1\r\nHost"), (b"GET", b"/a", b"HTTP/1.1"))
        self.assertEqual(request_line_parts(b"GET /a"), (b"GET", b"/a", b""))
        self.assertEqual(request_line_parts(b"NOSPACE\r\n"), (b"", b"", b""))
        self.assertEqual(request_line_parts(b""), (b"", b"", b""))


class _Negotiated(Protocol):
    """Sends one request; fires ``done`` with (ALPN protocol, answer) when the server closes."""

    def __init__(self) -> None:
        self.done: Deferred = Deferred()
        self.received: List[bytes] = []
        self.protocol: Any = None

    def connectionMade(self) -> None:
        self.transport.write(b"GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")

    def dataReceived(self, data: bytes) -> None:
        self.protocol = self.transport.negotiatedProtocol
        self.received.append(data)

    def connectionLost(self, reason: Any) -> None:
        self.done.callback((self.protocol, b"".join(self.received)))


class TLSProtocolTests(TestCase):
    """A TLS bind offers HTTP/1.1 only over ALPN, whatever packages are installed."""

    def test_h2_is_never_offered(self):
        from twisted.web import http

        site = FireworqSite(None, None, 1 << 20, False)
        self.patch(http, "H2_ENABLED", True)  # as when the h2 package is importable
        self.assertEqual(site.acceptableProtocols(), [b"http/1.1"])

    @inlineCallbacks
    def test_a_client_offering_h2_gets_http_1_1(self):
        from twisted.web import http
        from twisted.web.resource import Resource
        from twisted.web.static import Data

        self.patch(http, "H2_ENABLED", True)
        ca = ThrowawayCA(os.path.join(self.mktemp(), "ca"))
        cert = ca.issue(["localhost"], ("127.0.0.1",))
        root = Resource()
        root.putChild(b"version", Data(b"1", "text/plain"))
        site = FireworqSite(root, None, 1 << 20, False)
        endpoint = serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={cert.key_path}:certKey={cert.cert_path}"
        )
        port = yield endpoint.listen(site)
        self.addCleanup(port.stopListening)
        with open(ca.ca_path, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        options = optionsForClientTLS("localhost", trustRoot=trust, acceptableProtocols=[b"h2", b"http/1.1"])
        client = _Negotiated()
        yield connectProtocol(
            wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)), client
        )
        negotiated, answer = yield client.done
        self.assertEqual(negotiated, b"http/1.1")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"), answer[:200])


class CategoryNameTests(InProcessTestCase):
    """
    Categories every route can reach: ``.``, ``..`` and a leading ``/`` are
    refused with 400 naming the category (clients resolve the first two as
    dot-segments; the last makes ``//`` in the path); dot-segments inside a
    category, percent-encoded, keep working.
    """

    def assertScheduleRefuses(self, category: str) -> None:
        """A schedule's category is checked as a pushed job's (this in-process API has no scheduler)."""
        from fireworq.web.errors import ApiError
        from fireworq.web.schedules import parse_schedule

        with self.assertRaises(ApiError) as raised:
            parse_schedule("s", {"cron": "@hourly", "category": category, "url": "http://w/"})
        self.assertEqual(raised.exception.code, 400)
        self.assertIn("field category", raised.exception.message)

    @inlineCallbacks
    def raw_status(self, request: bytes) -> Any:
        status, _, body = parse_raw((yield raw_request(self.port, request)))
        return status, json.loads(body)

    @inlineCallbacks
    def test_dot_categories_are_400_on_every_route(self):
        for encoded, name in (("%2E", "."), ("%2E%2E", ".."), ("%2e%2e", "..")):
            for method, path, body in (
                ("PUT", f"/routing/{encoded}", {"queue_name": "default"}),
                ("POST", f"/job/{encoded}", {"url": "http://w/"}),
                ("POST", f"/jobs/{encoded}", [{"url": "http://w/"}]),
            ):
                message = yield self.refused(400, method, path, body, mentions="category")
                self.assertIn(repr(name), message)
            self.assertScheduleRefuses(name)
        # Sent raw, as a client that does not resolve dot-segments would.
        for name in (b".", b".."):
            status, error = yield self.raw_status(
                raw_put_or_post(b"PUT", b"/routing/" + name, {"queue_name": "default"})
            )
            self.assertEqual((status, error["error"]), (400, "Bad Request"))
            self.assertIn("category", error["message"])

    @inlineCallbacks
    def test_a_leading_slash_is_400_not_404(self):
        for path in ("/routing/%2Fa", "/job/%2Fa"):
            body = {"queue_name": "default"} if "routing" in path else {"url": "http://w/"}
            yield self.refused(400, "PUT" if "routing" in path else "POST", path, body, mentions="start with '/'")
        status, error = yield self.raw_status(raw_put_or_post(b"POST", b"/job//a", {"url": "http://w/"}))
        self.assertEqual(status, 400)
        self.assertIn("start with '/'", error["message"])
        self.assertScheduleRefuses("/a")

    @inlineCallbacks
    def test_dot_segments_inside_a_category_stay_reachable(self):
        yield self.accepted("PUT", "/queue/q", {})
        for category, spellings in (
            ("x/../y", ("x/%2E%2E/y", "x%2F..%2Fy")),
            ("./z", ("%2E/z", ".%2Fz")),
            ("a/.", ("a/%2E", "a%2F.")),
            ("a//b", ("a//b", "a%2F%2Fb")),
            ("a/", ("a/", "a%2F")),
            ("...", ("...",)),
            (".a", (".a",)),
        ):
            first = spellings[0]
            routing = yield self.accepted("PUT", f"/routing/{first}", {"queue_name": "q"})
            self.assertEqual(routing["job_category"], category)
            for spelling in spellings:
                got = yield self.accepted("GET", f"/routing/{spelling}")
                self.assertEqual(got, {"job_category": category, "queue_name": "q"}, spelling)
            job = yield self.accepted("POST", f"/job/{spellings[-1]}", {"url": "http://w/", "run_after": 3600})
            self.assertEqual((job["category"], job["queue_name"]), (category, "q"))
            deleted = yield self.accepted("DELETE", f"/routing/{spellings[-1]}")
            self.assertEqual(deleted["job_category"], category)

    @inlineCallbacks
    def test_a_stored_dot_routing_can_still_be_read_and_deleted(self):
        # Written before names were checked (or by another tool): shown and
        # deleted through the percent-encoded spelling, never refused.
        yield self.manager.put_routing("..", "default")
        got = yield self.accepted("GET", "/routing/%2E%2E")
        self.assertEqual(got, {"job_category": "..", "queue_name": "default"})
        deleted = yield self.accepted("DELETE", "/routing/%2E%2E")
        self.assertEqual(deleted["job_category"], "..")
        yield self.refused(404, "GET", "/routing/%2E%2E")
