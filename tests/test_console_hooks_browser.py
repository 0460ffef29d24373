"""
The console's event hooks page (B12) in a real headless Chromium against a
real server (see tests/test_console_browser.py for the set-up): defining a
hook in the form (its secret shown once), the list, a delivered event,
editing, a refused URL, and delete; a URL with markup is shown as text.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from tests import test_console_browser as base
from tests.support.console import ConsoleCase
from tests.support.polling import wait_until


class ConsoleHookTests(ConsoleCase):
    """Hooks in the console, driven like a user would."""

    def row(self, name: str) -> str:
        return f"#hooks-body tr[data-hook={base.css_string(name)}]"

    @inlineCallbacks
    def test_define_edit_delete(self):
        browser = self.browser
        yield browser.get(self.server.url("/ui/#/hooks"))
        yield browser.wait_for("#hook-form")
        yield browser.wait_text("#hooks-body", "No hooks are defined.")
        receiver = self.worker.url('/success?x=<img/src=x/onerror=window.__xss=5>')
        yield browser.fill("#hook-name", "audit")
        yield browser.fill("#hook-url", receiver)
        yield browser.fill("#hook-queues", "def*")
        yield browser.click("#hook-submit")
        yield browser.wait_text("#flash", "Saved hook audit")
        yield browser.wait_text("#hook-secret", "whsec_")
        stored = yield self.api("GET", "/hook/audit")
        self.assertEqual(stored, {"name": "audit", "url": receiver, "events": ["job.completed", "job.failed"],
                                  "queues": "def*"})
        row = self.row("audit")
        yield browser.wait_text(row + " td.events", "job.completed, job.failed")
        yield browser.wait_text(row + " td.url", receiver)
        # An event reaches the receiver (the worker) through _hooks.
        yield self.api("POST", "/job/c", {"url": self.worker.url("/success")})
        yield wait_until(
            lambda: any(d.headers.get("x-fireworq-queue") == "_hooks" for d in self.worker.deliveries),
            15, 0.05, "the hook delivery",
        )
        # Edit: the form takes the hook; the secret is kept.
        yield browser.click(row + " button.edit")
        yield browser.click("#hook-event-job-pushed")
        # The first save's message is still shown: clear it, so that the
        # wait below sees the edit's own answer.
        yield browser.execute("document.querySelectorAll('#flash > div').forEach(function (d) { d.remove(); })")
        yield browser.click("#hook-submit")
        yield browser.wait_text("#flash", "Saved hook audit")
        edited = yield self.api("GET", "/hook/audit")
        self.assertEqual(edited["events"], ["job.pushed", "job.completed", "job.failed"])
        # No new secret to show.
        yield browser.wait_js("return document.querySelector('#hook-secret').hidden",
                              message="the secret box hidden after an edit")
        # A bad URL is refused with the server's message.
        yield browser.fill("#hook-name", "bad")
        yield browser.fill("#hook-url", "ftp://nowhere/")
        yield browser.click("#hook-submit")
        yield browser.wait_text("#flash", "field url")
        yield browser.fill("#hook-name", "")
        yield browser.fill("#hook-url", "")
        yield self.screenshot("console-hooks.png")
        # Delete.
        yield browser.click(row + " button.delete")
        yield self.confirm()
        yield browser.wait_text("#flash", "Deleted hook audit")
        yield self.api("GET", "/hook/audit", expect=404)
        yield browser.wait_text("#hooks-body", "No hooks are defined.")
        yield self.assert_no_script_ran()
