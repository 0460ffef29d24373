"""
Auth with real server processes: two ``twistd fireworq`` nodes on one
MySQL database (the throwaway MariaDB of tests/support/mariadb.py) share
their tokens -- a token made through one node is accepted by the other,
and one revoked through a node is refused by the other within
``config_refresh_interval`` -- and a sqlite server keeps its tokens across
a restart.  No process ever writes the admin token or a token's secret to
its logs.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import treq
from twisted.internet.defer import inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until
from tests.test_multinode import REFRESH_MS, REFRESH_SLACK, ClusterTestCase

ADMIN_TOKEN = "cluster-admin-token-0123456789abcdef"


@inlineCallbacks
def call(process: Any, method: str, path: str, token: Optional[str], body: Any = None) -> Any:
    """(code, JSON or text) of one request to a server process, with a bearer ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    response = yield treq.request(method, process.url(path), data=data, headers=headers, timeout=10)
    content = yield response.content()
    try:
        return response.code, json.loads(content)
    except ValueError:
        return response.code, content.decode("utf-8", "replace")


class RevocationTests(ClusterTestCase):
    """Tokens across two MySQL nodes."""

    def settings(self, **overrides: Any) -> Any:
        return super().settings(auth="on", admin_token=ADMIN_TOKEN, **overrides)

    @inlineCallbacks
    def test_revocation_reaches_the_other_node_within_the_refresh_interval(self) -> Any:
        a = yield self.start_node("a")
        b = yield self.start_node("b")
        code, made = yield call(a.process, "POST", "/tokens", ADMIN_TOKEN, {"name": "ci", "scopes": ["read"]})
        self.assertEqual(code, 201, made)
        secret = made["token"]

        def accepted_on_b() -> Any:
            d = call(b.process, "GET", "/queues", secret)
            d.addCallback(lambda r: r[0] == 200)
            return d

        yield wait_until(accepted_on_b, REFRESH_MS / 1000 + REFRESH_SLACK, 0.05, "node b to accept the new token")
        code, listed = yield call(b.process, "GET", "/tokens", ADMIN_TOKEN)
        self.assertEqual((code, [t["id"] for t in listed]), (200, [made["id"]]))

        code, revoked = yield call(a.process, "DELETE", f"/token/{made['id']}", ADMIN_TOKEN)
        self.assertEqual(code, 200, revoked)
        revoked_at = time.monotonic()
        self.assertEqual((yield call(a.process, "GET", "/queues", secret))[0], 401)

        def refused_on_b() -> Any:
            d = call(b.process, "GET", "/queues", secret)
            d.addCallback(lambda r: r[0] == 401)
            return d

        yield wait_until(refused_on_b, REFRESH_MS / 1000 + REFRESH_SLACK, 0.05, "node b to refuse the revoked token")
        self.assertLess(time.monotonic() - revoked_at, REFRESH_MS / 1000 + REFRESH_SLACK)
        for node in (a, b):
            # Log files are flushed periodically: wait for the refusal's line.
            yield wait_until(
                lambda: "API request refused (unknown)" in node.process.stdout() + node.process.stderr(),
                10, 0.1, f"node {node.name} to log the refused token",
            )
            logs = node.process.stdout() + node.process.stderr()
            self.assertNotIn(secret, logs)
            self.assertNotIn(ADMIN_TOKEN, logs)


class SqliteServerTests(ServerTestCase):
    """A sqlite server with auth on, from its command line to its logs."""

    @inlineCallbacks
    def test_tokens_survive_a_restart_and_stay_out_of_the_logs(self) -> Any:
        token_file = f"{self.workdir}/admin-token"
        with open(token_file, "w") as f:
            f.write(ADMIN_TOKEN + "\n")
        server = yield self.server(auth="on", admin_token_file=token_file)
        self.assertEqual((yield call(server, "GET", "/health", None))[0], 200)
        self.assertEqual((yield call(server, "GET", "/version", None))[0], 200)
        self.assertEqual((yield call(server, "GET", "/queues", None))[0], 401)
        code, made = yield call(server, "POST", "/tokens", ADMIN_TOKEN, {"name": "p", "scopes": ["push"]})
        self.assertEqual(code, 201, made)
        code, pushed = yield call(server, "POST", "/job/c", made["token"], {"url": self.worker.url("/success")})
        self.assertEqual(code, 200, pushed)
        code, settings = yield call(server, "GET", "/settings", ADMIN_TOKEN)
        self.assertEqual((code, settings["auth"]), (200, "on"))
        yield server.stop()
        yield server.start()
        self.assertEqual((yield call(server, "GET", "/queues", made["token"]))[0], 403)
        self.assertEqual((yield call(server, "POST", "/job/c", made["token"], {"url": self.worker.url("/success")}))[0], 200)
        logs = server.stdout() + server.stderr()
        self.assertNotIn(ADMIN_TOKEN, logs)
        self.assertNotIn(made["token"], logs)


class ClientTests(ServerTestCase):
    """fireworq.client against a real server with auth on: tokens, 401, 403 and 429 as typed errors."""

    @inlineCallbacks
    def test_client_token_calls(self) -> Any:
        from twisted.internet.threads import deferToThread

        from fireworq.client import Client, RetryPolicy
        from fireworq.client.errors import Forbidden, RateLimited, Unauthorized

        server = yield self.server(auth="on", admin_token=ADMIN_TOKEN)

        def scenario() -> None:
            with Client(server.url(""), token=ADMIN_TOKEN, retry=RetryPolicy(attempts=1)) as admin:
                made = admin.create_token("reader", ["read"], rate=1, burst=1)
                self.assertEqual([t["id"] for t in admin.tokens()], [made["id"]])
                self.assertEqual(admin.token(made["id"])["name"], "reader")
            with Client(server.url(""), token=made["token"], retry=RetryPolicy(attempts=1)) as reader:
                reader.queues()
                with self.assertRaises(RateLimited) as limited:
                    reader.queues()
                self.assertEqual((limited.exception.limit, limited.exception.remaining), (1, 0))
            with Client(server.url(""), token="fwq_unknown", retry=RetryPolicy(attempts=1)) as stranger:
                with self.assertRaises(Unauthorized):
                    stranger.queues()
            with Client(server.url(""), token=ADMIN_TOKEN, retry=RetryPolicy(attempts=1)) as admin:
                pusher = admin.create_token("pusher", ["push"])
            with Client(server.url(""), token=pusher["token"], retry=RetryPolicy(attempts=1)) as p:
                with self.assertRaises(Forbidden):
                    p.queues()
            with Client(server.url(""), token=ADMIN_TOKEN, retry=RetryPolicy(attempts=1)) as admin:
                admin.delete_token(made["id"])
                self.assertEqual([t["name"] for t in admin.tokens()], ["pusher"])

        yield deferToThread(scenario)
