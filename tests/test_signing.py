"""
Signed deliveries (B11), unit level: secrets, the signer checked by the
Standard Webhooks reference verifier (the ``standardwebhooks`` package,
written by others), the key stores of the memory and sqlite drivers, the
node's key cache, and the deliverer's headers (over treq's StubTreq).
The real-process tests are in tests/test_signing_e2e.py.
"""

from __future__ import annotations

import base64
import json
import os
import time

from standardwebhooks import Webhook, WebhookVerificationError
from treq.testing import StubTreq
from twisted.internet import task
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from fireworq.dispatch.delivery import HTTPDeliverer
from fireworq.model import Job
from fireworq.readiness import NotReady
from fireworq.signing.keys import SigningKeys, decode_secret, new_secret
from fireworq.signing.memory import MemorySigningKeys
from fireworq.signing.service import SigningService, open_signing_keys
from fireworq.signing.signer import Signer
from fireworq.signing.sqlite import SqliteSigningKeys
from fireworq.store.memory import MemoryRepository
from fireworq.store.sqlite import open_sqlite


def _headers(raw: dict) -> dict:
    """Byte headers of the deliverer as a verifier receives them (text)."""
    return {k.decode(): v[0].decode() for k, v in raw.items()}


class SecretTests(TestCase):
    """Secrets are whsec_ + base64 of 32 random bytes."""

    def test_new_secret(self):
        secret = new_secret()
        self.assertTrue(secret.startswith("whsec_"))
        self.assertEqual(len(base64.b64decode(secret[6:])), 32)
        self.assertNotEqual(secret, new_secret())
        self.assertEqual(decode_secret(secret), base64.b64decode(secret[6:]))

    def test_bad_secrets(self):
        for bad in ("", "whsec_", "abc", "whsec_!!!"):
            self.assertRaises(ValueError, decode_secret, bad)

    def test_repr_hides_secrets(self):
        keys = SigningKeys("q", new_secret(), new_secret(), 1)
        self.assertNotIn("whsec_", repr(keys))

    def test_rotation(self):
        keys = SigningKeys("q", new_secret())
        rotated = keys.rotated(now_ms=1000, overlap_ms=500)
        self.assertEqual(rotated.previous, keys.current)
        self.assertNotEqual(rotated.current, keys.current)
        self.assertEqual(rotated.previous_expires_at, 1500)
        self.assertTrue(rotated.previous_active(1499))
        self.assertFalse(rotated.previous_active(1500))
        self.assertEqual(rotated.shown(1500).previous, None)
        self.assertEqual(rotated.shown(1499).previous, keys.current)
        # No overlap: the old secret is dropped at once.
        self.assertIsNone(keys.rotated(1000, 0).previous)


class SignerTests(TestCase):
    """The signer's headers verify with the standardwebhooks package."""

    def test_verifies(self):
        keys = SigningKeys("orders", new_secret())
        body = b'{"id":1,"text":"h\xc3\xa9"}'
        now = time.time()
        headers = _headers(Signer(keys).headers(42, body, now))
        self.assertEqual(headers["webhook-id"], "orders:42")
        self.assertEqual(headers["webhook-timestamp"], str(int(now)))
        self.assertTrue(headers["webhook-signature"].startswith("v1,"))
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 1)
        Webhook(keys.current).verify(body, headers, json_parse=False)

    def test_tampered_body_or_old_timestamp_fails(self):
        keys = SigningKeys("orders", new_secret())
        body = b'{"amount":100}'
        headers = _headers(Signer(keys).headers(7, body, time.time()))
        hook = Webhook(keys.current)
        with self.assertRaises(WebhookVerificationError):
            hook.verify(b'{"amount":999}', headers, json_parse=False)
        old = _headers(Signer(keys).headers(7, body, time.time() - 3600))
        with self.assertRaises(WebhookVerificationError):
            hook.verify(body, old, json_parse=False)
        with self.assertRaises(WebhookVerificationError):
            Webhook(new_secret()).verify(body, headers, json_parse=False)

    def test_overlap_signs_twice(self):
        keys = SigningKeys("q", new_secret()).rotated(int(time.time() * 1000), 60_000)
        body = b"payload"
        headers = _headers(Signer(keys).headers(1, body, time.time()))
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 2)
        Webhook(keys.current).verify(body, headers, json_parse=False)
        Webhook(keys.previous).verify(body, headers, json_parse=False)

    def test_expired_previous_does_not_sign(self):
        now = time.time()
        keys = SigningKeys("q", new_secret()).rotated(int(now * 1000) - 2000, 1000)
        headers = _headers(Signer(keys).headers(1, b"x", now))
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 1)
        with self.assertRaises(WebhookVerificationError):
            Webhook(keys.previous).verify(b"x", headers, json_parse=False)

    def test_unicode_queue_name_and_empty_body(self):
        keys = SigningKeys("キュー", new_secret())
        headers = Signer(keys).headers(3, b"", time.time())
        self.assertEqual(headers[b"webhook-id"], ["キュー:3".encode()])
        text = {k.decode(): v[0].decode("utf-8") for k, v in headers.items()}
        Webhook(keys.current).verify(b"", text, json_parse=False)


