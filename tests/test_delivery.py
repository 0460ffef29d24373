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

from fireworq.dispatch.delivery import (
    HTTPDeliverer,
    _classify_exactly,
    _plain_fields,
    classify,
)
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
    """
    A worker that answers with a fixed body and code, recording requests.
    With ``hang`` it never answers; with ``stall`` it sends the status line,
    the headers and ``body``, and never finishes.  ``lost`` counts requests
    whose connection closed before they were finished.
    """

    isLeaf = True

    def __init__(self, body: bytes, code: int = 200, hang: bool = False, stall: bool = False) -> None:
        super().__init__()
        self.body = body
        self.code = code
        self.hang = hang
        self.stall = stall
        self.requests = []
        self.lost = 0

    def render_POST(self, request):
        self.requests.append(
            (request.requestHeaders, request.content.read(), request.uri)
        )
        request.notifyFinish().addErrback(self._lost)
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        if self.stall:
            request.write(self.body)
            return NOT_DONE_YET
        return self.body

    def _lost(self, failure) -> None:
        self.lost += 1


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

    def test_not_json_constant(self):
        # Go's decoder knows no NaN: the whole answer is unparsable.
        result = classify(200, b'{"status":"success","n":NaN}')
        self.assertEqual(result.status, "failure")
        self.assertTrue(result.message.startswith("Cannot parse body as JSON: "))

    def test_not_an_object(self):
        for body in (b'["success"]', b'"success"', b"1", b"true"):
            result = classify(200, body)
            self.assertEqual(result.status, "failure", body)
            self.assertTrue(result.message.startswith("Cannot parse body as JSON: "), body)
            self.assertIn(body.decode(), result.message)

    def test_status_not_a_string_cannot_be_parsed(self):
        result = classify(200, b'{"status":1}')
        self.assertEqual(result.status, "failure")
        self.assertTrue(result.message.startswith("Cannot parse body as JSON: "), result.message)

    def test_unknown_status(self):
        result = classify(202, b'{"status":"done"}')
        self.assertEqual((result.status, result.code), ("failure", 202))
        self.assertEqual(
            result.message, 'Invalid result status: done\nOriginal response body:\n{"status":"done"}'
        )

    def test_null_or_missing_status_is_an_empty_status(self):
        """As the original: JSON null, no status or a null one read as status ""."""
        for body in (b"null", b"{}", b'{"message":"m"}', b'{"status":null}', b'{"status":""}'):
            result = classify(200, body)
            self.assertEqual((result.status, result.code), ("failure", 200), body)
            self.assertEqual(
                result.message,
                "Invalid result status: \nOriginal response body:\n" + body.decode(),
            )

    def test_member_names_match_as_in_go(self):
        """Go's decoder matches keys case-insensitively; the last match wins."""
        result = classify(200, b'{"Status":"success","MESSAGE":"ok"}')
        self.assertEqual((result.status, result.message), ("success", "ok"))
        result = classify(200, b'{"status":"success","Status":"failure"}')
        self.assertEqual(result.status, "failure")
        result = classify(200, b'{"status":"success","status":null}')
        self.assertEqual(result.status, "success")


#: Answers whose plain parse could be read differently from Go's decoder:
#: duplicate keys, case variants, null and non-string members, nesting,
#: extra fields, constants and other encodings.
TRICKY_ANSWERS = [
    b'{"status":"success"}',
    b'{"status":"success","message":"m"}',
    b'{"message":"m","status":"failure"}',
    b' {"status" : "success" , "message" : "m" } ',
    b'{"status":"success","message":"m","extra":1,"nested":{"status":"failure"}}',
    b'{"status":"success","status":"failure"}',
    b'{"status":"success","status":null}',
    b'{"status":null,"status":"success"}',
    b'{"status":"failure","Status":null}',
    b'{"Status":"success"}',
    b'{"status":"success","Status":"failure"}',
    b'{"STATUS":"failure","status":"success"}',
    b'{"\\u017ftatus":"failure","status":"success"}',
    b'{"status":"success","message":"a","message":"b"}',
    b'{"status":"success","message":"a","message":null}',
    b'{"status":"success","message":null}',
    b'{"status":"success","Message":"x"}',
    b'{"status":"success","message":"a","MESSAGE":"b"}',
    b'{"status":"success","MESSAGE":"b","message":"a"}',
    b'{"status":"success","message":{"a":[1,2.5,"x"],"a":null}}',
    b'{"status":"success","message":12}',
    b'{"status":"success","message":1.0}',
    b'{"status":"success","message":true}',
    b'{"status":"success","message":[1,{"b":"\\u00e9"}]}',
    b'{"status":"success","message":"\\u00e9\\ud83d\\ude00"}',
    b'{"status":1}',
    b'{"status":true}',
    b'{"status":["success"]}',
    b'{"status":{"status":"success"}}',
    b'{"status":"done"}',
    b'{"status":""}',
    b'{"status":null}',
    b'{"message":"m"}',
    b"{}",
    b"null",
    b'["success"]',
    b'"success"',
    b"1",
    b"<html>",
    b"",
    b'{"status":"success","n":NaN}',
    b'{"status":"success","n":-Infinity}',
    b'{"status":"success","n":1e400}',
    b'{"status":"success"} x',
    b'\xef\xbb\xbf{"status":"success"}',
    '{"status":"success","message":"\u00e9"}'.encode("utf-16"),
    '{"status":"success","message":"m"}'.encode("utf-32-le"),
    b'{"status":"success","message":"\xff"}',
]


