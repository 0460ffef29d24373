"""
Signed deliveries (B11) end to end: real ``twistd fireworq`` processes, a
real recording worker, and the ``standardwebhooks`` package (the Standard
Webhooks reference library, not written here) verifying what the worker
received -- on the sqlite, in-memory and MySQL drivers, across a key
rotation, for retries, and across two nodes sharing one MySQL database.
"""

from __future__ import annotations

import time

from standardwebhooks import Webhook, WebhookVerificationError
from twisted.internet.defer import inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.mysql_cases import MySQLServerMixin
from tests.support.polling import wait_until


def signatures(delivery) -> list:
    return delivery.headers["webhook-signature"].split(" ")


class SignedDeliveryTests(ServerTestCase):
    """A queue with ``signing: true`` signs every delivery."""

    @inlineCallbacks
    def signed_queue(self, server, queue="signed", category="pay", **settings):
        body = {"signing": True, "polling_interval": 100}
        body.update(settings)
        code, answer = yield server.call("PUT", f"/queue/{queue}", body)
        self.assertEqual(code, 200, answer)
        self.assertIs(answer["signing"], True)
        code, _ = yield server.call("PUT", f"/routing/{category}", {"queue_name": queue})
        self.assertEqual(code, 200)
        code, keys = yield server.call("GET", f"/queue/{queue}/signing-key")
        self.assertEqual(code, 200, keys)
        return keys

    @inlineCallbacks
    def test_delivery_verifies(self):
        server = yield self.server()
        keys = yield self.signed_queue(server)
        self.assertTrue(keys["current"].startswith("whsec_"))
        self.assertEqual((keys["previous"], keys["previous_expires_at"]), (None, None))
        code, job = yield self.push(server, "pay", url=self.worker.url("/success"), payload={"amount": 5})
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        delivery = self.worker.deliveries[0]
        self.assertEqual(delivery.headers["webhook-id"], f"signed:{job['id']}")
        self.assertLessEqual(abs(int(delivery.headers["webhook-timestamp"]) - delivery.received_at), 2)
        self.assertEqual(len(signatures(delivery)), 1)
        hook = Webhook(keys["current"])
        self.assertEqual(hook.verify(delivery.body, delivery.headers), {"amount": 5})
        # A tampered body fails, and so does an old timestamp.
        with self.assertRaises(WebhookVerificationError):
            hook.verify(b'{"amount":500}', delivery.headers)
        old = dict(delivery.headers, **{"webhook-timestamp": str(int(time.time()) - 3600)})
        with self.assertRaises(WebhookVerificationError):
            hook.verify(delivery.body, old)
        # The definition shows the flag; other queues neither show it nor sign.
        code, queues = yield server.call("GET", "/queues")
        flags = {q["name"]: q.get("signing") for q in queues}
        self.assertEqual(flags, {"default": None, "signed": True})
        yield self.push(server, "plain", url=self.worker.url("/success"))
        yield self.delivered(2)
        self.assertFalse([h for h in self.worker.deliveries[1].headers if h.startswith("webhook-")])
        code, error = yield server.call("GET", "/queue/default/signing-key")
        self.assertEqual(code, 404)
        self.assertIn("does not sign", error["message"])
        code, error = yield server.call("POST", "/queue/nowhere/signing-key/rotate")
        self.assertEqual(code, 404)
        self.assertIn("not defined", error["message"])

    @inlineCallbacks
    def test_retries_keep_the_id(self):
        server = yield self.server()
        keys = yield self.signed_queue(server)
        code, job = yield self.push(
            server, "pay", url=self.worker.url("/flaky/2"), payload="x", max_retries=3, retry_delay=1
        )
        self.assertEqual(code, 200, job)
        yield self.delivered(3)
        ids = {d.headers["webhook-id"] for d in self.worker.deliveries}
        self.assertEqual(ids, {f"signed:{job['id']}"})
        self.assertEqual([d.headers["x-fireworq-attempt"] for d in self.worker.deliveries], ["1", "2", "3"])
        stamps = [int(d.headers["webhook-timestamp"]) for d in self.worker.deliveries]
        self.assertEqual(stamps, sorted(stamps))
        self.assertGreater(stamps[-1], stamps[0])  # signed at each send, not once
        hook = Webhook(keys["current"])
        for delivery in self.worker.deliveries:
            hook.verify(delivery.body, delivery.headers, json_parse=False)

    @inlineCallbacks
    def test_rotation_overlap(self):
        server = yield self.server(signing_overlap=3)
        old = yield self.signed_queue(server)
        code, rotated = yield server.call("POST", "/queue/signed/signing-key/rotate")
        self.assertEqual(code, 200, rotated)
        self.assertEqual(rotated["previous"], old["current"])
        self.assertNotEqual(rotated["current"], old["current"])
        self.assertIsNotNone(rotated["previous_expires_at"])
        code, shown = yield server.call("GET", "/queue/signed/signing-key")
        self.assertEqual(shown, rotated)
        yield self.push(server, "pay", url=self.worker.url("/success"), payload={"n": 1})
        yield self.delivered(1)
        during = self.worker.deliveries[0]
        self.assertEqual(len(signatures(during)), 2)
        # Workers on either secret accept it.
        Webhook(old["current"]).verify(during.body, during.headers)
        Webhook(rotated["current"]).verify(during.body, during.headers)

        # Once the overlap is over only the new secret signs.
        def expired():
            d = server.call("GET", "/queue/signed/signing-key")
            d.addCallback(lambda r: r[1]["previous"] is None and r[1])
            return d

        after_keys = yield wait_until(expired, 15)
        self.assertEqual(after_keys["current"], rotated["current"])
        yield self.push(server, "pay", url=self.worker.url("/success"), payload={"n": 2})
        yield self.delivered(2)
        after = self.worker.deliveries[1]
        self.assertEqual(len(signatures(after)), 1)
        Webhook(rotated["current"]).verify(after.body, after.headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(old["current"]).verify(after.body, after.headers)

    @inlineCallbacks
    def test_turned_off_and_on_keeps_secret_and_restart(self):
        server = yield self.server()
        keys = yield self.signed_queue(server)
        # A PUT without "signing" leaves it on; the other answers of the definition show it.
        code, answer = yield server.call("PUT", "/queue/signed", {"max_workers": 3})
        self.assertEqual((code, answer.get("signing")), (200, True))
        code, answer = yield server.call("POST", "/queue/signed/pause")
        self.assertEqual((code, answer.get("signing"), answer.get("paused")), (200, True, True))
        code, answer = yield server.call("POST", "/queue/signed/resume")
        self.assertEqual((code, answer.get("signing")), (200, True))
        code, answer = yield server.call("PUT", "/queue/signed", {"signing": False})
        self.assertEqual(code, 200)
        self.assertNotIn("signing", answer)
        code, _ = yield server.call("GET", "/queue/signed/signing-key")
        self.assertEqual(code, 404)
        yield self.push(server, "pay", url=self.worker.url("/success"))
        yield self.delivered(1)
        self.assertNotIn("webhook-signature", self.worker.deliveries[0].headers)
        code, answer = yield server.call("PUT", "/queue/signed", {"signing": True})
        code, again = yield server.call("GET", "/queue/signed/signing-key")
        self.assertEqual(again["current"], keys["current"])
        code, error = yield server.call("PUT", "/queue/signed", {"signing": "yes"})
        self.assertEqual(code, 400)
        self.assertIn("signing", error["message"])
        if self.driver == "in-memory":
            return
        # The secret outlives a restart (stored), and deliveries after it are signed.
        yield server.stop()
        server = yield self.server()
        code, after = yield server.call("GET", "/queue/signed/signing-key")
        self.assertEqual((code, after["current"]), (200, keys["current"]))
        yield self.push(server, "pay", url=self.worker.url("/success"), payload={"n": 3})
        yield self.delivered(2)
        Webhook(keys["current"]).verify(self.worker.deliveries[1].body, self.worker.deliveries[1].headers)

    @inlineCallbacks
    def test_deleted_queue_forgets_its_secret(self):
        server = yield self.server()
        keys = yield self.signed_queue(server)
        code, _ = yield server.call("DELETE", "/queue/signed")
        self.assertEqual(code, 200)
        code, answer = yield server.call("PUT", "/queue/signed", {"signing": True})
        self.assertEqual(code, 200)
        code, fresh = yield server.call("GET", "/queue/signed/signing-key")
        self.assertNotEqual(fresh["current"], keys["current"])


class InMemorySignedDeliveryTests(SignedDeliveryTests):
    """L{SignedDeliveryTests} on the in-memory driver."""

    driver = "in-memory"


class MySQLSignedDeliveryTests(MySQLServerMixin, SignedDeliveryTests):
    """L{SignedDeliveryTests} on MySQL; and two nodes sharing the keys."""

    database_name = "signing"

    @inlineCallbacks
    def test_nodes_share_keys(self):
        """A rotation on one node is followed by the other within the refresh interval."""
        first = yield self.server(config_refresh_interval=200)
        second = yield self.server(config_refresh_interval=200)
        keys = yield self.signed_queue(first)
        code, shown = yield second.call("GET", "/queue/signed/signing-key")
        self.assertEqual(shown, keys)
        code, rotated = yield second.call("POST", "/queue/signed/signing-key/rotate")
        self.assertEqual(code, 200)
        # Whichever node holds the queue, it signs with the new secret once
        # the refresh interval has passed.
        code, _ = yield first.call("GET", "/queue/signed/node")
        hook = Webhook(rotated["current"])
        sent = 0

        def signed_with_new():
            nonlocal sent
            for delivery in self.worker.deliveries:
                try:
                    hook.verify(delivery.body, delivery.headers, json_parse=False)
                    return True
                except WebhookVerificationError:
                    pass
            sent += 1
            d = self.push(first, "pay", url=self.worker.url("/success"), payload={"n": sent})
            d.addCallback(lambda _: False)
            return d

        yield wait_until(signed_with_new, 15, 0.3)
        # Every delivery, before or after, verifies with one of the two secrets (overlap).
        old_hook = Webhook(keys["current"])
        for delivery in self.worker.deliveries:
            old_hook.verify(delivery.body, delivery.headers, json_parse=False)
