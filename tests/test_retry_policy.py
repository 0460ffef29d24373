"""
Tests for L{fireworq.dispatch.retry} (B7 backoff, jitter, Retry-After) and
L{fireworq.dispatch.success} (the C{success: "2xx"} rule).
"""

from __future__ import annotations

import random
from email.utils import formatdate

from twisted.trial.unittest import SynchronousTestCase

from fireworq.dispatch.deadline import expired_at_grab, expired_result, expires_before_retry
from fireworq.dispatch.delivery import classify
from fireworq.dispatch.retry import MAX_WAIT, RetryPolicy, parse_retry_after, retry_after_of
from fireworq.dispatch.success import Verdict, is_2xx, judge, judge_2xx, verdict_of
from fireworq.joboptions.values import JobOptions
from fireworq.model import CompletionKind, Job, Result, completion_for


class RecordingRandom:
    """A random source that records its bounds and answers one end of them."""

    def __init__(self, pick: str = "low") -> None:
        self.pick = pick
        self.calls = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a if self.pick == "low" else b


class BackoffTests(SynchronousTestCase):
    def test_defaults_are_the_original_fixed_delay(self) -> None:
        """Backoff 1, no maximum, no jitter: every retry waits retry_delay."""
        policy = RetryPolicy.for_job(7, JobOptions())
        self.assertEqual(policy, RetryPolicy(retry_delay=7))
        for retry in (1, 2, 10, 1000, 2**32):
            self.assertEqual(policy.wait(retry), 7.0)
            self.assertEqual(policy.wait_ms(retry), 7000)
        self.assertEqual(RetryPolicy(0).wait_ms(5), 0)

    def test_exponential(self) -> None:
        policy = RetryPolicy(retry_delay=2, backoff=3.0)
        self.assertEqual([policy.wait(n) for n in (1, 2, 3, 4)], [2.0, 6.0, 18.0, 54.0])
        self.assertEqual(RetryPolicy(retry_delay=1, backoff=1.5).wait_ms(3), 2250)

    def test_max_delay_caps(self) -> None:
        policy = RetryPolicy(retry_delay=2, backoff=3.0, max_delay=20)
        self.assertEqual([policy.wait(n) for n in (1, 2, 3, 4, 50)], [2.0, 6.0, 18.0, 20.0, 20.0])
        self.assertEqual(RetryPolicy(retry_delay=5, max_delay=0).wait(1), 0.0)
        self.assertEqual(RetryPolicy(retry_delay=5, max_delay=3).wait(1), 3.0)

    def test_huge_retry_numbers(self) -> None:
        """A backoff that overflows is cut to the longest wait, never an error."""
        self.assertEqual(RetryPolicy(retry_delay=1, backoff=10.0).wait(10**6), MAX_WAIT)
        self.assertEqual(RetryPolicy(retry_delay=1, backoff=10.0, max_delay=60).wait(10**6), 60.0)
        self.assertEqual(RetryPolicy(retry_delay=0, backoff=10.0).wait(10**6), 0.0)

    def test_counted_from_one(self) -> None:
        self.assertRaises(ValueError, RetryPolicy(1).wait, 0)

    def test_for_job(self) -> None:
        options = JobOptions(retry_backoff=2.0, retry_max_delay=100, retry_jitter=True)
        self.assertEqual(RetryPolicy.for_job(3, options), RetryPolicy(3, 2.0, 100, True))


