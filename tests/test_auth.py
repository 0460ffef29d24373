"""
Unit tests of authentication and limits: settings, token parsing and
hashing, the token bucket (with a task.Clock), the registry (refresh and
revocation), the token stores of memory and sqlite, and the gate's
answers (headers, metrics, logs without the token).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, List

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq.auth.limits import Limiter, TokenBucket
from fireworq.auth.registry import TokenRegistry
from fireworq.auth.storage import MemoryTokenStore, SqliteTokenStore
from fireworq.auth.tokens import InvalidToken, Token, hash_secret, parse_token_request
from fireworq.config import ConfigError, load
from fireworq.readiness import NotReady
from tests.test_auth_routes import ADMIN_TOKEN, AuthAPITestCase
from tests.test_web import APITestCase


class SettingsTests(SynchronousTestCase):
    """The auth settings, and the admin token never shown."""

    def test_off_by_default(self) -> None:
        config = load({}, environ={})
        self.assertFalse(config.auth)
        self.assertEqual(config.settings()["auth"], "off")

    def test_token_from_environment_is_masked(self) -> None:
        config = load({"auth": "on"}, environ={"FIREWORQ_ADMIN_TOKEN": ADMIN_TOKEN})
        self.assertTrue(config.auth)
        self.assertEqual(config.admin_token, ADMIN_TOKEN)
        self.assertEqual(config.settings()["admin_token"], "***")
        self.assertNotIn(ADMIN_TOKEN, repr(config))
        self.assertNotIn(ADMIN_TOKEN, repr(config.settings()))

    def test_token_from_file(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(ADMIN_TOKEN + "\nignored\n")
        config = load({"auth": "on", "admin_token_file": path}, environ={})
        self.assertEqual(config.admin_token, ADMIN_TOKEN)
        self.assertEqual(config.settings()["admin_token_file"], path)
        self.assertNotIn(ADMIN_TOKEN, repr(config.settings()))

    def test_short_token_refused_without_quoting_it(self) -> None:
        e = self.assertRaises(ConfigError, load, {"admin_token": "short-secret"}, {})
        self.assertNotIn("short-secret", str(e))
        self.assertIn("admin_token", str(e))

    def test_both_sources_refused(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(ADMIN_TOKEN)
        self.assertRaises(ConfigError, load, {"admin_token": ADMIN_TOKEN, "admin_token_file": path}, {})

    def test_missing_file(self) -> None:
        e = self.assertRaises(ConfigError, load, {"admin_token_file": "/nonexistent/token"}, {})
        self.assertIn("admin_token_file", str(e))


class TokenRequestTests(SynchronousTestCase):
    """POST /tokens bodies."""

    def test_valid(self) -> None:
        token, secret = parse_token_request(
            {"name": "ci", "scopes": ["push", "read"], "queues": "ci-*", "rate": 2.5, "burst": 5}, 1000
        )
        self.assertTrue(secret.startswith("fwq_"))
        self.assertGreaterEqual(len(secret), 40)
        self.assertEqual(token.secret_hash, hash_secret(secret))
        self.assertEqual(
            token.to_json(),
            {"id": token.id, "name": "ci", "scopes": ["push", "read"], "queues": "ci-*", "rate": 2.5, "burst": 5,
             "created_at": 1000},
        )
        self.assertNotIn(secret, repr(token))
        self.assertNotIn(token.secret_hash, repr(token))

    def test_burst_defaults_to_rate(self) -> None:
        token, _ = parse_token_request({"name": "x", "scopes": ["read"], "rate": 2.5}, 0)
        self.assertEqual(token.burst, 3)

    def test_refused(self) -> None:
        for body, field in [
            ({"scopes": ["read"]}, "name"),
            ({"name": "x"}, "scopes"),
            ({"name": "x", "scopes": []}, "scopes"),
            ({"name": "x", "scopes": ["write"]}, "scopes"),
            ({"name": "x", "scopes": ["read"], "rate": 0}, "rate"),
            ({"name": "x", "scopes": ["read"], "rate": "1"}, "rate"),
            ({"name": "x", "scopes": ["read"], "rate": 1, "burst": 0}, "burst"),
            ({"name": "x", "scopes": ["read"], "burst": 3}, "burst"),
            ({"name": "x", "scopes": ["read"], "queues": 3}, "queues"),
            ({"name": "a\nb", "scopes": ["read"]}, "name"),
        ]:
            e = self.assertRaises(InvalidToken, parse_token_request, body, 0)
            self.assertIn(field, str(e), body)

    def test_globs(self) -> None:
        token = Token("i", "n", frozenset(["read"]), "h", queues="team-a-*")
        self.assertTrue(token.sees("team-a-mail"))
        self.assertFalse(token.sees("team-b-mail"))
        self.assertFalse(token.sees("TEAM-A-mail"))


class BucketTests(SynchronousTestCase):
    """The token bucket, on a task.Clock."""

    def test_rate_and_burst(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=2.0, burst=3, now=clock.seconds)
        taken = [bucket.take() for _ in range(4)]
        self.assertEqual([d.allowed for d in taken], [True, True, True, False])
        self.assertEqual([d.remaining for d in taken], [2, 1, 0, 0])
        self.assertEqual(taken[3].retry_after, 1)
        self.assertEqual(taken[2].reset, 2)  # 3 permits at 2/s
        clock.advance(0.5)  # one permit back
        self.assertTrue(bucket.take().allowed)
        self.assertFalse(bucket.take().allowed)
        clock.advance(10)  # never more than the burst
        self.assertEqual([bucket.take().allowed for _ in range(4)], [True, True, True, False])

    def test_headers(self) -> None:
        clock = Clock()
        limiter = Limiter(clock.seconds)
        self.assertEqual(
            limiter.take("t", 1.0, 1).headers(),
            [(b"RateLimit-Limit", b"1"), (b"RateLimit-Remaining", b"0"), (b"RateLimit-Reset", b"1")],
        )
        self.assertIn((b"Retry-After", b"1"), limiter.take("t", 1.0, 1).headers())
        limiter.forget(["t"])
        self.assertTrue(limiter.take("t", 1.0, 1).allowed)


class RegistryTests(SynchronousTestCase):
    """Loading, refreshing and revoking tokens."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryTokenStore()
        self.gone: List[str] = []
        self.registry = TokenRegistry(self.store, ADMIN_TOKEN, self.clock, 1.0, on_change=self.gone.extend)

    def test_not_ready_until_loaded(self) -> None:
        self.assertEqual(self.registry.authenticate(ADMIN_TOKEN).id, "bootstrap")
        self.assertRaises(NotReady, self.registry.authenticate, "fwq_other")
        self.registry.startService()
        self.assertIsNone(self.registry.authenticate("fwq_other"))

    def test_other_nodes_changes_seen_within_the_interval(self) -> None:
        self.registry.startService()
        token, secret = parse_token_request({"name": "x", "scopes": ["read"]}, 0)
        self.successResultOf(self.store.add(token))  # through another node
        self.assertIsNone(self.registry.authenticate(secret))
        self.clock.advance(1.0)
        self.assertEqual(self.registry.authenticate(secret), token)
        self.successResultOf(self.store.remove(token.id))  # revoked elsewhere
        self.assertEqual(self.registry.authenticate(secret), token)
        self.clock.advance(1.0)
        self.assertIsNone(self.registry.authenticate(secret))
        self.assertEqual(self.gone, [token.id])

    def test_own_changes_apply_at_once(self) -> None:
        self.registry.startService()
        token, secret = parse_token_request({"name": "x", "scopes": ["read"]}, 0)
        self.successResultOf(self.registry.create(token))
        self.assertEqual(self.registry.authenticate(secret), token)
        self.assertEqual(self.successResultOf(self.registry.revoke(token.id)), token)
        self.assertIsNone(self.registry.authenticate(secret))


