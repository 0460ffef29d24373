"""
Live events (``GET /events``) against real server processes, read with a
real HTTP client: job events in order, resuming with ``Last-Event-ID``,
stats events, a tenant token's filter, and a client that stops reading cut
off while the server's memory stays flat.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Dict, List, Optional

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone

from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until
from tests.test_auth_routes import ADMIN_TOKEN


class SSEReader(Protocol):
    """Parses a text/event-stream body into events (dicts of event, id, data)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.events: List[Dict[str, Any]] = []
        self.comments: List[str] = []
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            event: Dict[str, Any] = {}
            for line in block.decode("utf-8").split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                field, _, value = line.partition(": ")
                event[field] = value
            if "data" in event:
                event["data"] = json.loads(event["data"])
            if event:
                self.events.append(event)

    def connectionLost(self, reason: Any = ResponseDone) -> None:
        if not self.done.called:
            self.done.callback(None)

    def of(self, kind: str) -> List[Dict[str, Any]]:
        """The events of type ``kind``."""
        return [e for e in self.events if e.get("event") == kind]

    def jobs(self) -> List[Dict[str, Any]]:
        """The job events (not stats)."""
        return [e for e in self.events if e.get("event", "").startswith("job.")]


class EventsTestCase(ServerTestCase):
    """Opens streams that are closed when the test ends."""

    @inlineCallbacks
    def stream(self, server: Any, path: str = "/events", headers: Optional[Dict[str, str]] = None):
        response = yield treq.get(server.url(path), headers=headers or {}, unbuffered=True, timeout=10)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])
        reader = SSEReader()
        response.deliverBody(reader)
        self.addCleanup(lambda: reader.transport and reader.transport.stopProducing())
        return reader


class LiveEventTests(EventsTestCase):
    """Push, complete, resume."""

    @inlineCallbacks
    def test_push_then_complete_in_order_and_resume(self):
        server = yield self.server()
        first = yield self.stream(server, "/events?queue=default")
        code, pushed = yield self.push(server, "greet", url=self.worker.url("/success"), payload={"n": 1})
        self.assertEqual(code, 200, pushed)

        def both():
            types = [(e["event"], e["data"]["job"]["id"]) for e in first.jobs()]
            return len(types) >= 2 and types

        types = yield wait_until(both, 15, message=lambda: f"two job events, got {first.events}")
        self.assertEqual(types, [("job.pushed", pushed["id"]), ("job.completed", pushed["id"])])
        push_event, done_event = first.jobs()
        for event in (push_event, done_event):
            body = event["data"]
            self.assertEqual(sorted(body), ["id", "job", "queue", "time", "type"])
            self.assertEqual((body["type"], body["id"], body["queue"]), (event["event"], event["id"], "default"))
        self.assertEqual(push_event["data"]["job"]["payload"], {"n": 1})
        self.assertEqual(push_event["data"]["job"]["category"], "greet")
        finished = done_event["data"]["job"]
        self.assertEqual(finished["state"], "completed")
        self.assertEqual(finished["result"]["status"], "success")
        self.assertEqual(finished["result"]["code"], 200)
        self.assertEqual(finished["result"]["message"], "done")

        # Stats of the queue: sent at once, then every 2 s.
        stats = first.of("stats")
        self.assertTrue(stats)
        self.assertEqual(stats[0]["data"]["queue"], "default")
        self.assertIn("total_pushes", stats[0]["data"])

        # Resume after the push event: the completion comes again, first.
        second = yield self.stream(server, "/events?queue=default", {"Last-Event-ID": push_event["id"]})
        resumed = yield wait_until(lambda: second.jobs(), 10)
        self.assertEqual([(e["event"], e["id"]) for e in resumed], [("job.completed", done_event["id"])])
        # An id not in the window (another run) is said so, and the stream goes on live.
        third = yield self.stream(server, "/events", {"Last-Event-ID": "zzz-5"})
        yield wait_until(lambda: any("cannot resume" in c for c in third.comments), 10)
        self.assertEqual(third.jobs(), [])

    @inlineCallbacks
    def test_failure_retry_and_filter(self):
        server = yield self.server()
        code, _ = yield server.call("PUT", "/queue/other", {"polling_interval": 100, "max_workers": 2})
        self.assertEqual(code, 200)
        code, _ = yield server.call("PUT", "/routing/to-other", {"queue_name": "other"})
        self.assertEqual(code, 200)
        reader = yield self.stream(server, "/events?queue=default")
        yield self.push(server, "to-other", url=self.worker.url("/success"))
        code, pushed = yield self.push(
            server, "greet", url=self.worker.url("/failure"), max_retries=1, retry_delay=0
        )
        self.assertEqual(code, 200)
        yield wait_until(lambda: len(reader.jobs()) >= 3, 15, message=lambda: f"3 events: {reader.events}")
        self.assertEqual(
            [e["event"] for e in reader.jobs()], ["job.pushed", "job.retried", "job.failed"]
        )
        retried = reader.jobs()[1]["data"]["job"]
        self.assertEqual(retried["fail_count"], 1)
        self.assertEqual(retried["result"]["status"], "failure")
        self.assertEqual(reader.jobs()[2]["data"]["job"]["state"], "failed")
        self.assertEqual({e["data"]["queue"] for e in reader.jobs() + reader.of("stats")}, {"default"})

    @inlineCallbacks
    def test_bad_filter(self):
        server = yield self.server()
        code, body = yield server.call("GET", "/events?queue=..")
        self.assertEqual(code, 400)
        self.assertIn("query parameter queue", body["message"])


