"""
The console's sign-in, in a real headless Chromium against a real server
with auth on (sqlite store): the console asks for a token, keeps it in the
tab's session storage only (no cookie, no local storage), sends it as a
bearer header, shows only the queues a tenant token sees and hides the
change controls from a token without the admin scope; a revoked token
brings the sign-in back.  The same rules as tests/test_console_browser.py
(never skipped silently; FIREWORQ_SKIP_BROWSER_TESTS=1 switches it off).
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


class ConsoleSignInTests(TestCase):
    """Signing in to the console of a server with auth on."""

    timeout = 120
    skip = skip_reason()

    @inlineCallbacks
    def setUp(self) -> Any:
        yield open_console(
            self,
            {"queue_default": "", "auth": "on", "admin_token": ADMIN_TOKEN, "config_refresh_interval": "200"},
        )

    @inlineCallbacks
    def admin(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        code, value = yield call(self.server, method, path, ADMIN_TOKEN, body)
        self.assertEqual(code, expect, f"{method} {path}: {value}")
        return value

    @inlineCallbacks
    def sign_in(self, token: str) -> Any:
        yield self.browser.wait_for("#sign-in")
        yield self.browser.fill("#token-input", token)
        yield self.browser.click("#token-submit")

    def shown_queues(self) -> Any:
        return self.browser.execute(
            "return Array.from(document.querySelectorAll('#queues-body tr[data-queue]')).map(tr => tr.dataset.queue)"
        )

    @inlineCallbacks
    def test_tenant_sign_in_and_revocation(self) -> Any:
        yield self.admin("PUT", "/queue/team-a-mail", {})
        yield self.admin("PUT", "/queue/team-b-mail", {})
        made = yield self.admin(
            "POST", "/tokens", {"name": "team a reader", "scopes": ["read"], "queues": "team-a-*"}, expect=201
        )
        pusher = yield self.admin("POST", "/tokens", {"name": "producer", "scopes": ["push"]}, expect=201)
        yield self.browser.get(self.server.url("/ui/"))
        # A token that may only push cannot use the console.
        yield self.sign_in(pusher["token"])
        yield self.browser.wait_text("#sign-in-error", "may only push jobs")
        self.assertEqual((yield self.browser.execute("return document.querySelector('#whoami-name')")), None)
        # Asked for a token; a wrong one is refused with the server's reason.
        yield self.sign_in("fwq_wrong")
        yield self.browser.wait_text("#sign-in-error", "The token was refused")
        yield self.sign_in(made["token"])
        yield self.browser.wait_text("#whoami-name", "team a reader (read · team-a-*)")
        yield wait_until(lambda: self.shown_queues().addCallback(lambda q: q == ["team-a-mail"]), 10,
                         message="the console to list the tenant's queue only")
        state = yield self.browser.execute(
            "return {session: sessionStorage.getItem('fireworq.token'), local: localStorage.length,"
            " cookie: document.cookie,"
            " formShown: getComputedStyle(document.querySelector('#queue-form')).display !== 'none'}"
        )
        self.assertEqual(state, {"session": made["token"], "local": 0, "cookie": "", "formShown": False})
        page = yield self.browser.execute("return document.body.innerText")
        self.assertNotIn("team-b-mail", page)
        # Another tenant's queue by URL: as if it did not exist.
        yield self.browser.get(self.server.url("/ui/#/queue/team-b-mail/jobs/waiting"))
        page = yield self.browser.execute("return document.body.innerText")
        yield wait_until(
            lambda: self.browser.execute("return document.body.innerText").addCallback(lambda t: "not defined" in t),
            10, message="the console to say the other tenant's queue is not defined",
        )
        # Revoked: the next call of the console brings the sign-in back.
        yield self.admin("DELETE", f"/token/{made['id']}")
        yield self.browser.get(self.server.url("/ui/#/queues"))
        yield self.browser.wait_for("#sign-in")
        # The admin token: every control is there.
        yield self.sign_in(ADMIN_TOKEN)
        yield wait_until(
            lambda: self.shown_queues().addCallback(lambda q: q == ["team-a-mail", "team-b-mail"]), 10,
            message="the admin to see every queue",
        )
        shown = yield self.browser.execute(
            "return getComputedStyle(document.querySelector('#queue-form')).display !== 'none'"
        )
        self.assertTrue(shown)
        yield self.browser.click("#sign-out")
        yield self.browser.wait_for("#sign-in")
        self.assertIsNone((yield self.browser.execute("return sessionStorage.getItem('fireworq.token')")))