class KeyStoreContract:
    """What every L{ISigningKeyStore} does."""

    def make_store(self):
        raise NotImplementedError

    @inlineCallbacks
    def setUp(self):
        self.store = yield self.make_store()

    @inlineCallbacks
    def test_enable_keeps_secret(self):
        self.assertIsNone((yield self.store.find("q")))
        self.assertIsNone((yield self.store.enable("q", False)))
        keys = yield self.store.enable("q", True)
        self.assertTrue(keys.enabled)
        again = yield self.store.enable("q", True)
        self.assertEqual(again.current, keys.current)
        off = yield self.store.enable("q", False)
        self.assertFalse(off.enabled)
        self.assertEqual([], (yield self.store.load_all()))
        on = yield self.store.enable("q", True)
        self.assertEqual(on.current, keys.current)
        self.assertEqual(["q"], [k.queue_name for k in (yield self.store.load_all())])

    @inlineCallbacks
    def test_rotate(self):
        self.assertIsNone((yield self.store.rotate("q", 1000, 10)))
        keys = yield self.store.enable("q", True)
        rotated = yield self.store.rotate("q", 1000, 10)
        self.assertEqual(rotated.previous, keys.current)
        self.assertEqual(rotated.previous_expires_at, 1010)
        found = yield self.store.find("q")
        self.assertEqual(found, rotated)
        yield self.store.enable("q", False)
        self.assertIsNone((yield self.store.rotate("q", 2000, 10)))

    @inlineCallbacks
    def test_forget(self):
        yield self.store.enable("q", True)
        yield self.store.forget("q")
        self.assertIsNone((yield self.store.find("q")))
        fresh = yield self.store.enable("q", True)
        self.assertIsNone(fresh.previous)


class MemoryKeyStoreTests(KeyStoreContract, TestCase):
    def make_store(self):
        return MemorySigningKeys()


class SqliteKeyStoreTests(KeyStoreContract, TestCase):
    @inlineCallbacks
    def make_store(self):
        jobs, repository = open_sqlite(os.path.join(self.mktemp() + ".sqlite3"))
        yield jobs.start()
        self.addCleanup(jobs.stop)
        store = open_signing_keys(repository)
        self.assertIsInstance(store, SqliteSigningKeys)
        yield store.start()
        self.addCleanup(store.stop)
        yield store.prepare()
        yield store.prepare()  # repeatable
        return store


class MySQLKeyStoreTests(KeyStoreContract, TestCase):
    """The MySQL key store (the throwaway MariaDB of tests/support/mariadb.py)."""

    @inlineCallbacks
    def make_store(self):
        from twisted.internet import reactor

        from fireworq.signing.mysql import MySQLSigningKeys
        from fireworq.server.stores import open_mysql
        from tests.support import mariadb

        database = mariadb.database_for(self, "signing")
        jobs, repository, leases = open_mysql(database.dsn, None, reactor)
        self.addCleanup(leases.stop)
        self.addCleanup(repository.stop)
        yield repository.start()
        store = open_signing_keys(repository)
        self.assertIsInstance(store, MySQLSigningKeys)
        yield store.start()
        self.addCleanup(store.stop)
        yield store.prepare()
        yield store.prepare()  # repeatable
        return store


