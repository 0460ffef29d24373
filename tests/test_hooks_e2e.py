"""
Event hooks (protocol B12) end to end: real ``twistd fireworq`` processes, a
real worker, a real hook receiver, and the ``standardwebhooks`` package (the
Standard Webhooks reference library) verifying the signature of what the
receiver got -- on sqlite, in memory and MySQL; a failing receiver retried
into ``_hooks``'s failure log; and a node killed with SIGKILL between a
job's completion and its hook's delivery (MySQL, two nodes).
"""

from __future__ import annotations

import json
import time
from typing import Any, List, Optional

import attr
from standardwebhooks import Webhook, WebhookVerificationError
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.cases import ServerTestCase
from tests.support.mysql_cases import MySQLServerMixin
from tests.support.polling import pause, wait_until
from tests.test_multinode import ClusterTestCase


@attr.s(auto_attribs=True)
class Received:
    """One request the hook receiver got."""

    path: str
    headers: dict
    body: bytes

    @property
    def event(self) -> Any:
        return json.loads(self.body)


class _Receive(Resource):
    isLeaf = True

    def __init__(self, receiver: "Receiver") -> None:
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request: Any) -> Any:
        headers = {
            k.decode("latin-1").lower(): v[0].decode("utf-8", "replace")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        received = Received(request.path.decode(), headers, request.content.read())
        self.receiver.received.append(received)
        mode = self.receiver.mode
        if mode == "hold":
            self.receiver.held.append(request)
            return NOT_DONE_YET
        if mode == "fail":
            request.setResponseCode(503)
            return b"busy"
        request.setResponseCode(204)
        return b""


class Receiver:
    """A hook receiver on loopback: answers 204 (``ok``), 503 (``fail``) or never (``hold``)."""

    def __init__(self) -> None:
        self.received: List[Received] = []
        self.held: List[Any] = []
        self.mode = "ok"
        site = Site(_Receive(self))
        site.noisy = False
        self._port = reactor.listenTCP(0, site, interface="127.0.0.1")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._port.getHost().port}{path}"

    def stop(self) -> Any:
        for request in self.held:
            if not request._disconnected:
                request.loseConnection()
        return self._port.stopListening()

    def events(self, type: Optional[str] = None) -> List[Any]:
        return [r.event for r in self.received if type is None or r.event["type"] == type]


