"""
Unit tests of delivering a job (A1, B3) with treq's StubTreq standing in
for the network and a task.Clock for timeouts.
"""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fireworq.dispatch.delivery import HTTPDeliverer, classify
from fireworq.model import Job


def job(**fields) -> Job:
    values = dict(
        id=7,
        category="mail/send",
        url="http://worker.example/work",
        payload='{"to":"ann"}',
        status="grabbed",
        created_at=1,
        next_try=1,
        timeout=0,
        fail_count=2,
        retry_count=1,
        retry_delay=0,
    )
    values.update(fields)
    return Job(**values)


class Answer(Resource):
    """A worker that answers with a fixed body and code, recording requests."""

    isLeaf = True

    def __init__(self, body: bytes, code: int = 200, hang: bool = False) -> None:
        super().__init__()
        self.body = body
        self.code = code
        self.hang = hang
        self.requests = []

    def render_POST(self, request):
        self.requests.append(
            (request.requestHeaders, request.content.read(), request.uri)
        )
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        return self.body


class ClassifyTests(SynchronousTestCase):
    """The worker's JSON status decides; the HTTP code is only recorded."""

    def test_statuses(self):
        for status in ("success", "failure", "permanent-failure"):
            result = classify(500, json.dumps({"status": status, "message": "m"}).encode())
            self.assertEqual((result.status, result.code, result.message), (status, 500, "m"))

    def test_missing_message_is_empty(self):
        self.assertEqual(classify(200, b'{"status":"success"}').message, "")

    def test_not_json(self):
        result = classify(200, b"<html>")
        self.assertEqual(result.status, "failure")
        self.assertTrue(result.message.startswith("Cannot parse body as JSON: "))
        self.assertIn("<html>", result.message)

    def test_not_an_object(self):
        result = classify(200, b'["success"]')
        self.assertEqual(result.status, "failure")
        self.assertIn("Cannot parse body as JSON", result.message)

    def test_unknown_status(self):
        result = classify(202, b'{"status":"done"}')
        self.assertEqual((result.status, result.code), ("failure", 202))
        self.assertTrue(result.message.startswith("Invalid result status: done"))


class DeliveryTests(SynchronousTestCase):
    def deliver(self, resource, the_job=None, clock=None, **kwargs):
        stub = StubTreq(resource)
        deliverer = HTTPDeliverer(stub, "Fireworq/test", clock or Clock(), **kwargs)
        d = deliverer.deliver("mails", the_job or job())
        stub.flush()
        return d, stub

    def test_request_body_and_headers(self):
        resource = Answer(b'{"status":"success","message":"ok"}')
        d, _ = self.deliver(resource)
        result = self.successResultOf(d)
        self.assertEqual((result.status, result.code, result.message), ("success", 200, "ok"))
        headers, body, uri = resource.requests[0]
        self.assertEqual(body, b'{"to":"ann"}')
        self.assertEqual(uri, b"/work")
        expected = {
            b"content-type": b"application/json",
            b"user-agent": b"Fireworq/test",
            b"x-fireworq-job-id": b"7",
            b"x-fireworq-queue": b"mails",
            b"x-fireworq-category": b"mail/send",
            b"x-fireworq-attempt": b"3",
        }
        for name, value in expected.items():
            self.assertEqual(headers.getRawHeaders(name), [value], name)

    def test_http_error_code_with_success_body_is_success(self):
        d, _ = self.deliver(Answer(b'{"status":"success"}', code=500))
        self.assertEqual(self.successResultOf(d).status, "success")

    def test_timeout_covers_the_body(self):
        clock = Clock()
        d, stub = self.deliver(Answer(b"", hang=True), job(timeout=3), clock=clock)
        self.assertNoResult(d)
        clock.advance(2.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        result = self.successResultOf(d)
        self.assertEqual(result.status, "internal-failure")
        self.assertIn("timeout of 3s", result.message)

    def test_no_timeout_waits(self):
        clock = Clock()
        d, _ = self.deliver(Answer(b"", hang=True), job(timeout=0), clock=clock)
        clock.advance(3600)
        self.assertNoResult(d)

    def test_too_large_answer_is_a_failure(self):
        d, _ = self.deliver(Answer(b"x" * 5000), max_response_bytes=1000)
        result = self.successResultOf(d)
        self.assertEqual(result.status, "failure")
        self.assertIn("larger than 1000 bytes", result.message)

    def test_connection_failure(self):
        class Broken:
            def post(self, *args, **kwargs):
                from twisted.internet.defer import fail
                from twisted.internet.error import ConnectionRefusedError

                return fail(ConnectionRefusedError("nobody listens"))

        deliverer = HTTPDeliverer(Broken(), "ua", Clock())
        result = self.successResultOf(deliverer.deliver("q", job()))
        self.assertEqual((result.status, result.code), ("internal-failure", 0))
        self.assertTrue(result.message.startswith("Request failed: "))
        self.assertIn("nobody listens", result.message)

    def test_request_that_cannot_be_made(self):
        class Refusing:
            def post(self, *args, **kwargs):
                raise ValueError("bad url")

        result = self.successResultOf(HTTPDeliverer(Refusing(), "ua", Clock()).deliver("q", job()))
        self.assertEqual(result.status, "internal-failure")
        self.assertIn("Cannot create http request: bad url", result.message)