class JitterTests(SynchronousTestCase):
    def test_bounds_passed(self) -> None:
        """Jitter draws uniformly from [wait/2, wait], after the cap."""
        rng = RecordingRandom("low")
        policy = RetryPolicy(retry_delay=10, backoff=2.0, max_delay=30, jitter=True)
        self.assertEqual(policy.wait(1, rng=rng), 5.0)
        self.assertEqual(policy.wait(3, rng=rng), 15.0)
        self.assertEqual(rng.calls, [(5.0, 10.0), (15.0, 30.0)])
        self.assertEqual(policy.wait(2, rng=RecordingRandom("high")), 20.0)

    def test_seeded_within_bounds(self) -> None:
        """With a seeded random, every wait is within bounds and they spread."""
        rng = random.Random(1234)
        policy = RetryPolicy(retry_delay=8, jitter=True)
        waits = [policy.wait(1, rng=rng) for _ in range(2000)]
        self.assertTrue(all(4.0 <= w <= 8.0 for w in waits))
        self.assertLess(min(waits), 4.1)
        self.assertGreater(max(waits), 7.9)
        # The same seed gives the same waits.
        again = random.Random(1234)
        self.assertEqual(waits[:10], [policy.wait(1, rng=again) for _ in range(10)])

    def test_no_jitter_without_flag(self) -> None:
        rng = RecordingRandom()
        self.assertEqual(RetryPolicy(retry_delay=8).wait(1, rng=rng), 8.0)
        self.assertEqual(rng.calls, [])

    def test_zero_wait_not_drawn(self) -> None:
        rng = RecordingRandom()
        self.assertEqual(RetryPolicy(retry_delay=0, jitter=True).wait(1, rng=rng), 0.0)
        self.assertEqual(rng.calls, [])


class RetryAfterTests(SynchronousTestCase):
    now = 1_700_000_000.0

    def test_delta_seconds(self) -> None:
        self.assertEqual(parse_retry_after(b"120", self.now), 120.0)
        self.assertEqual(parse_retry_after("0", self.now), 0.0)
        self.assertEqual(parse_retry_after(b" 5 ", self.now), 5.0)
        self.assertEqual(parse_retry_after(b"9" * 40, self.now), MAX_WAIT)
        self.assertEqual(parse_retry_after(b"99999999999", self.now), MAX_WAIT)

    def test_http_dates(self) -> None:
        """All three forms of RFC 9110 (IMF-fixdate, RFC 850, asctime)."""
        at = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
        for text in (b"Sun, 06 Nov 1994 08:49:37 GMT", b"Sunday, 06-Nov-94 08:49:37 GMT", b"Sun Nov  6 08:49:37 1994"):
            self.assertEqual(parse_retry_after(text, at - 30), 30.0)
            self.assertEqual(parse_retry_after(text, at + 30), 0.0)  # in the past: no wait
        later = formatdate(self.now + 90, usegmt=True)
        self.assertEqual(parse_retry_after(later, self.now), 90.0)

    def test_unreadable_ignored(self) -> None:
        for text in (None, b"", b"soon", b"-5", b"1.5", b"Sun, 99 Foo 1994 08:49:37 GMT", "é", b"\xff"):
            self.assertIsNone(parse_retry_after(text, self.now), text)

    def test_raw_header_values(self) -> None:
        self.assertIsNone(retry_after_of(None, self.now))
        self.assertIsNone(retry_after_of([], self.now))
        self.assertEqual(retry_after_of([b"3", b"100"], self.now), 3.0)

    def test_raises_the_wait(self) -> None:
        """Retry-After raises the wait to at least its value, beyond the max delay."""
        policy = RetryPolicy(retry_delay=10, max_delay=20)
        self.assertEqual(policy.wait(1, retry_after=60.0), 60.0)
        self.assertEqual(policy.wait(1, retry_after=5.0), 10.0)
        self.assertEqual(policy.wait_ms(1, retry_after=0.5), 10000)
        jittered = RetryPolicy(retry_delay=10, jitter=True)
        self.assertEqual(jittered.wait(1, retry_after=7.0, rng=RecordingRandom("low")), 7.0)
        self.assertEqual(jittered.wait(1, retry_after=3.0, rng=RecordingRandom("low")), 5.0)
        self.assertEqual(RetryPolicy(0).wait(1, retry_after=1e20), MAX_WAIT)


def job(retry_count: int = 1) -> Job:
    return Job(1, "c", "http://w/", "", "grabbed", 0, 0, 0, 0, retry_count, 0)


