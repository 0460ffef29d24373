"""
The helpers for workers (fireworq.client.worker): verifying signed
deliveries (B11, Standard Webhooks) against signatures made by the
``standardwebhooks`` package, and reading the X-Fireworq-* headers of a
real delivery.
"""

from __future__ import annotations

import base64
import datetime
import os
from typing import Any

from standardwebhooks.webhooks import Webhook
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from fireworq.client import SignatureError, WebhookVerifier, parse_delivery
from fireworq.client.worker import failure, sign, success
from tests.support.cases import ServerTestCase

NOW = 1_800_000_000


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signed(secret: str, body: bytes, msg_id: str = "q:17", at: int = NOW) -> dict:
    """Headers of a delivery signed by the standardwebhooks package."""
    signature = Webhook(secret).sign(msg_id, datetime.datetime.fromtimestamp(at, datetime.timezone.utc), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


class VerifierTests(SynchronousTestCase):
    """WebhookVerifier accepts what standardwebhooks signs, and nothing else."""

    def setUp(self) -> None:
        self.secret = new_secret()
        self.body = b'{"user":42,"text":"\xc3\xa9t\xc3\xa9"}'

    def test_accepts_a_signature_of_standardwebhooks(self) -> None:
        WebhookVerifier(self.secret).verify(self.body, signed(self.secret, self.body), now=NOW)

    def test_our_signature_is_the_same(self) -> None:
        headers = signed(self.secret, self.body)
        self.assertEqual(sign(self.secret, "q:17", NOW, self.body), headers["webhook-signature"])

    def test_header_names_are_case_insensitive_and_values_may_be_bytes(self) -> None:
        headers = signed(self.secret, self.body)
        raw = [(k.title().encode(), [v.encode()]) for k, v in headers.items()]
        WebhookVerifier(self.secret).verify(self.body, raw, now=NOW)

    def test_a_changed_body_fails(self) -> None:
        headers = signed(self.secret, self.body)
        error = self.assertRaises(SignatureError, WebhookVerifier(self.secret).verify, self.body + b" ", headers, now=NOW)
        self.assertIn("no signature matches", str(error))

    def test_another_secret_fails(self) -> None:
        headers = signed(self.secret, self.body)
        self.assertRaises(SignatureError, WebhookVerifier(new_secret()).verify, self.body, headers, now=NOW)

    def test_a_changed_id_or_timestamp_fails(self) -> None:
        headers = signed(self.secret, self.body)
        verifier = WebhookVerifier(self.secret)
        self.assertRaises(SignatureError, verifier.verify, self.body, {**headers, "webhook-id": "q:18"}, now=NOW)
        self.assertRaises(SignatureError, verifier.verify, self.body,
                          {**headers, "webhook-timestamp": str(NOW + 1)}, now=NOW)

    def test_tolerance_window(self) -> None:
        headers = signed(self.secret, self.body)
        verifier = WebhookVerifier(self.secret, tolerance=300)
        verifier.verify(self.body, headers, now=NOW + 300)
        verifier.verify(self.body, headers, now=NOW - 300)
        error = self.assertRaises(SignatureError, verifier.verify, self.body, headers, now=NOW + 301)
        self.assertIn("old", str(error))
        error = self.assertRaises(SignatureError, verifier.verify, self.body, headers, now=NOW - 301)
        self.assertIn("future", str(error))

    def test_several_signatures_during_a_rotation(self) -> None:
        """The server sends both signatures while a rotation overlaps; a receiver with either secret verifies."""
        old, new = self.secret, new_secret()
        both = signed(new, self.body)["webhook-signature"] + " " + signed(old, self.body)["webhook-signature"]
        headers = {**signed(old, self.body), "webhook-signature": both}
        WebhookVerifier(old).verify(self.body, headers, now=NOW)
        WebhookVerifier(new).verify(self.body, headers, now=NOW)
        # A receiver that knows both secrets verifies a delivery signed by either alone.
        WebhookVerifier([new, old]).verify(self.body, signed(old, self.body), now=NOW)
        WebhookVerifier([new, old]).verify(self.body, signed(new, self.body), now=NOW)

    def test_unknown_versions_and_garbage_are_skipped(self) -> None:
        good = signed(self.secret, self.body)
        headers = {**good, "webhook-signature": "v2,abc v1,!!notbase64 " + good["webhook-signature"]}
        WebhookVerifier(self.secret).verify(self.body, headers, now=NOW)
        self.assertRaises(SignatureError, WebhookVerifier(self.secret).verify, self.body,
                          {**good, "webhook-signature": "v1a," + good["webhook-signature"][3:]}, now=NOW)

    def test_missing_headers_are_named(self) -> None:
        error = self.assertRaises(SignatureError, WebhookVerifier(self.secret).verify, self.body,
                                  {"webhook-id": "x"}, now=NOW)
        self.assertIn("webhook-timestamp", str(error))
        self.assertIn("webhook-signature", str(error))
        error = self.assertRaises(SignatureError, WebhookVerifier(self.secret).verify, self.body,
                                  {**signed(self.secret, self.body), "webhook-timestamp": "soon"}, now=NOW)
        self.assertIn("whole number", str(error))

    def test_bad_secrets_are_refused(self) -> None:
        self.assertRaises(ValueError, WebhookVerifier, "whsec_***")
        self.assertRaises(ValueError, WebhookVerifier, [])
        self.assertRaises(ValueError, WebhookVerifier, "whsec_")

    def test_str_body_is_utf8(self) -> None:
        WebhookVerifier(self.secret).verify(self.body.decode("utf-8"), signed(self.secret, self.body), now=NOW)

    def test_answers(self) -> None:
        self.assertEqual(success(), {"status": "success"})
        self.assertEqual(failure("later"), {"status": "failure", "message": "later"})
        self.assertEqual(failure(permanent=True), {"status": "permanent-failure"})


class DeliveryHeaderTests(ServerTestCase):
    """parse_delivery reads the headers of a real delivery (B3)."""

    @inlineCallbacks
    def test_parse_real_delivery_headers(self) -> Any:
        server = yield self.server()
        code, job = yield self.push(server, "mail/welcome", url=self.worker.url("/flaky/1"), max_retries=1)
        self.assertEqual(code, 200, job)
        yield self.delivered(2)
        first, second = (parse_delivery(d.headers) for d in self.worker.deliveries[:2])
        self.assertEqual((first.job_id, first.queue, first.category, first.attempt),
                         (job["id"], "default", "mail/welcome", 1))
        self.assertEqual(second.attempt, 2)
        self.assertEqual(first.key, second.key)
        self.assertEqual(first.key, f"default:{job['id']}")
        self.assertIsNone(first.webhook_id)

    def test_missing_headers_read_as_none(self) -> None:
        delivery = parse_delivery({"X-Fireworq-Attempt": "x"})
        self.assertEqual((delivery.job_id, delivery.attempt, delivery.key), (None, None, None))
