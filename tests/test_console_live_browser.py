"""
The console's live updates (``GET /events``) in a real headless Chromium
against a real server (see tests/test_console_browser.py for the set-up):
the queues page follows the event stream, so a job pushed and completed
shows up in the queue's activity feed and counters without a reload, and
the charts are drawn from the stats events.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import test_console_auth_browser as auth_base
from tests.support.browser import skip_reason
from tests.support.console import ConsoleCase


class ConsoleLiveTests(ConsoleCase):
    """The queues page, updated by live events."""

    def wait_live(self, timeout: float = 10.0):
        """Wait until the page says it follows the live stream."""
        return self.browser.wait_js(
            "var t = document.getElementById('queues-updated'); return t && t.textContent.indexOf('live ·') === 0;",
            timeout=timeout, message="the queues page to follow the live stream",
        )

    @inlineCallbacks
    def test_completion_shows_without_reload(self):
        browser = self.browser
        yield browser.get(self.server.url("/ui/#/queues"))
        yield self.wait_live()
        queue = '#live-queues section[data-queue="default"]'
        yield browser.wait_text(queue, "no job events since the page opened")
        # Marks this page load: a reload would lose it.
        yield browser.execute("window.__sameLoad = 'yes'")
        self.worker.failing = False
        pushed = yield self.api("POST", "/job/live/x", {"url": self.worker.url("/switch"), "payload": {"n": 1}})
        job = str(pushed["id"])
        yield browser.wait_for(f'{queue} li.event.completed[data-job="{job}"]', timeout=15)
        yield browser.wait_for(f'{queue} li.event.pushed[data-job="{job}"]')
        # The table's counters follow too (successes column).
        yield browser.wait_js(
            "var r = document.querySelector('#queues-body tr[data-queue=\"default\"]');"
            " return r && r.cells[7].textContent === '1';",
            timeout=10, message="the successes counter to show 1",
        )
        # Charts drawn from three stats events (two rates), about 4-6 s.
        yield browser.wait_for(f"{queue} svg.chart polyline.completions", timeout=15)
        self.assertEqual((yield browser.execute("return window.__sameLoad")), "yes")
        text = yield browser.text(f"{queue} ul.feed")
        self.assertIn("completed", text)
        self.assertIn("#" + job, text)
        yield self.screenshot("console-live.png")

    @inlineCallbacks
    def test_job_list_follows_the_queue_events(self):
        """The deferred list is reloaded on the queue's job events, not polled every 2 s."""
        browser = self.browser
        count = (
            "return performance.getEntriesByType('resource')"
            ".filter(e => e.name.indexOf('/queue/default/deferred') >= 0).length"
        )
        yield browser.get(self.server.url("/ui/#/queue/default/jobs/deferred"))
        yield browser.wait_text("#jobs-body", "No deferred jobs")
        yield browser.wait_js("return performance.now() > 6500", timeout=15, message="6.5 s on the page")
        # The first load and one when the stream came up; 2 s polling would have made 3 or more.
        self.assertLessEqual((yield browser.execute(count)), 2)
        pushed = yield self.api("POST", "/job/later", {"url": self.worker.url("/success"), "run_after": 3600})
        yield browser.wait_text("#jobs-body", str(pushed["id"]), timeout=5)

    @inlineCallbacks
    def test_polls_while_the_stream_is_down(self):
        browser = self.browser
        yield browser.get(self.server.url("/ui/#/queues"))
        yield self.wait_live()
        # The server goes away: the page says so and keeps trying (polling and reconnecting).
        yield self.server.stop()
        yield browser.wait_text("#queues-updated", "not refreshed", timeout=20)
        yield self.server.start()
        yield self.wait_live(timeout=20)
        self.worker.failing = False
        pushed = yield self.api("POST", "/job/again", {"url": self.worker.url("/switch")})
        yield browser.wait_for(
            f'#live-queues section[data-queue="default"] li.event.completed[data-job="{pushed["id"]}"]', timeout=15
        )


class ConsoleLiveAuthTests(TestCase):
    """With auth on, the console streams with the token in a header, never in a URL."""

    timeout = 120
    skip = skip_reason()

    setUp = auth_base.ConsoleSignInTests.setUp
    admin = auth_base.ConsoleSignInTests.admin
    sign_in = auth_base.ConsoleSignInTests.sign_in
    wait_live = ConsoleLiveTests.wait_live

    @inlineCallbacks
    def test_tenant_streams_its_queues_only(self):
        yield self.admin("PUT", "/queue/team-a-mail", {})
        yield self.admin("PUT", "/queue/team-b-mail", {})
        yield self.admin("PUT", "/routing/a", {"queue_name": "team-a-mail"})
        yield self.admin("PUT", "/routing/b", {"queue_name": "team-b-mail"})
        made = yield self.admin(
            "POST", "/tokens", {"name": "team a reader", "scopes": ["read"], "queues": "team-a-*"}, expect=201
        )
        yield self.browser.get(self.server.url("/ui/#/queues"))
        yield self.sign_in(made["token"])
        yield self.wait_live()
        for category in ("a", "b"):
            yield self.admin("POST", f"/job/{category}", {"url": "http://127.0.0.1:9/unreachable"})
        yield self.browser.wait_for('#live-queues section[data-queue="team-a-mail"] li.event.pushed', timeout=15)
        shown = yield self.browser.execute(
            "return Array.from(document.querySelectorAll('#live-queues section')).map(s => s.dataset.queue)"
        )
        self.assertEqual(shown, ["team-a-mail"])
        # The token never went into a URL the page asked for (the stream, still
        # open, is not listed yet; its URL is fixed: /events).
        urls = yield self.browser.execute("return performance.getEntriesByType('resource').map(e => e.name)")
        self.assertTrue(urls)
        for url in urls:
            self.assertNotIn(made["token"], url)
