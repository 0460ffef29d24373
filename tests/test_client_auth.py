"""
The client against a real server with authentication on (``auth=on``,
a bootstrap ``admin_token``): tokens made, listed, shown and revoked
through the client, ``whoami``, and the typed errors with the server's own
messages -- 401 without a token or with a revoked one, 403 for a scope
that does not allow the call, 404 for a queue outside a tenant token, 429
with ``Retry-After`` and the ``RateLimit-*`` numbers for a token over its
rate (never retried by the client).
"""

from __future__ import annotations

import asyncio
from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from fireworq.client import (
    AsyncClient,
    BadRequest,
    Client,
    Forbidden,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unauthorized,
)
from tests.support.cases import ServerTestCase
from tests.support.client_cases import in_thread

ADMIN_TOKEN = "client-admin-token-0123456789abcdef"


class AuthServerTestCase(ServerTestCase):
    """One real server with auth on; L{client} makes a client with a token."""

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.server = yield self.server(auth="on", admin_token=ADMIN_TOKEN)
        self.admin = self.client(ADMIN_TOKEN)

    def client(self, token: Any, **kwargs: Any) -> Client:
        kwargs.setdefault("retry", RetryPolicy(attempts=2, backoff=0.05))
        client = Client(self.server.url(""), token=token, **kwargs)
        self.addCleanup(client.close)
        return client


class TokenTests(AuthServerTestCase):
    """Tokens through the client, and every refusal as a typed error."""

    @inlineCallbacks
    def test_tokens_and_refusals(self) -> Any:
        made = yield in_thread(self.admin.create_token, "ci", ["push", "read"], queues="ci-*", rate=50, burst=60)
        self.assertTrue(made["token"].startswith("fwq_"))
        self.assertEqual((made["name"], made["scopes"], made["queues"], made["rate"], made["burst"]),
                         ("ci", ["push", "read"], "ci-*", 50, 60))
        listed = yield in_thread(self.admin.tokens)
        self.assertEqual([t["id"] for t in listed], [made["id"]])
        self.assertNotIn("token", listed[0], "the secret is shown only when made")
        shown = yield in_thread(self.admin.token, made["id"])
        self.assertEqual(shown, listed[0])

        ci = self.client(made["token"])
        me = yield in_thread(ci.whoami)
        self.assertEqual((me["id"], me["name"], me["queues"]), (made["id"], "ci", "ci-*"))
        yield in_thread(self.admin.put_queue, "ci-builds")
        yield in_thread(self.admin.put_routing, "build", "ci-builds")
        job = yield in_thread(ci.push, "build", self.worker.url("/success"), run_after=3600)
        self.assertEqual(job.queue_name, "ci-builds")
        page = yield in_thread(ci.list_jobs, "ci-builds", "deferred")
        self.assertEqual([j.id for j in page.items], [job.id])
        # A tenant token sees only its queues.
        queues = yield in_thread(ci.queues)
        self.assertEqual([q.name for q in queues], ["ci-builds"])
        error = yield self.assertFailure(in_thread(ci.list_jobs, "default"), NotFound)
        self.assertEqual(error.status, 404)
        # Its scopes do not allow admin calls.
        error = yield self.assertFailure(in_thread(ci.put_queue, "ci-other"), Forbidden)
        self.assertEqual(error.status, 403)
        self.assertIn("admin", error.message)
        error = yield self.assertFailure(in_thread(ci.tokens), Forbidden)
        self.assertTrue(error.message)

        # No token, a made-up token: 401 with the server's message.
        anonymous = self.client(None)
        error = yield self.assertFailure(in_thread(anonymous.queues), Unauthorized)
        self.assertIn("token", error.message)
        self.assertIn("Bearer", error.headers.get("www-authenticate", ""))
        error = yield self.assertFailure(in_thread(self.client("fwq_not-a-token").queues), Unauthorized)
        self.assertEqual(error.status, 401)
        # The asyncio client alike: the token as bearer, 401 without one.
        base = self.server.url("")

        async def from_asyncio() -> Any:
            async with AsyncClient(base, token=made["token"]) as client:
                me = await client.whoami()
            async with AsyncClient(base, token="", retry=RetryPolicy(attempts=1)) as client:
                try:
                    await client.queues()
                except Unauthorized as e:
                    return me, e.message

        me_async, refused = yield in_thread(lambda: asyncio.run(from_asyncio()))
        self.assertEqual(me_async["id"], made["id"])
        self.assertIn("token", refused)
        # /health answers without a token.
        health = yield in_thread(anonymous.health)
        self.assertEqual(health["status"], "ok")

        # A bad token request is a 400 naming the field.
        error = yield self.assertFailure(in_thread(self.admin.create_token, "x", ["fly"]), BadRequest)
        self.assertIn("scopes", error.message)

        revoked = yield in_thread(self.admin.revoke_token, made["id"])
        self.assertEqual(revoked["id"], made["id"])
        yield self.assertFailure(in_thread(ci.queues), Unauthorized)
        yield self.assertFailure(in_thread(self.admin.token, made["id"]), NotFound)
        yield self.assertFailure(in_thread(self.admin.delete_token, made["id"]), NotFound)

    @inlineCallbacks
    def test_rate_limited_token_is_not_retried(self) -> Any:
        made = yield in_thread(self.admin.create_token, "slow", ["read"], rate=0.001, burst=1)
        retries: List[Any] = []
        slow = self.client(made["token"], retry=RetryPolicy(attempts=5, backoff=0.01),
                           on_retry=lambda *a: retries.append(a))
        yield in_thread(slow.queues)
        error = yield self.assertFailure(in_thread(slow.queues), RateLimited)
        self.assertEqual(error.status, 429)
        self.assertTrue(error.message)
        self.assertGreater(error.retry_after, 1)
        self.assertEqual((error.limit, error.remaining), (1, 0), "RateLimit-Limit is the burst")
        self.assertEqual(retries, [], "a 429 is the caller's to handle, not repeated at once")

    @inlineCallbacks
    def test_token_endpoints_without_auth(self) -> Any:
        """A server without authentication answers the token calls 404 saying why."""
        plain = yield ServerTestCase.server(self, sqlite_path=self.workdir + "/plain.sqlite3")
        client = Client(plain.url(""))
        self.addCleanup(client.close)
        error = yield self.assertFailure(in_thread(client.tokens), NotFound)
        self.assertIn("authentication", error.message)
        yield self.assertFailure(in_thread(client.whoami), NotFound)
