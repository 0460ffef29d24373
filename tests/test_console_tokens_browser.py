"""
The console's tokens page (B14: "every new endpoint is in ... the
console"), in a real headless Chromium against a real server with auth on:
an admin makes a token (its secret shown once, the list never showing it),
revokes it (refused at once); a read token sees the list without the
controls; a tenant token gets no tokens page.  Same rules as the other
browser tests (FIREWORQ_SKIP_BROWSER_TESTS=1 switches them off).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.support.browser import skip_reason
from tests.support.console import open_console
from tests.support.polling import wait_until
from tests.test_auth_cluster import call

ADMIN_TOKEN = "console-admin-token-0123456789abcdef"


class ConsoleTokensTests(TestCase):
    """The #/tokens page."""

    timeout = 120
    skip = skip_reason()

    @inlineCallbacks
    def setUp(self) -> Any:
        yield open_console(self, {"queue_default": "", "auth": "on", "admin_token": ADMIN_TOKEN})

    @inlineCallbacks
    def sign_in(self, token: str) -> Any:
        yield self.browser.wait_for("#sign-in")
        yield self.browser.fill("#token-input", token)
        yield self.browser.click("#token-submit")
        yield self.browser.wait_for("#whoami-name")

    def rows(self) -> Any:
        return self.browser.execute(
            "return Array.from(document.querySelectorAll('#tokens-body tr[data-token]'))"
            ".map(tr => [tr.dataset.token, tr.querySelector('.name').textContent])"
        )

    @inlineCallbacks
    def test_make_list_revoke(self) -> Any:
        yield self.browser.get(self.server.url("/ui/#/tokens"))
        yield self.sign_in(ADMIN_TOKEN)
        self.assertFalse((yield self.browser.execute("return document.getElementById('nav-tokens').hidden")))
        yield self.browser.get(self.server.url("/ui/#/tokens"))
        yield self.browser.wait_for("#token-form")
        yield self.browser.fill("#token-name", "billing producer")
        yield self.browser.fill("#token-queues", "billing-*")
        yield self.browser.fill("#token-rate", "5")
        yield self.browser.click("#token-scope-push")
        yield self.browser.click("#token-submit-new")
        yield self.browser.wait_for("#token-secret code.secret")
        secret = yield self.browser.execute("return document.querySelector('#token-secret code.secret').textContent")
        self.assertTrue(secret.startswith("fwq_"), secret)
        code, me = yield call(self.server, "GET", "/whoami", secret)
        self.assertEqual((code, me["scopes"], me["queues"], me["rate"], me["burst"]),
                         (200, ["push", "read"], "billing-*", 5, 5))
        yield wait_until(lambda: self.rows().addCallback(lambda r: r == [[me["id"], "billing producer"]]), 10,
                         message="the new token in the list")
        table = yield self.browser.execute("return document.getElementById('tokens-table').innerText")
        self.assertNotIn(secret, table)
        # A read token: the list, no controls; a tenant: no tokens page.
        code, reader = yield call(self.server, "POST", "/tokens", ADMIN_TOKEN, {"name": "dash", "scopes": ["read"]})
        self.assertEqual(code, 201)
        # Revoke the first one.
        yield self.browser.click(f"#tokens-body tr[data-token='{me['id']}'] button.delete")
        yield self.browser.click("#modal-confirm")
        yield wait_until(lambda: self.rows().addCallback(lambda r: [i for i, _ in r] == [reader["id"]]), 10,
                         message="the revoked token to leave the list")
        self.assertEqual((yield call(self.server, "GET", "/whoami", secret))[0], 401)
        yield self.browser.click("#sign-out")
        yield self.sign_in(reader["token"])
        yield self.browser.get(self.server.url("/ui/#/tokens"))
        yield wait_until(lambda: self.rows().addCallback(lambda r: [i for i, _ in r] == [reader["id"]]), 10,
                         message="a read token to see the list")
        shown = yield self.browser.execute(
            "return {form: !!document.getElementById('token-form'),"
            " revoke: getComputedStyle(document.querySelector('#tokens-body button.delete')).display !== 'none'}"
        )
        self.assertEqual(shown, {"form": False, "revoke": False})
        code, tenant = yield call(
            self.server, "POST", "/tokens", ADMIN_TOKEN, {"name": "t", "scopes": ["read"], "queues": "billing-*"}
        )
        self.assertEqual(code, 201)
        yield self.browser.click("#sign-out")
        yield self.sign_in(tenant["token"])
        self.assertTrue((yield self.browser.execute("return document.getElementById('nav-tokens').hidden")))