class TenantEventTests(EventsTestCase):
    """With auth on, a tenant token streams only its queues' events and stats."""

    @inlineCallbacks
    def test_tenant_sees_only_its_queues(self):
        server = yield self.server(auth="on", admin_token=ADMIN_TOKEN, queue_default="")
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        def call(method, path, body=None, headers=admin):
            d = treq.request(method, server.url(path), json=body, headers=headers, timeout=10)
            d.addCallback(lambda r: treq.json_content(r).addCallback(lambda v: (r.code, v)))
            return d

        for name in ("ta-q", "tb-q"):
            code, answer = yield call("PUT", f"/queue/{name}", {"polling_interval": 100})
            self.assertEqual(code, 200, answer)
            code, answer = yield call("PUT", f"/routing/{name}", {"queue_name": name})
            self.assertEqual(code, 200, answer)
        code, token = yield call("POST", "/tokens", {"name": "tenant", "scopes": ["read"], "queues": "ta-*"})
        self.assertEqual(code, 201, token)
        reader = yield self.stream(server, "/events", {"Authorization": f"Bearer {token['token']}"})
        code, _ = yield call("POST", "/job/tb-q", {"url": self.worker.url("/success")})
        self.assertEqual(code, 200)
        code, _ = yield call("POST", "/job/ta-q", {"url": self.worker.url("/success")})
        self.assertEqual(code, 200)
        yield wait_until(lambda: len(reader.jobs()) >= 2, 15, message=lambda: f"events: {reader.events}")
        self.assertEqual({e["data"]["queue"] for e in reader.jobs() + reader.of("stats")}, {"ta-q"})
        # Revoking the token ends its stream (checked before each stats round, every 2 s).
        code, _ = yield call("DELETE", f"/token/{token['id']}")
        self.assertEqual(code, 200)
        yield wait_until(lambda: reader.done.called, 10, message="the revoked token's stream to end")
        self.assertIn("the token of this stream is no longer valid", reader.comments)
        # Without a token: 401, no stream.
        response = yield treq.get(server.url("/events"), timeout=10)
        self.assertEqual(response.code, 401)
        yield response.content()


def rss_kib(pid: int) -> int:
    """The process's resident set size (VmRSS) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class SlowClientTests(EventsTestCase):
    """A client that stops reading is cut off; memory stays flat."""

    timeout = 240

    @inlineCallbacks
    def test_stalled_client_is_disconnected(self):
        server = yield self.server()
        # A warm-up round, so that what the server allocates for pushing at all is in the baseline.
        payload = {"blob": "x" * 16_000}
        deferred = {"url": self.worker.url("/success"), "payload": payload, "run_after": 3600}

        @inlineCallbacks
        def push_many(batches):
            for _ in range(batches):
                code, answer = yield server.call("POST", "/jobs/greet", [deferred] * 10)
                self.assertEqual(code, 200, answer)

        yield push_many(200)
        before = rss_kib(server.process.pid)

        # A real client that asks for the stream and never reads: a tiny
        # receive window, so the kernel takes little before the server sees it.
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(stalled.close)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")

        def connected():
            d = server.call("GET", "/metrics")
            d.addCallback(lambda r: "fireworq_events_clients 1.0" in r[1])
            return d

        yield wait_until(connected, 10)
        # About 32 MB of events: far more than the kernel's buffers and the 1 MiB bound.
        yield push_many(200)

        def dropped():
            d = server.call("GET", "/metrics")
            d.addCallback(lambda r: "fireworq_events_clients_dropped_total 1.0" in r[1] and r[1])
            return d

        text = yield wait_until(dropped, 30, message="the stalled client to be dropped")
        self.assertIn("fireworq_events_clients 0.0", text)
        after = rss_kib(server.process.pid)
        # Without the bound the server would hold ~32 MB of unsent events.
        self.assertLess(after - before, 12 * 1024, f"RSS grew from {before} KiB to {after} KiB")
        # The connection was closed by the server: reading ends (after what the kernel held).
        stalled.settimeout(10)
        total = 0
        while True:
            try:
                chunk = stalled.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            total += len(chunk)
        self.assertLess(total, 20 * 1024 * 1024)