class ClassifyFastPathTests(SynchronousTestCase):
    """L{classify}'s plain parse decides exactly as the member-by-member one."""

    def test_same_result_as_the_exact_reading(self):
        for body in TRICKY_ANSWERS:
            for code in (200, 500):
                self.assertEqual(classify(code, body), _classify_exactly(code, body), body)

    def test_plain_answers_take_the_fast_path(self):
        # Else the comparison above would compare the slow path with itself.
        for body in (
            b'{"status":"success"}',
            b'{"status":"failure","message":"m","extra":{"Status":1}}',
            b'{"status":"success","status":"failure"}',
            b'{"status":"success","message":12}',
        ):
            self.assertIsNotNone(_plain_fields(body), body)
        for body in (
            b'{"status":"success","status":null}',
            b'{"status":"success","Status":"failure"}',
            b'{"status":"success","message":"a","message":null}',
            b'{"status":"success","n":NaN}',
            b'{"status":1}',
            b"null",
        ):
            self.assertIsNone(_plain_fields(body), body)


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

    def test_timeout_while_the_body_stalls_closes_the_connection(self):
        """
        A worker that sends its headers and part of its body, then stalls: the
        timeout gives the timeout failure with the worker's code, and the
        connection to the worker is closed (not left open, nor pooled).
        """
        clock = Clock()
        resource = Answer(b'{"status":"succ', code=202, stall=True)
        d, stub = self.deliver(resource, job(timeout=3), clock=clock)
        self.assertNoResult(d)
        self.assertEqual(resource.lost, 0)
        clock.advance(3)
        result = self.successResultOf(d)
        self.assertEqual((result.status, result.code), ("internal-failure", 202))
        self.assertIn("timeout of 3s", result.message)
        stub.flush()
        self.assertEqual(resource.lost, 1)

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

    def test_too_large_answer_closes_the_connection(self):
        resource = Answer(b"x" * 5000, stall=True)
        d, stub = self.deliver(resource, max_response_bytes=1000)
        result = self.successResultOf(d)
        self.assertIn("larger than 1000 bytes", result.message)
        stub.flush()
        self.assertEqual(resource.lost, 1)

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


class RememberedAnswerTests(SynchronousTestCase):
    """A short answer is read once; what it means is remembered."""

    def setUp(self):
        from fireworq.dispatch import delivery

        self.answers = delivery._ANSWERS
        self.answers.clear()
        self.addCleanup(self.answers.clear)

    def test_same_result_as_reading_it(self):
        from fireworq.dispatch.delivery import answer_of
        from fireworq.dispatch.success import judge_2xx

        for body in (b'{"status":"success"}', b'{"status":"failure","message":"no"}', b"nope", b""):
            for code in (200, 503):
                for _ in range(2):
                    self.assertEqual(answer_of(False, code, body), classify(code, body))
                    verdict = judge_2xx(code, body)
                    read = answer_of(True, code, body)
                    self.assertEqual((read.outcome or read.status, read.status, read.message),
                                     (verdict.outcome, verdict.result.status, verdict.result.message))
        self.assertTrue(self.answers)

    def test_rule_and_code_are_part_of_the_answer(self):
        from fireworq.dispatch.delivery import answer_of

        body = b'{"status":"failure"}'
        self.assertEqual(answer_of(True, 200, body).outcome, "success")
        self.assertIsNone(answer_of(False, 200, body).outcome)
        self.assertEqual(answer_of(False, 500, body).code, 500)

    def test_long_and_many_answers_are_not_kept(self):
        from fireworq.dispatch import delivery

        long_body = b'{"status":"success","message":"' + b"x" * delivery.REMEMBERED_ANSWER_BYTES + b'"}'
        delivery.answer_of(False, 200, long_body)
        self.assertEqual(self.answers, {})
        for n in range(delivery.REMEMBERED_ANSWERS + 1):
            delivery.answer_of(False, 200, b'{"status":"success","message":"%d"}' % n)
        self.assertLessEqual(len(self.answers), delivery.REMEMBERED_ANSWERS)
        self.assertEqual(delivery.answer_of(False, 200, b'{"status":"success","message":"1"}').message, "1")
