"""
Event hooks through the client and the ``fireworq hooks`` commands against a
real server: hooks defined, listed, shown, deleted; the secret shown only by
the PUT that made it; a bad definition is a 400 naming the field; a hook's
deliveries to a real receiver verified by L{WebhookVerifier} with that
secret.
"""

from __future__ import annotations

import json
from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from fireworq.client import BadRequest, NotFound, SignatureError, WebhookVerifier
from tests.support.client_cases import ClientServerCase
from tests.support.polling import wait_until
from tests.test_cli_control import CommandCase


class HookTests(ClientServerCase):
    """Hooks through the client; a delivery verified with the hook's secret."""

    @inlineCallbacks
    def test_hooks(self) -> Any:
        made = yield self.call("put_hook", "audit", url=self.worker.url("/success/hook"),
                               events=["job.completed", "job.pushed"], queues="def*")
        secret = made["secret"]
        self.assertTrue(secret.startswith("whsec_"))
        # The events as given (repeats dropped); A16 changed this from the order of the types' table.
        self.assertEqual((made["events"], made["queues"]), (["job.completed", "job.pushed"], "def*"))
        listed = yield self.call("hooks")
        self.assertEqual([h["name"] for h in listed], ["audit"])
        self.assertNotIn("secret", listed[0])
        shown = yield self.call("hook", "audit")
        self.assertEqual(shown, listed[0])
        error = yield self.assertFailure(
            self.call("put_hook", "bad", url=self.worker.url("/"), events=["job.exploded"]), BadRequest
        )
        self.assertIn("events", error.message)
        error = yield self.assertFailure(self.call("put_hook", "bad", url="ftp://x/", events=["job.failed"]), BadRequest)
        self.assertIn("url", error.message)

        job = yield self.call("push", "audited", self.worker.url("/success"), {"n": 1})

        def hook_events() -> List[Any]:
            return [d for d in self.worker.deliveries if d.path == "/success/hook"]

        yield wait_until(lambda: len(hook_events()) >= 2, 30, 0.05, lambda: f"2 hook deliveries, got {len(hook_events())}")
        verifier = WebhookVerifier(secret)
        seen = []
        for delivery in hook_events():
            verifier.verify(delivery.body, delivery.headers)
            event = json.loads(delivery.body)
            seen.append((event["type"], event["queue"], event["job"]["id"]))
        self.assertEqual(sorted(seen), [("job.completed", "default", job.id), ("job.pushed", "default", job.id)])
        with self.assertRaises(SignatureError):
            WebhookVerifier("whsec_" + "B" * 43 + "=").verify(hook_events()[0].body, hook_events()[0].headers)

        deleted = yield self.call("delete_hook", "audit")
        self.assertEqual(deleted["name"], "audit")
        yield self.assertFailure(self.call("hook", "audit"), NotFound)
        yield self.assertFailure(self.call("delete_hook", "audit"), NotFound)



class HookCommandTests(CommandCase):
    """``fireworq hooks``: put, list, show, delete."""

    @inlineCallbacks
    def test_hooks(self) -> Any:
        out = yield self.ok("--json", "hooks", "put", "audit", "--url", self.worker.url("/success/hook"),
                            "--event", "job.completed", "--queues", "def*")
        made = json.loads(out)
        self.assertTrue(made["secret"].startswith("whsec_"))
        out = yield self.ok("hooks")
        self.assertRegex(out, r"(?m)^audit\s+http://127\.0\.0\.1:\d+/success/hook\s+job\.completed\s+def\*")
        out = yield self.ok("--json", "hooks", "show", "audit")
        self.assertNotIn("secret", json.loads(out))
        yield self.ok("push", "c", self.worker.url("/success"))
        yield wait_until(lambda: any(d.path == "/success/hook" for d in self.worker.deliveries), 30, 0.05, "a hook delivery")
        hook = next(d for d in self.worker.deliveries if d.path == "/success/hook")
        WebhookVerifier(made["secret"]).verify(hook.body, hook.headers)
        code, out, err = yield self.fireworq("hooks", "put", "bad", "--url", "ftp://x/", "--event", "job.failed")
        self.assertEqual(code, 1)
        self.assertIn("url", err)
        out = yield self.ok("hooks", "delete", "audit")
        self.assertEqual(out.strip(), "deleted hook audit")
        code, out, err = yield self.fireworq("hooks", "show", "audit")
        self.assertEqual(code, 4)
