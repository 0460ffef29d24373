"""
The console's job history (protocol B8) in a real headless Chromium against
a real server (the set-up of L{tests.test_console_browser}): the Completed
tab, a kept job's page with its result and output shown as text (a worker
answer full of markup runs nothing), the name and tag filters, and "Run
again".
"""

from __future__ import annotations

import json
from typing import Any, List

from twisted.internet.defer import inlineCallbacks
from twisted.web.server import Site

from tests.support.console import ConsoleCase
from tests.support.polling import wait_until
from tests.support.worker import Worker, _WorkerResource

#: An answer body a console must show as text: each part tries to run.
MARKUP = '<img src=x onerror="window.__xss=7"><script>window.__xss=8</script>'


class MarkupWorker(Worker):
    """The test worker, plus ``/markup``: a success whose body is full of markup."""

    def start(self) -> None:
        class Resource(_WorkerResource):
            def _answer(self, request: Any, path: str, delivery: Any, finished: List[bool]) -> None:
                if path == "/markup":
                    request.setHeader(b"Content-Type", b"application/json")
                    request.write(json.dumps({"status": "success", "message": MARKUP, "html": MARKUP}).encode())
                    request.finish()
                    return
                super()._answer(request, path, delivery, finished)

        site = Site(Resource(self))
        site.noisy = False
        self._port = self.reactor.listenTCP(0, site, interface="127.0.0.1")


class ConsoleHistoryTests(ConsoleCase):
    """The Completed tab and a kept job's page."""

    @inlineCallbacks
    def setUp(self):
        yield super().setUp()
        self.markup_worker = MarkupWorker()
        self.markup_worker.start()
        self.addCleanup(self.markup_worker.stop)

    @inlineCallbacks
    def test_completed_tab_result_filters_and_run_again(self):
        browser = self.browser
        yield self.api("PUT", "/queue/kept", {"polling_interval": 50, "retention": 3600})
        yield self.api("PUT", "/routing/kept", {"queue_name": "kept"})
        shown = yield self.api("POST", "/job/kept", {
            "url": self.markup_worker.url("/markup"), "name": "report-" + MARKUP, "tags": {"team": "a"}})
        other = yield self.api("POST", "/job/kept", {"url": self.worker.url("/success"), "name": "other"})
        yield wait_until(
            lambda: self.server.call("GET", "/queue/kept/completed").addCallback(lambda r: len(r[1]["jobs"]) == 2),
            20, message="both jobs completed and kept")

        # The Completed tab lists both, newest first; a filter narrows it.
        yield browser.get(self.server.url("/ui/#/queue/kept/jobs/completed"))
        yield browser.wait_for("#tab-completed.current")
        yield wait_until(lambda: self.rows("#jobs-body").addCallback(lambda rows: len(rows) == 2), 10,
                         message="two kept jobs listed")
        rows = yield self.rows("#jobs-body")
        self.assertEqual(sorted(r["id"] for r in rows), sorted([str(shown["id"]), str(other["id"])]))
        yield browser.fill("#filter-name", "report-*")
        yield browser.fill("#filter-tag", "team:a")
        yield browser.click("#filter-apply")
        yield wait_until(lambda: self.rows("#jobs-body").addCallback(
            lambda rows: [r["id"] for r in rows] == [str(shown["id"])]), 10, message="the filtered list")
        self.assertIn("name=report-", (yield browser.execute("return window.location.hash")))
        yield self.screenshot("completed-jobs.png")

        # The kept job's page: state, attempts, result and the output as text.
        yield browser.get(self.server.url(f"/ui/#/queue/kept/job/{shown['id']}"))
        yield browser.wait_for("#job-output")
        self.assertEqual((yield browser.text("#job-state")), "completed")
        self.assertEqual((yield browser.text("#job-attempts")), "1")
        self.assertEqual((yield browser.text("#job-result-message")), MARKUP)
        output = yield browser.text("#job-output")
        self.assertEqual(json.loads(output), {"status": "success", "message": MARKUP, "html": MARKUP})
        yield self.assert_no_script_ran()
        yield self.screenshot("kept-job.png")

        # Run again: a new job, delivered; the kept one stays.
        delivered = len(self.markup_worker.deliveries)
        yield browser.click("#job-rerun")
        yield self.confirm()
        yield browser.wait_for("#rerun-job-id")
        new_id = int((yield browser.text("#rerun-job-id")))
        self.assertNotEqual(new_id, shown["id"])
        yield wait_until(lambda: len(self.markup_worker.deliveries) > delivered, 10, message="the job run again")
        self.assertEqual((yield self.api("GET", f"/queue/kept/job/{shown['id']}"))["state"], "completed")
        yield self.assert_no_script_ran()