class SqliteStoreTests(TestCase):
    """The sqlite token table."""

    def test_round_trip(self) -> Any:
        from fireworq.store.sqlite.database import SqliteDatabase

        path = os.path.join(tempfile.mkdtemp(), "t.sqlite3")
        db = SqliteDatabase(path)
        store = SqliteTokenStore(db)

        d = db.start()
        token, _ = parse_token_request({"name": "ä", "scopes": ["read", "push"], "queues": "a*", "rate": 1}, 5)
        d.addCallback(lambda _: store.prepare())
        d.addCallback(lambda _: store.add(token))
        d.addCallback(lambda _: store.all())
        d.addCallback(lambda tokens: self.assertEqual(tokens, [token]))
        d.addCallback(lambda _: store.remove(token.id))
        d.addCallback(lambda removed: self.assertEqual(removed, token))
        d.addCallback(lambda _: store.remove(token.id))
        d.addCallback(self.assertIsNone)
        d.addBoth(lambda result: db.stop().addCallback(lambda _: result))
        return d


class GateTests(AuthAPITestCase):
    """The gate's answers beyond the route table."""

    def test_failures_counted_and_logged_without_the_token(self) -> None:
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        secret = "fwq_this-is-not-a-known-token"
        self.assertEqual(self.request("GET", "/queues", token=secret)[0], 401)
        self.assertEqual(self.request("GET", "/queues")[0], 401)
        code, _, headers = self.request("GET", "/queues", token=None)
        self.assertEqual(headers.getRawHeaders(b"www-authenticate"), [b'Bearer realm="fireworq"'])
        _, read = self.make_token(["read"])
        self.assertEqual(self.request("PUT", "/queue/x", {}, read)[0], 403)
        text = self.metrics.render()[0].decode()
        self.assertIn('fireworq_auth_failures_total{reason="unknown"} 1.0', text)
        self.assertIn('fireworq_auth_failures_total{reason="missing"} 2.0', text)
        self.assertIn('fireworq_auth_failures_total{reason="forbidden"} 1.0', text)
        from twisted.logger import formatEvent

        logged = repr(events) + " ".join(formatEvent(e) for e in events)
        self.assertIn("API request refused (unknown): GET /queues from", logged)
        self.assertNotIn(secret, logged)
        self.assertNotIn(ADMIN_TOKEN, logged)

    def test_rate_limit_headers_on_success_and_429(self) -> None:
        _, limited = self.make_token(["read"], rate=1, burst=2)
        first = self.request("GET", "/queues", token=limited)
        self.assertEqual(first[0], 200)
        self.assertEqual(first[2].getRawHeaders(b"ratelimit-limit"), [b"2"])
        self.assertEqual(first[2].getRawHeaders(b"ratelimit-remaining"), [b"1"])
        self.assertEqual(first[2].getRawHeaders(b"ratelimit-reset"), [b"1"])
        self.assertEqual(self.request("GET", "/queues", token=limited)[0], 200)
        code, body, headers = self.request("GET", "/queues", token=limited)
        self.assertEqual(code, 429, body)
        self.assertEqual(headers.getRawHeaders(b"retry-after"), [b"1"])
        self.assertEqual(headers.getRawHeaders(b"ratelimit-remaining"), [b"0"])
        self.clock.advance(1)
        self.assertEqual(self.request("GET", "/queues", token=limited)[0], 200)
        # A token without a rate gets no headers.
        self.assertIsNone(self.request("GET", "/queues", token=ADMIN_TOKEN)[2].getRawHeaders(b"ratelimit-limit"))

    def test_tenant_push_to_another_tenants_category(self) -> None:
        self.seed_tenant("ta-q", "cat-a")
        self.seed_tenant("tb-q", "cat-b")
        _, tenant = self.make_token(["push"], queues="ta-*")
        self.assertEqual(self.request("POST", "/job/cat-a", {"url": "http://w/"}, tenant)[0], 200)
        code, body, _ = self.request("POST", "/job/cat-b", {"url": "http://w/"}, tenant)
        self.assertEqual((code, "tb-q" in body["message"]), (404, False), body)
        # A category without a routing goes to the default queue, outside the glob.
        self.assertEqual(self.request("POST", "/job/new", {"url": "http://w/"}, tenant)[0], 404)
        # A tenant admin cannot take another tenant's category.
        _, admin = self.make_token(["admin"], queues="ta-*")
        code, body, _ = self.request("PUT", "/routing/cat-b", {"queue_name": "ta-q"}, admin)
        self.assertEqual(code, 403, body)

    def test_tenant_name_clash_does_not_name_the_other_queue(self) -> None:
        # As MySQL's table names do: "ta-x" and "ta_x" would share tables.
        self.store.storage_key = lambda name: name.replace("-", "_")
        self.assertEqual(self.call("PUT", "/queue/ta_x", {})[0], 200)
        _, tenant = self.make_token(["admin"], queues="ta-*")
        code, body, _ = self.request("PUT", "/queue/ta-x", {}, tenant)
        self.assertEqual(code, 400, body)
        self.assertNotIn("ta_x", body["message"])
        self.assertIn("ta_x", self.call("PUT", "/queue/ta-x", {})[1]["message"])  # an admin is told which

    def test_tenant_metrics(self) -> None:
        self.seed_tenant("ta-q", "cat-a")
        self.seed_tenant("tb-q", "cat-b")
        _, tenant = self.make_token(["read"], queues="ta-*")
        code, text, _ = self.request("GET", "/metrics", token=tenant)
        self.assertEqual(code, 200)
        self.assertIn('queue="ta-q"', text)
        self.assertNotIn("tb-q", text)
        self.assertIn('queue="tb-q"', self.request("GET", "/metrics", token=ADMIN_TOKEN)[1])

    def test_secret_shown_once(self) -> None:
        token_id, secret = self.make_token(["read"])
        for path in ("/tokens", f"/token/{token_id}"):
            code, body, _ = self.request("GET", path, token=ADMIN_TOKEN)
            self.assertEqual(code, 200)
            self.assertNotIn(secret, repr(body))
            self.assertNotIn(hash_secret(secret), repr(body))
        self.assertEqual(self.request("DELETE", f"/token/{token_id}", token=ADMIN_TOKEN)[0], 200)
        self.assertEqual(self.request("GET", "/queues", token=secret)[0], 401)
        self.assertEqual(self.request("DELETE", f"/token/{token_id}", token=ADMIN_TOKEN)[0], 404)

    def test_settings_do_not_show_the_admin_token(self) -> None:
        code, settings, _ = self.request("GET", "/settings", token=ADMIN_TOKEN)
        self.assertEqual((code, settings["auth"], settings["admin_token"]), (200, "on", "***"))
        self.assertNotIn(ADMIN_TOKEN, repr(settings))


