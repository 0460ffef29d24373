"""
The console's schedules page (B10) in a real headless Chromium against a
real server (see tests/test_console_browser.py for the set-up): defining a
schedule in the form, the list with its next run, run now (also disabled),
disable and enable, edit (keeping job fields the form does not show), and
delete; a name and a category with markup are shown as text.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from tests import test_console_browser as base
from tests.support.console import ConsoleCase
from tests.support.polling import wait_until

XSS_NAME = 'nightly<img src=x onerror="window.__xss=4">'


class ConsoleScheduleTests(ConsoleCase):
    """Schedules in the console, driven like a user would."""

    def row(self, name: str) -> str:
        return f"#schedules-body tr[data-schedule={base.css_string(name)}]"

    @inlineCallbacks
    def test_define_run_disable_edit_delete(self):
        browser = self.browser
        yield browser.get(self.server.url("/ui/#/schedules"))
        yield browser.wait_for("#schedule-form")
        yield browser.wait_text("#schedules-body", "No schedules are defined.")
        # Define one in the form.
        yield browser.fill("#schedule-name", XSS_NAME)
        yield browser.fill("#schedule-cron", "30 2 * * *")
        yield browser.fill("#schedule-timezone", "Europe/Berlin")
        yield browser.fill("#schedule-category", base.XSS_CATEGORY)
        yield browser.fill("#schedule-url", self.worker.url("/success"))
        yield browser.fill("#schedule-payload", '{"report": "daily"}')
        yield browser.fill("#schedule-job-name", "report")
        yield browser.click("#schedule-submit")
        yield browser.wait_text("#flash", "Created " + XSS_NAME)
        stored = yield self.api("GET", "/schedule/" + base.quote(XSS_NAME, safe=""))
        self.assertEqual((stored["cron"], stored["timezone"], stored["job_name"], stored["payload"]),
                         ("30 2 * * *", "Europe/Berlin", "report", {"report": "daily"}))
        row = self.row(XSS_NAME)
        yield browser.wait_text(row + " td.next-run", stored["next_run_at"])
        yield browser.wait_text(row, base.XSS_CATEGORY)
        # Run now: a job is pushed and shown as the last job.
        yield browser.click(row + " button.run")
        yield browser.wait_text("#flash", "Pushed job")
        yield browser.wait_text(row + " td.last-job", "default #")
        # Disable, then run now still pushes.
        yield browser.click(row + " button.disable")
        yield browser.wait_text("#flash", "Disabled " + XSS_NAME)
        yield browser.wait_text(row + " td.next-run", "disabled")
        self.assertFalse((yield self.api("GET", "/schedule/" + base.quote(XSS_NAME, safe="")))["enabled"])
        yield browser.click(row + " button.run")
        yield browser.wait_text("#flash", "Pushed job")
        yield wait_until(lambda: len(self.worker.deliveries) >= 2, 10, 0.05, "both jobs run now delivered")
        self.assertEqual([d.body for d in self.worker.deliveries], [b'{"report":"daily"}'] * 2)
        yield browser.click(row + " button.enable")
        yield browser.wait_text("#flash", "Enabled " + XSS_NAME)
        # Edit: a field the form does not show (priority) is kept.
        yield self.api("PUT", "/schedule/" + base.quote(XSS_NAME, safe=""), {
            "cron": "30 2 * * *", "timezone": "Europe/Berlin", "category": base.XSS_CATEGORY,
            "url": self.worker.url("/success"), "priority": 7,
        })
        # The list shows it on its next refresh.
        yield wait_until(lambda: browser.execute(
            "return document.querySelector(arguments[0]).dataset.sig.indexOf('priority') >= 0", row))
        yield browser.click(row + " button.edit")
        yield browser.fill("#schedule-cron", "@hourly")
        yield browser.click("#schedule-submit")
        yield browser.wait_text("#flash", "Saved " + XSS_NAME)
        edited = yield self.api("GET", "/schedule/" + base.quote(XSS_NAME, safe=""))
        self.assertEqual((edited["cron"], edited["priority"]), ("@hourly", 7))
        # A bad cron is refused with the server's message.
        yield browser.fill("#schedule-name", "bad")
        yield browser.fill("#schedule-cron", "61 * * * *")
        yield browser.fill("#schedule-category", "c")
        yield browser.fill("#schedule-url", self.worker.url("/success"))
        yield browser.click("#schedule-submit")
        yield browser.wait_text("#flash", "field cron")
        kept = yield browser.execute("return document.querySelector('#schedule-cron').value")
        self.assertEqual(kept, "61 * * * *")  # the form keeps what was typed
        yield browser.fill("#schedule-name", "")
        yield browser.fill("#schedule-cron", "")
        yield browser.fill("#schedule-category", "")
        yield browser.fill("#schedule-url", "")
        yield self.screenshot("console-schedules.png")
        # Delete.
        yield browser.click(row + " button.delete")
        yield self.confirm()
        yield browser.wait_text("#flash", "Deleted schedule " + XSS_NAME)
        yield self.api("GET", "/schedule/" + base.quote(XSS_NAME, safe=""), expect=404)
        yield self.assert_no_script_ran()