class SuccessRuleTests(SynchronousTestCase):
    def judged(self, code: int, body: bytes) -> tuple:
        verdict = judge_2xx(code, body)
        return verdict.outcome, verdict.result.status, verdict.result.message

    def test_is_2xx(self) -> None:
        self.assertEqual([is_2xx(c) for c in (199, 200, 204, 299, 300, 0)], [False, True, True, True, False, False])

    def test_any_2xx_completes(self) -> None:
        for code in (200, 201, 202, 204, 299):
            for body in (b"", b"OK", b"<html>", b"[1]", b"null"):
                self.assertEqual(self.judged(code, body), ("success", "success", ""), (code, body))

    def test_body_status_recorded(self) -> None:
        """The recorded status is the body's JSON status when it has one."""
        self.assertEqual(self.judged(200, b'{"status":"failure","message":"m"}'), ("success", "failure", "m"))
        self.assertEqual(self.judged(200, b'{"status":"ok","message":"hi"}'), ("success", "ok", "hi"))
        self.assertEqual(self.judged(200, b'{"status":"success"}'), ("success", "success", ""))
        # Read as A1 reads it: keys match case-insensitively.
        self.assertEqual(self.judged(200, b'{"STATUS":"permanent-failure"}'), ("success", "permanent-failure", ""))

    def test_other_answers_fail(self) -> None:
        outcome, status, message = self.judged(500, b"oops")
        self.assertEqual((outcome, status), ("failure", "failure"))
        self.assertEqual(message, "Not a 2xx answer: HTTP 500\nOriginal response body:\noops")
        self.assertEqual(self.judged(302, b"")[:2], ("failure", "failure"))
        # A body status is recorded, but only a 2xx completes.
        self.assertEqual(self.judged(503, b'{"status":"success"}')[:2], ("failure", "success"))
        self.assertEqual(self.judged(400, b'{"status":"failure","message":"bad"}'), ("failure", "failure", "bad"))

    def test_permanent_failure_honoured(self) -> None:
        """A non-2xx answer whose body says permanent-failure is never retried (A1)."""
        verdict = judge_2xx(422, b'{"status":"permanent-failure","message":"no"}')
        self.assertEqual(verdict.outcome, "permanent-failure")
        self.assertEqual(verdict.completion(job(retry_count=5)).kind, CompletionKind.FAIL)

    def test_completion(self) -> None:
        ok = judge_2xx(200, b'{"status":"failure"}')
        self.assertEqual(ok.completion(job()).kind, CompletionKind.SUCCESS)
        self.assertEqual(ok.completion(job()).result.status, "failure")
        failed = judge_2xx(500, b"")
        self.assertEqual(failed.completion(job(retry_count=1)).kind, CompletionKind.RETRY)
        self.assertEqual(failed.completion(job(retry_count=0)).kind, CompletionKind.FAIL)

    def test_status_rule_is_classify(self) -> None:
        """Under the default rule the verdict is exactly A1's classification."""
        for code, body in [(200, b'{"status":"success"}'), (500, b'{"status":"success"}'), (200, b""),
                           (200, b'{"status":"nope"}'), (200, b'{"status":"permanent-failure"}')]:
            verdict = judge("status", code, body)
            self.assertEqual(verdict.result, classify(code, body))
            self.assertEqual(
                verdict.completion(job()).kind, completion_for(job(), classify(code, body)).kind
            )

    def test_verdict_of_delivery_errors(self) -> None:
        """A timeout or connection error is a failure under either rule."""
        result = Result("internal-failure", 0, "Request failed: refused")
        self.assertEqual(verdict_of(result), Verdict("failure", result))
        self.assertEqual(verdict_of(result).completion(job(1)).kind, CompletionKind.RETRY)


class DeadlineTests(SynchronousTestCase):
    def test_at_grab(self) -> None:
        self.assertFalse(expired_at_grab(None, 10**15))
        self.assertFalse(expired_at_grab(1000, 999))
        self.assertFalse(expired_at_grab(1000, 1000))  # starting at the deadline is not after it
        self.assertTrue(expired_at_grab(1000, 1001))

    def test_before_retry(self) -> None:
        self.assertFalse(expires_before_retry(None, 10**15))
        self.assertFalse(expires_before_retry(5000, 5000))
        self.assertTrue(expires_before_retry(5000, 5001))

    def test_result(self) -> None:
        result = expired_result(1_700_000_000_123, 0)
        self.assertEqual(result, Result("expired", 0, "Deadline passed at 2023-11-14T22:13:20.123Z; it was never tried"))
        self.assertEqual(expired_result(0, 1).message, "Deadline passed at 1970-01-01T00:00:00.000Z; after 1 attempt")
        self.assertTrue(expired_result(0, 3).message.endswith("after 3 attempts"))
        # Shown in the failure log like any result (A6).
        self.assertEqual(result.to_json()["status"], "expired")
