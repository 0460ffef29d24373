"""
Gaps found by the audit of issue 14 against shared/spec/protocol.md B14:
``read`` is "every GET except secrets" (schedules included), a tenant
sees no other tenant's queue names in schedules or hooks, the
``POST /tokens`` answer names every field, and an empty ``queues`` glob
is refused rather than read as "every queue".
"""

from __future__ import annotations

from typing import Any

from fireworq.auth.tokens import InvalidToken, parse_token_request
from tests.test_auth_routes import ADMIN_TOKEN, AuthAPITestCase
from twisted.trial.unittest import SynchronousTestCase


class ReadScopeTests(AuthAPITestCase):
    """GETs that show no secret need ``read`` only."""

    def put_schedule(self, name: str, category: str) -> None:
        code, body, _ = self.request(
            "PUT", f"/schedule/{name}", {"cron": "@daily", "category": category, "url": "http://w/"}, ADMIN_TOKEN
        )
        self.assertEqual(code, 200, body)

    def test_read_token_lists_and_shows_schedules(self) -> None:
        self.seed_tenant("ta-q", "cat-a")
        self.put_schedule("nightly", "cat-a")
        _, read = self.make_token(["read"])
        code, body, _ = self.request("GET", "/schedules", token=read)
        self.assertEqual((code, [s["name"] for s in body]), (200, ["nightly"]), body)
        code, body, _ = self.request("GET", "/schedule/nightly", token=read)
        self.assertEqual((code, body["category"]), (200, "cat-a"), body)
        # Changing them is still a global admin's.
        for method, path, data in [
            ("PUT", "/schedule/x", {"cron": "@daily", "category": "cat-a", "url": "http://w/"}),
            ("DELETE", "/schedule/nightly", None),
            ("POST", "/schedule/nightly/run", None),
        ]:
            self.assertEqual(self.request(method, path, data, read)[0], 403, path)
        _, push = self.make_token(["push"])
        self.assertEqual(self.request("GET", "/schedules", token=push)[0], 403)

    def test_tenant_sees_only_schedules_of_its_queues(self) -> None:
        self.seed_tenant("ta-q", "cat-a")
        self.seed_tenant("tb-q", "cat-b")
        self.put_schedule("mine", "cat-a")
        self.put_schedule("theirs", "cat-b")
        self.put_schedule("unrouted", "cat-none")  # the default queue: outside ta-*
        _, tenant = self.make_token(["read"], queues="ta-*")
        code, body, _ = self.request("GET", "/schedules", token=tenant)
        self.assertEqual((code, [s["name"] for s in body]), (200, ["mine"]), body)
        self.assertEqual(self.request("GET", "/schedule/mine", token=tenant)[0], 200)
        for name in ("theirs", "unrouted"):
            code, body, _ = self.request("GET", f"/schedule/{name}", token=tenant)
            self.assertEqual(code, 404, body)
            self.assertEqual(body["message"], f"schedule {name!r} is not defined")

    def test_tenant_sees_only_hooks_of_its_queues(self) -> None:
        for name, queues in [("all", None), ("theirs", "tb-*"), ("mine", "ta-*"), ("one", "ta-q")]:
            body: Any = {"url": "http://w/", "events": ["job.completed"]}
            if queues is not None:
                body["queues"] = queues
            self.assertEqual(self.request("PUT", f"/hook/{name}", body, ADMIN_TOKEN)[0], 200)
        _, tenant = self.make_token(["read"], queues="ta-*")
        code, body, _ = self.request("GET", "/hooks", token=tenant)
        self.assertEqual((code, sorted(h["name"] for h in body)), (200, ["mine", "one"]), body)
        self.assertEqual(self.request("GET", "/hook/theirs", token=tenant)[0], 404)
        self.assertEqual(self.request("GET", "/hook/all", token=tenant)[0], 404)
        _, read = self.make_token(["read"])
        self.assertEqual(len(self.request("GET", "/hooks", token=read)[1]), 4)


