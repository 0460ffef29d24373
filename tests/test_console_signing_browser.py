"""
The console's signed-deliveries controls in a real headless Chromium against
a real server (see tests/test_console_browser.py for the set-up): turning
signing on in the queue form, the "signed" badge, the signing-key dialog
that shows the secrets only when asked, and a rotation.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from tests.support.console import ConsoleCase
from tests.support.polling import wait_until


class ConsoleSigningTests(ConsoleCase):
    """Signing in the console, driven like a user would."""

    @inlineCallbacks
    def test_signing_on_show_and_rotate(self):
        browser = self.browser
        yield browser.get(self.server.url("/ui/"))
        yield browser.wait_for("#queue-form")
        # Define a signed queue in the form.
        yield browser.fill("#queue-name", "hooks")
        yield browser.click("#queue-signing")
        yield browser.click("#queue-submit")
        yield browser.wait_text("#flash", "Defined queue hooks")
        definition = yield self.api("GET", "/queue/hooks")
        self.assertIs(definition["signing"], True)
        row = self.queue_row("hooks")
        yield browser.wait_text(row, "signed")
        # The dialog hides the secrets until asked.
        keys = yield self.api("GET", "/queue/hooks/signing-key")
        yield browser.click(row + " button.signing-key")
        yield browser.wait_for("#signing-dialog")
        shown = yield browser.text("#signing-dialog")
        self.assertNotIn(keys["current"], shown)
        self.assertNotIn("whsec_", shown)
        yield browser.click("#signing-show")
        yield browser.wait_text("#signing-current", keys["current"])
        # Rotate: asked once more, then the old secret shows as previous.
        yield browser.click("#signing-rotate")
        yield browser.click("#signing-rotate-confirm")
        yield browser.wait_text("#flash", "Rotated the signing secret of queue hooks")
        rotated = yield self.api("GET", "/queue/hooks/signing-key")
        self.assertEqual(rotated["previous"], keys["current"])
        self.assertNotIn("whsec_", (yield browser.text("#signing-dialog")))
        yield browser.click("#signing-show")
        yield browser.wait_text("#signing-current", rotated["current"])
        yield browser.wait_text("#signing-previous", keys["current"])
        yield self.screenshot("console-signing-key.png")
        yield browser.click("#signing-close")
        yield wait_until(lambda: browser.execute("return !document.querySelector('#signing-dialog')"))
        # Editing the queue keeps the box ticked; unticking turns signing off.
        yield browser.click(row + " button.edit")
        checked = yield browser.execute("return document.querySelector('#queue-signing').checked")
        self.assertTrue(checked)
        yield browser.click("#queue-signing")
        yield browser.click("#queue-submit")
        yield browser.wait_text("#flash", "Saved queue hooks")
        definition = yield self.api("GET", "/queue/hooks")
        self.assertNotIn("signing", definition)
        yield wait_until(lambda: browser.execute(
            "return !document.querySelector(arguments[0] + ' button.signing-key')", row))
        yield self.assert_no_script_ran()