class ServiceTests(TestCase):
    """The node's cache of signers."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.store = MemorySigningKeys()
        self.service = SigningService(
            self.store, self.clock, refresh_interval=1.0, overlap=60,
            now_ms=lambda: int(self.clock.seconds() * 1000),
        )

    def test_memory_by_default(self):
        self.assertIsInstance(open_signing_keys(MemoryRepository()), MemorySigningKeys)

    @inlineCallbacks
    def test_loads_and_follows_other_nodes(self):
        self.assertFalse(self.service.loaded)
        waiting = self.service.when_loaded()
        yield self.store.enable("a", True)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.assertTrue(self.service.loaded)
        self.assertTrue(waiting.called)
        signer = self.service.signer("a")
        self.assertIsNotNone(signer)
        self.assertIsNone(self.service.signer("b"))
        # Changed by another node: seen at the next refresh, not before.
        yield self.store.enable("b", True)
        yield self.store.rotate("a", 0, 0)
        self.assertIsNone(self.service.signer("b"))
        self.clock.advance(1.0)
        self.assertIsNotNone(self.service.signer("b"))
        self.assertIsNot(self.service.signer("a"), signer)
        # Unchanged keys keep their signer (decoded once).
        b = self.service.signer("b")
        self.clock.advance(1.0)
        self.assertIs(self.service.signer("b"), b)

    @inlineCallbacks
    def test_changes_apply_at_once(self):
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.assertTrue((yield self.service.set_signing("q", True)))
        self.assertIsNotNone(self.service.signer("q"))
        before = yield self.service.keys("q")
        after = yield self.service.rotate("q")
        self.assertEqual(after.previous, before.current)
        self.assertEqual(after.previous_expires_at, int(self.clock.seconds() * 1000) + 60_000)
        self.assertEqual(self.service.signer("q").keys, after)
        self.assertEqual({"q"}, (yield self.service.signed_queues()))
        self.assertFalse((yield self.service.set_signing("q", False)))
        self.assertIsNone(self.service.signer("q"))
        self.assertIsNone((yield self.service.keys("q")))
        self.assertIsNone((yield self.service.rotate("q")))

    @inlineCallbacks
    def test_stop_before_load(self):
        """Waiting deliveries fail with NotReady when the service stops before any load."""
        waiting = self.service.when_loaded()
        self.service.startService()
        yield self.service.stopService()
        # Loaded at start (memory answers at once), so it fired.
        self.assertTrue(waiting.called)
        failing = SigningService(_NeverLoads(), self.clock, 1.0, 60)
        failing.startService()
        waiting = failing.when_loaded()
        yield failing.stopService()
        self.failureResultOf(waiting, NotReady)


class _NeverLoads(MemorySigningKeys):
    def load_all(self):
        from twisted.internet.defer import fail

        from fireworq.store.interface import StoreUnavailable

        return fail(StoreUnavailable("down"))


class _Recorder(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def render_POST(self, request):
        self.requests.append(
            ({k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
             request.content.read())
        )
        return json.dumps({"status": "success"}).encode()


class DelivererTests(TestCase):
    """The deliverer adds the headers of signed queues only."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(time.time())
        self.worker = _Recorder()
        self.store = MemorySigningKeys()
        self.service = SigningService(self.store, self.clock, 1.0, 60)
        self.deliverer = HTTPDeliverer(StubTreq(self.worker), "Fireworq/test", self.clock, signing=self.service)

    def job(self, payload='{"n":1}'):
        return Job(
            id=5, category="c", url="http://worker.test/x", payload=payload, status="grabbed",
            created_at=0, next_try=0, timeout=0, fail_count=0, retry_count=0, retry_delay=0,
        )

    @inlineCallbacks
    def test_signed_and_unsigned(self):
        yield self.store.enable("signed", True)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.deliverer.deliver("signed", self.job())
        yield self.deliverer.deliver("plain", self.job())
        (signed, body), (plain, _) = self.worker.requests
        self.assertEqual(signed["webhook-id"], "signed:5")
        secret = (yield self.store.find("signed")).current
        self.assertEqual(Webhook(secret).verify(body, signed), {"n": 1})
        self.assertFalse([h for h in plain if h.startswith("webhook-")])

    @inlineCallbacks
    def test_waits_for_keys_at_start(self):
        """A delivery made while the keys load waits for them (never unsigned)."""
        yield self.store.enable("signed", True)
        slow = _SlowLoads(self.store)
        service = SigningService(slow, self.clock, 1.0, 60)
        self.deliverer.signing = service
        service.startService()
        self.addCleanup(service.stopService)
        self.assertTrue(service.waiting)
        d = self.deliverer.deliver("signed", self.job())
        self.assertEqual(self.worker.requests, [])
        slow.answer()
        result = yield d
        self.assertEqual(result.status, "success")
        self.assertIn("webhook-signature", self.worker.requests[0][0])

    @inlineCallbacks
    def test_service_not_started_signs_nothing(self):
        """A deliverer whose signing service never started (a dispatcher on its own) sends at once."""
        yield self.store.enable("signed", True)
        self.assertFalse(self.service.waiting)
        result = yield self.deliverer.deliver("signed", self.job())
        self.assertEqual(result.status, "success")
        self.assertNotIn("webhook-signature", self.worker.requests[0][0])


class _SlowLoads(MemorySigningKeys):
    """The keys of ``store``, answered when the test says."""

    def __init__(self, store):
        super().__init__()
        self._keys = store._keys
        self.pending = []

    def load_all(self):
        from twisted.internet.defer import Deferred

        d = Deferred()
        self.pending.append(d)
        return d

    def answer(self):
        pending, self.pending = self.pending, []
        for d in pending:
            d.callback([k for k in self._keys.values() if k.enabled])