class ReadEveryGetTests(AuthAPITestCase):
    """``read`` is every GET except secrets: settings (secrets masked) and tokens (never their secrets) too."""

    def test_read_token_gets_settings_and_tokens(self) -> None:
        made_id, _ = self.make_token(["push"])
        _, read = self.make_token(["read"])
        code, settings, _ = self.request("GET", "/settings", token=read)
        self.assertEqual((code, settings.get("admin_token")), (200, "***"), settings)
        code, tokens, _ = self.request("GET", "/tokens", token=read)
        self.assertEqual(code, 200, tokens)
        self.assertIn(made_id, [t["id"] for t in tokens])
        self.assertNotIn("token", tokens[0])
        self.assertEqual(self.request("GET", f"/token/{made_id}", token=read)[0], 200)
        # Making and revoking tokens stays a global admin's; a secret stays admin.
        self.assertEqual(self.request("POST", "/tokens", {"name": "x", "scopes": ["read"]}, read)[0], 403)
        self.assertEqual(self.request("DELETE", f"/token/{made_id}", token=read)[0], 403)
        _, push = self.make_token(["push"])
        for path in ("/settings", "/tokens", f"/token/{made_id}"):
            self.assertEqual(self.request("GET", path, token=push)[0], 403, path)

    def test_tenant_gets_neither_settings_nor_tokens(self) -> None:
        made_id, _ = self.make_token(["push"], queues="tb-*")
        _, tenant = self.make_token(["read", "admin"], queues="ta-*")
        for path in ("/settings", "/tokens", f"/token/{made_id}"):
            self.assertEqual(self.request("GET", path, token=tenant)[0], 403, path)


class TokenAnswerTests(AuthAPITestCase):
    """POST /tokens answers every field of the token."""

    def test_fields_without_queues_or_rate(self) -> None:
        code, body, _ = self.request("POST", "/tokens", {"name": "r", "scopes": ["read"]}, ADMIN_TOKEN)
        self.assertEqual(code, 201, body)
        for field in ("id", "token", "name", "scopes", "queues", "rate", "burst"):
            self.assertIn(field, body)
        self.assertEqual((body["queues"], body["rate"], body["burst"]), (None, None, None))
        code, shown, _ = self.request("GET", f"/token/{body['id']}", token=ADMIN_TOKEN)
        self.assertEqual((code, shown["queues"], shown["rate"]), (200, None, None))
        self.assertNotIn("token", shown)


class EmptyGlobTests(SynchronousTestCase):
    """An empty ``queues`` would otherwise make an unrestricted token."""

    def test_empty_queues_refused(self) -> None:
        e = self.assertRaises(InvalidToken, parse_token_request, {"name": "x", "scopes": ["read"], "queues": ""}, 0)
        self.assertIn("queues", str(e))

    def test_unknown_field_refused(self) -> None:
        # A typo of "queues" must not make a token for every queue.
        body = {"name": "x", "scopes": ["read"], "queue": "billing-*"}
        e = self.assertRaises(InvalidToken, parse_token_request, body, 0)
        self.assertIn("field queue ", str(e))
        self.assertIn("queues", str(e))


class SwitchOptionTests(SynchronousTestCase):
    """B14 writes ``--metrics-public`` as a bare switch: twistd accepts it so (and ``--auth`` too)."""

    def parse(self, *args: str) -> Any:
        from twisted.scripts.twistd import ServerOptions

        twistd = ServerOptions()
        twistd.parseOptions(["-n", "fireworq", "--driver=in-memory", *args])
        return twistd.subOptions.config

    def test_bare_switches(self) -> None:
        config = self.parse("--auth", "--admin-token", ADMIN_TOKEN, "--metrics-public")
        self.assertEqual((config.auth, config.metrics_public), (True, True))
        config = self.parse("--metrics-public", "--auth=on", "--admin-token", ADMIN_TOKEN)
        self.assertEqual((config.auth, config.metrics_public), (True, True))

    def test_switches_with_values(self) -> None:
        config = self.parse("--auth=on", "--admin-token", ADMIN_TOKEN, "--metrics-public", "false")
        self.assertEqual((config.auth, config.metrics_public), (True, False))
        config = self.parse("--auth", "off", "--metrics-public=true")
        self.assertEqual((config.auth, config.metrics_public), (False, True))