class HookTests(ServerTestCase):
    """A hook gets the events it asked for, signed with its secret."""

    def setUp(self) -> None:
        super().setUp()
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)

    def received(self, count: int, timeout: float = 20.0) -> Any:
        return wait_until(
            lambda: len(self.receiver.received) >= count,
            timeout,
            message=lambda: f"{count} hook deliveries (got {len(self.receiver.received)})",
        )

    @inlineCallbacks
    def test_completion_reaches_the_hook(self):
        server = yield self.server()
        code, hook = yield server.call(
            "PUT", "/hook/audit",
            {"url": self.receiver.url(), "events": ["job.completed", "job.pushed"], "queues": "def*"},
        )
        self.assertEqual(code, 200, hook)
        secret = hook["secret"]
        self.assertTrue(secret.startswith("whsec_"))
        self.assertEqual(hook, {"name": "audit", "url": self.receiver.url(),
                                # as given (A16: was reordered to the types' table order)
                                "events": ["job.completed", "job.pushed"], "queues": "def*", "secret": secret})
        # The secret is shown only by the PUT that made it.
        code, shown = yield server.call("GET", "/hook/audit")
        self.assertEqual(code, 200)
        self.assertNotIn("secret", shown)
        code, listed = yield server.call("GET", "/hooks")
        self.assertEqual(listed, [shown])
        code, again = yield server.call("PUT", "/hook/audit", {"url": self.receiver.url(), "events": ["job.completed"]})
        self.assertEqual(code, 200)
        self.assertNotIn("secret", again)  # kept, not made again

        # The internal queue exists now, with its built-in defaults.
        code, queue = yield server.call("GET", "/queue/_hooks")
        self.assertEqual(code, 200, queue)
        for field, value in {"max_retries": 15, "retry_delay": 5, "retry_backoff": 2,
                             "retry_max_delay": 3600, "success": "2xx"}.items():
            self.assertEqual(queue.get(field), value, field)

        code, job = yield self.push(server, "c", url=self.worker.url("/success"), payload={"n": 1})
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        yield self.received(1)
        delivery = self.receiver.received[0]
        self.assertEqual(delivery.headers["x-fireworq-queue"], "_hooks")
        self.assertEqual(delivery.headers["webhook-id"], f"_hooks:{delivery.headers['x-fireworq-job-id']}")
        event = Webhook(secret).verify(delivery.body, delivery.headers)
        self.assertEqual(set(event), {"type", "id", "time", "queue", "job"})
        self.assertEqual(event["type"], "job.completed")
        self.assertEqual(event["queue"], "default")
        self.assertTrue(event["id"].startswith("evt_"))
        self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        shown_job = event["job"]
        self.assertEqual(shown_job["id"], job["id"])
        self.assertEqual(shown_job["category"], "c")
        self.assertEqual(shown_job["payload"], {"n": 1})
        self.assertEqual(shown_job["state"], "completed")
        self.assertEqual(shown_job["result"]["status"], "success")
        self.assertEqual(shown_job["result"]["message"], "done")
        self.assertEqual(shown_job["result"]["code"], 200)
        # A tampered body or another secret does not verify.
        with self.assertRaises(WebhookVerificationError):
            Webhook(secret).verify(delivery.body.replace(b"success", b"failure"), delivery.headers)
        other = yield server.call("PUT", "/hook/other", {"url": self.receiver.url("/other"), "events": ["job.failed"]})
        with self.assertRaises(WebhookVerificationError):
            Webhook(other[1]["secret"]).verify(delivery.body, delivery.headers)
        # The hook delivery itself made no event (hook jobs never trigger hooks).
        yield pause(1.0)
        self.assertEqual(len(self.receiver.received), 1)

        code, deleted = yield server.call("DELETE", "/hook/audit")
        self.assertEqual((code, deleted["name"]), (200, "audit"))
        code, _ = yield server.call("GET", "/hook/audit")
        self.assertEqual(code, 404)
        yield self.push(server, "c", url=self.worker.url("/success"))
        yield self.delivered(2)
        yield pause(1.0)
        self.assertEqual(len(self.receiver.received), 1)

    @inlineCallbacks
    def test_bad_definitions(self):
        server = yield self.server()
        cases = [
            ({"events": ["job.completed"]}, "url"),
            ({"url": "ftp://x/", "events": ["job.completed"]}, "url"),
            ({"url": self.receiver.url()}, "events"),
            ({"url": self.receiver.url(), "events": ["job.done"]}, "job.done"),
            ({"url": self.receiver.url(), "events": ["job.failed"], "secret": "abc"}, "secret"),
            ({"url": self.receiver.url(), "events": ["job.failed"], "queues": 5}, "queues"),
            ({"url": self.receiver.url(), "events": ["job.failed"], "colour": "red"}, "colour"),
        ]
        for body, named in cases:
            code, error = yield server.call("PUT", "/hook/h", body)
            self.assertEqual(code, 400, (body, error))
            self.assertIn(named, error["message"])
        code, error = yield server.call("PUT", "/hook/h", raw=b"[1]")
        self.assertEqual(code, 400)
        code, _ = yield server.call("DELETE", "/hook/none")
        self.assertEqual(code, 404)
        code, hooks = yield server.call("GET", "/hooks")
        self.assertEqual((code, hooks), (200, []))
        # A secret given is kept and never shown.
        secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        code, hook = yield server.call("PUT", "/hook/h", {"url": self.receiver.url(), "events": ["job.pushed"],
                                                          "secret": secret})
        self.assertEqual(code, 200)
        self.assertNotIn("secret", hook)
        yield self.push(server, "c", url=self.worker.url("/success"))
        yield self.received(1)
        Webhook(secret).verify(self.receiver.received[0].body, self.receiver.received[0].headers)
        self.assertEqual(self.receiver.events()[0]["type"], "job.pushed")

    @inlineCallbacks
    def test_failing_receiver_is_retried_into_the_failure_log(self):
        server = yield self.server()
        self.receiver.mode = "fail"
        code, _ = yield server.call("PUT", "/hook/h", {"url": self.receiver.url(), "events": ["job.failed"]})
        self.assertEqual(code, 200)
        # The _hooks queue's definition may be changed like any queue's.
        code, queue = yield server.call(
            "PUT", "/queue/_hooks",
            {"polling_interval": 100, "max_workers": 2, "max_retries": 2, "retry_delay": 1, "success": "2xx"},
        )
        self.assertEqual(code, 200, queue)
        code, job = yield self.push(server, "c", url=self.worker.url("/permanent"))
        self.assertEqual(code, 200)
        yield self.received(3)  # the first try and two retries

        def logged():
            d = server.call("GET", "/queue/_hooks/failed")
            d.addCallback(lambda r: r[1].get("failed_jobs"))
            return d

        failed = yield wait_until(logged, 15, 0.1, "the hook job in _hooks's failure log")
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0]["category"], "h")
        self.assertEqual(failed[0]["url"], self.receiver.url())
        self.assertEqual(failed[0]["payload"]["type"], "job.failed")
        self.assertEqual(failed[0]["payload"]["job"]["id"], job["id"])
        self.assertEqual(failed[0]["fail_count"], 3)
        self.assertEqual(len(self.receiver.received), 3)
        ids = {r.headers["webhook-id"] for r in self.receiver.received}
        self.assertEqual(len(ids), 1)  # one message, three attempts