class MetricsPublicTests(AuthAPITestCase):
    """--metrics-public serves /metrics without a token."""

    settings = dict(AuthAPITestCase.settings, metrics_public="true")

    def test_metrics_without_token(self) -> None:
        self.assertEqual(self.request("GET", "/metrics")[0], 200)
        self.assertEqual(self.request("GET", "/queues")[0], 401)


class AuthOffTests(APITestCase):
    """Auth off (the default): no gate, no tokens."""

    def test_token_routes_say_auth_is_off(self) -> None:
        code, body = self.call("POST", "/tokens", {"name": "x", "scopes": ["read"]})
        self.assertEqual(code, 404)
        self.assertIn("without authentication", body["message"])
        self.assertEqual(self.call("GET", "/queues")[0], 200)


class ScopeTableDocTests(SynchronousTestCase):
    """docs/security.md shows the scope of every route of the table in code."""

    def test_every_route_is_in_the_docs_table(self) -> None:
        import re

        from fireworq.auth.policy import ROUTE_ACCESS

        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "security.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        start = text.index("### Which scope each endpoint needs")
        table = text[start:text.index("\n### ", start + 10)]
        rows = {}
        for line in table.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 4:
                for name in re.findall(r"`(\w+)`", cells[3]):
                    rows[name] = cells[1]
        for endpoint, access in ROUTE_ACCESS.items():
            self.assertIn(endpoint, rows, f"docs/security.md's scope table has no row for route {endpoint}")
            scope = rows[endpoint]
            expected = {None: "none", "any": "any valid token"}.get(access.scope, access.scope)
            self.assertTrue(scope.startswith(expected), f"{endpoint}: the docs say {scope!r}, the code {access.scope!r}")
            if access.global_admin or access.unrestricted:
                self.assertIn("without `queues`", scope, endpoint)