class MemoryHookTests(HookTests):
    """L{HookTests} on the in-memory driver."""

    driver = "in-memory"


class MySQLHookTests(MySQLServerMixin, HookTests):
    """L{HookTests} on MySQL."""

    database_name = "hooks"


class HookTakeoverTests(ClusterTestCase):
    """Two MySQL nodes: a hook job outlives the node that was delivering it."""

    @inlineCallbacks
    def test_kill_between_completion_and_hook_delivery(self):
        receiver = Receiver()
        self.addCleanup(receiver.stop)
        receiver.mode = "hold"
        first = yield self.start_node("a")
        second = yield self.start_node("b")
        code, hook = yield first.call("PUT", "/hook/h", {"url": receiver.url(), "events": ["job.completed"]})
        self.assertEqual(code, 200, hook)
        code, _ = yield first.call("PUT", "/queue/q", {"polling_interval": 100, "max_workers": 2})
        self.assertEqual(code, 200)
        yield first.call("PUT", "/routing/c", {"queue_name": "q"})
        # Both nodes know the hook (within config_refresh_interval).
        yield pause(1.5)
        code, job = yield second.call("POST", "/job/c", {"url": self.worker.url("/success"), "payload": {"k": 1}})
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        # The job completed; its hook's delivery has started and hangs.
        yield wait_until(lambda: receiver.received, 20, 0.05, "the hook delivery to start")

        @inlineCallbacks
        def holder():
            for node in (first, second):
                code, info = yield node.call("GET", "/queue/_hooks/node")
                if code == 200 and node.owns(info):
                    return node
            return None

        holding = yield wait_until(holder, 20, 0.1, "a node to hold _hooks")
        other = second if holding is first else first
        holding.process.kill()  # SIGKILL
        receiver.mode = "ok"
        yield wait_until(lambda: len(receiver.received) >= 2, 30, 0.05, "the hook delivered after takeover")
        again = receiver.received[-1]
        event = Webhook(hook["secret"]).verify(again.body, again.headers)
        self.assertEqual(event["type"], "job.completed")
        self.assertEqual(event["job"]["id"], job["id"])
        self.assertEqual(again.headers["webhook-id"], receiver.received[0].headers["webhook-id"])
        self.assertEqual(again.headers["x-fireworq-attempt"], "2")
        code, info = yield other.call("GET", "/queue/_hooks/node")
        self.assertTrue(other.owns(info))
