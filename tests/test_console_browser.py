"""
The web console in a real headless Chromium against a real server.

Each test starts ``twistd fireworq`` (sqlite store, in a temporary
directory), a real worker in the test's reactor and Chromium through
Debian's chromedriver (L{tests.support.browser}), then does everything a
user does through the console's page: clicking, typing, reading the text
shown.  The HTTP API is used only to set the scene (push jobs) and to check
that what the console did really happened.

Job and failure ids are pushed above 2^53 (by raising the sqlite
AUTOINCREMENT sequence of the queue's tables, which is what a long-lived
queue reaches), so a console that parsed answers with JSON.parse would show
and use rounded ids and these tests would fail.

These tests never skip silently: when Chromium cannot start they fail with
the reason; ``FIREWORQ_SKIP_BROWSER_TESTS=1`` switches them off explicitly.
Screenshots go to the test's directory, or to the directory named by
``FIREWORQ_CONSOLE_SCREENSHOTS`` (``docs/images`` to refresh the docs').
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict
from urllib.parse import quote

from twisted.internet.defer import inlineCallbacks

from fireworq.store.sqlite import failures_table, jobs_table, table_key
from tests.support.console import ConsoleCase, css_string
from tests.support.polling import wait_until

#: 2^53: the first integer above which doubles skip integers.
TWO_53 = 2**53

#: Text a browser must show as text, never run: each tries to set window.__xss.
XSS_CATEGORY = 'console/<img src=x onerror="window.__xss=1">'
XSS_PAYLOAD = {"html": "<script>window.__xss=2</script>", "big": 12345678901234567890}
XSS_QUEUE = "q<img src=x onerror=window.__xss=3>"


def raise_ids(sqlite_path: str, queue: str, next_job_id: int, next_failure_id: int) -> None:
    """
    Make the next job and failure ids of ``queue`` (whose tables exist) the
    given numbers, through sqlite's own AUTOINCREMENT bookkeeping.
    """
    key = table_key(queue)
    with sqlite3.connect(sqlite_path, timeout=10) as db:
        for table, next_id in ((jobs_table(key), next_job_id), (failures_table(key), next_failure_id)):
            name = table.strip('"')
            updated = db.execute(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (next_id - 1, name)
            ).rowcount
            if not updated:
                db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, next_id - 1))
    db.close()


class ConsoleBrowserTests(ConsoleCase):
    """The console's pages, driven like a user would (set-up and shared helpers: L{ConsoleCase})."""

    @inlineCallbacks
    def define_queue_in_form(self, name: str, workers: str, rate: str = "", burst: str = ""):
        """Fill and submit the queue form of the queues page."""
        editing = yield self.browser.execute("return document.querySelector('#queue-name').readOnly")
        if not editing:
            yield self.browser.fill("#queue-name", name)
        yield self.browser.fill("#queue-workers", workers)
        if rate:
            checked = yield self.browser.execute("return document.querySelector('#queue-throttle').checked")
            if not checked:
                yield self.browser.click("#queue-throttle")
            yield self.browser.fill("#queue-rate", rate)
            yield self.browser.fill("#queue-burst", burst)
        yield self.browser.click("#queue-submit")

    def failures(self) -> Any:
        """What the failure-log list shows, row by row."""
        return self.browser.execute(
            "return Array.from(document.querySelectorAll('#failed-body tr[data-id]')).map(tr => {"
            "  const text = css => tr.querySelector(css).textContent;"
            "  return {id: tr.dataset.id, jobId: tr.dataset.jobId, failure: text('td.id a'),"
            "    job: text('.job-id'), category: text('td.category'), url: text('td.url'),"
            "    status: text('td.result .badge'), code: text('td.result .code'), message: text('td.message')};"
            "})"
        )

    # -------------------------------------------------------------- tests

    @inlineCallbacks
    def test_define_route_fail_and_retry(self):
        """
        A queue and a routing made in the console; a failing job pushed to
        them shows in the console's failure log with its exact ids and the
        worker's result; Retry in the console pushes it again and the worker
        gets it.
        """
        browser = self.browser
        yield browser.get(self.server.url("/ui"))
        location = yield browser.execute("return location.pathname")
        self.assertEqual(location, "/ui/")
        yield browser.wait_text("#queues-body", "default")
        yield browser.wait_text("#server-state", "healthy")

        # A throttled queue, defined through the form.
        yield self.define_queue_in_form("console-q", "4", rate="50", burst="10")
        yield browser.wait_text(self.queue_row("console-q"), "50/s, burst 10")
        definition = yield self.api("GET", "/queue/console-q")
        self.assertEqual(
            definition,
            {
                "name": "console-q",
                "polling_interval": 100,
                "max_workers": 4,
                "max_dispatches_per_second": 50.0,
                "max_burst_size": 10,
            },
        )
        job_id, failure_id = TWO_53 + 1, TWO_53 + 11
        raise_ids(self.sqlite_path, "console-q", job_id, failure_id)

        # A routing to it, added through the routings page.
        yield browser.click("#nav-routings")
        yield browser.wait_for("#routing-queue option[value='console-q']")
        yield browser.fill("#routing-category", XSS_CATEGORY)
        yield browser.select("#routing-queue", "console-q")
        yield browser.click("#routing-submit")
        yield browser.wait_text("#routings-body", XSS_CATEGORY)
        routing = yield self.api("GET", "/routing/" + quote(XSS_CATEGORY, safe="/"))
        self.assertEqual(routing, {"job_category": XSS_CATEGORY, "queue_name": "console-q"})

        # Two jobs that fail for good on their first try: the first pushed
        # fails last (it is due a second later).
        late = yield self.api(
            "POST",
            "/job/" + quote(XSS_CATEGORY, safe="/"),
            {"url": self.worker.url("/switch"), "payload": XSS_PAYLOAD, "max_retries": 0, "run_after": 1},
        )
        early = yield self.api(
            "POST",
            "/job/" + quote(XSS_CATEGORY, safe="/"),
            {"url": self.worker.url("/switch"), "payload": "plain", "max_retries": 0},
        )
        self.assertEqual((late["id"], early["id"], late["queue_name"]), (job_id, job_id + 1, "console-q"))
        yield wait_until(lambda: len(self.worker.deliveries) == 2, 15, message="the first two deliveries")
        self.assertEqual(self.worker.ids(), [job_id + 1, job_id])
        late_failure, early_failure = failure_id + 1, failure_id

        # The failure log, reached from the queues page: by failure, then by creation.
        yield browser.click("#nav-queues")
        yield browser.click(self.queue_row("console-q") + " a.failures-link")
        yield browser.wait_text("#failed-body", str(job_id), timeout=15)
        shown = yield self.failures()
        self.assertEqual(
            shown[0],
            {
                "id": str(late_failure),
                "jobId": str(job_id),
                "failure": str(late_failure),
                "job": str(job_id),
                "category": XSS_CATEGORY,
                "url": self.worker.url("/switch"),
                "status": "failure",
                "code": "200",
                "message": "try again",
            },
        )
        self.assertEqual([(f["failure"], f["job"]) for f in shown], [
            (str(late_failure), str(job_id)), (str(early_failure), str(job_id + 1))
        ])
        yield browser.select("#failed-order", "created")
        yield wait_until(
            lambda: self.failures().addCallback(
                lambda fs: [f["failure"] for f in fs] == [str(early_failure), str(late_failure)]
            ),
            10,
            message="the failure log by creation",
        )
        yield self.screenshot("console-failures.png")

        # Deleting one entry from the list.
        yield browser.click(f"#failed-body tr[data-id={css_string(str(early_failure))}] button.delete")
        yield self.confirm()
        yield wait_until(
            lambda: self.failures().addCallback(lambda fs: [f["failure"] for f in fs] == [str(late_failure)]),
            10,
            message="the deleted entry to go",
        )
        yield self.api("GET", f"/queue/console-q/failed/{early_failure}", expect=404)
        failure_id = late_failure

        # Its detail: the worker's result and the payload, digit for digit.
        yield browser.click(f"#failed-body a[href$={css_string('/' + str(failure_id))}]")
        yield browser.wait_text("#failure-message", "try again")
        self.assertEqual((yield browser.text("#failure-id")), str(failure_id))
        self.assertEqual((yield browser.text("#failure-job-id")), str(job_id))
        self.assertEqual((yield browser.text("#failure-status")), "failure")
        self.assertEqual((yield browser.text("#failure-code")), "200")
        self.assertEqual((yield browser.text("#failure-category")), XSS_CATEGORY)
        payload = yield browser.text("#failure-detail pre.payload")
        self.assertIn('"big": 12345678901234567890', payload)
        self.assertIn('"html": "<script>window.__xss=2</script>"', payload)
        yield self.screenshot("console-failure-detail.png")

        # Retry from the console; this time the worker succeeds.
        self.worker.failing = False
        yield browser.click("#failure-retry")
        yield self.confirm()
        new_id = job_id + 2
        yield browser.wait_text("#retried h2", str(new_id))
        self.assertEqual((yield browser.text("#retried-job-id")), str(new_id))
        yield wait_until(lambda: len(self.worker.deliveries) == 3, 15, message="the retried delivery")
        delivery = self.worker.deliveries[2]
        self.assertEqual(delivery.headers["x-fireworq-job-id"], str(new_id))
        self.assertEqual(delivery.headers["x-fireworq-attempt"], "1")
        self.assertEqual(json.loads(delivery.body), XSS_PAYLOAD)

        def succeeded() -> Any:
            d = self.server.call("GET", "/queue/console-q/stats")
            d.addCallback(lambda r: r[1]["total_successes"] == 1)
            return d

        yield wait_until(succeeded, 15, message="the retried job to succeed")
        log = yield self.api("GET", "/queue/console-q/failed")
        self.assertEqual(log["failed_jobs"], [])

        # The console agrees: an empty log, and the queue's counters.
        yield browser.click("h1 .sub a[href$='/failed']")
        yield browser.wait_text("#failed-body", "The failure log is empty")
        yield browser.click("#nav-queues")
        shown: Dict[str, Any] = {}

        def counters() -> Any:
            d = self.rows("#queues-body")
            d.addCallback(lambda rs: [r["cells"][6:10] for r in rs if r["cells"][0] == "console-q"])
            d.addCallback(lambda cells: shown.update(cells=cells) or cells == [["3", "1", "2", "2"]])
            return d

        yield wait_until(
            counters,
            10,
            message=lambda: f"the queue's pushes, successes, failures, permanent failures: {shown}",
        )
        yield self.screenshot("console-queues.png")
        yield self.assert_no_script_ran()

    @inlineCallbacks
    def test_jobs_pages_and_management(self):
        """
        Job lists page and order as the API does, show exact ids and delete
        jobs; queues are edited and deleted, routings changed and deleted,
        all through the console; a queue name that is markup stays text.
        """
        browser = self.browser
        yield browser.get(self.server.url("/ui/"))
        yield browser.wait_text("#queues-body", "default")

        # A queue defined, then edited (throttled) in the console.
        yield self.define_queue_in_form("mailer", "3")
        row = self.queue_row("mailer")
        yield browser.wait_for(row)
        yield browser.click(row + " button.edit")
        self.assertEqual((yield browser.execute("return document.querySelector('#queue-name').readOnly")), True)
        yield self.define_queue_in_form("mailer", "7", rate="2.5", burst="4")
        yield browser.wait_text(row, "2.5/s, burst 4")
        definition = yield self.api("GET", "/queue/mailer")
        self.assertEqual(
            (definition["max_workers"], definition["max_dispatches_per_second"], definition["max_burst_size"]),
            (7, 2.5, 4),
        )
        # And one whose name is markup.
        yield self.define_queue_in_form(XSS_QUEUE, "1")
        xss_row = self.queue_row(XSS_QUEUE)
        yield browser.wait_for(xss_row)
        self.assertEqual((yield browser.text(xss_row + " td.name")), XSS_QUEUE)
        yield self.api("GET", "/queue/" + quote(XSS_QUEUE, safe=""))

        # 25 deferred jobs, due one second apart, with ids above 2^53.
        first = TWO_53 + 1
        raise_ids(self.sqlite_path, "mailer", first, 1)
        yield self.api("PUT", "/routing/mail/send", {"queue_name": "mailer"})
        jobs = [
            {"url": self.worker.url("/success"), "run_after": 3600 + i, "payload": {"n": i}}
            for i in range(25)
        ]
        pushed = yield self.api("POST", "/jobs/mail/send", jobs)
        ids = [str(job["id"]) for job in pushed]
        self.assertEqual(ids, [str(first + i) for i in range(25)])

        # Deferred tab, 20 per page, latest next try first.
        yield browser.click(row + " td a.queue-link")
        yield browser.wait_text("#jobs-body", "No waiting jobs")
        yield browser.click("#tab-deferred")
        yield browser.select("#page-limit", "20")
        yield browser.wait_text("#page-number", "page 1")
        yield wait_until(lambda: self.rows("#jobs-body").addCallback(lambda rs: len(rs) == 20))
        page1 = yield self.rows("#jobs-body")
        self.assertEqual([r["id"] for r in page1], ids[::-1][:20])
        self.assertEqual([r["cells"][0] for r in page1], ids[::-1][:20])
        self.assertEqual({r["cells"][1] for r in page1}, {"mail/send"})
        yield self.screenshot("console-jobs.png")
        yield browser.click("#page-next")
        yield browser.wait_text("#page-number", "page 2")
        yield wait_until(lambda: self.rows("#jobs-body").addCallback(lambda rs: len(rs) == 5))
        page2 = yield self.rows("#jobs-body")
        self.assertEqual([r["id"] for r in page2], ids[::-1][20:])
        disabled = yield browser.execute("return document.querySelector('#page-next').disabled")
        self.assertTrue(disabled)
        yield browser.click("#page-prev")
        yield browser.wait_text("#page-number", "page 1")
        yield browser.select("#jobs-order", "asc")
        yield wait_until(
            lambda: self.rows("#jobs-body").addCallback(lambda rs: [r["id"] for r in rs] == ids[:20]),
            10,
            message="the first 20 jobs in ascending order",
        )

        # One job's detail, then deleting it.
        yield browser.click(f"#jobs-body a[href$={css_string('/' + ids[0])}]")
        yield browser.wait_text("#job-id", ids[0])
        payload = yield browser.text("#job-detail pre.payload")
        self.assertEqual(json.loads(payload), {"n": 0})
        yield browser.click("#job-delete")
        yield self.confirm()
        yield browser.wait_text("#flash", f"Deleted job {ids[0]}")
        yield self.api("GET", f"/queue/mailer/job/{ids[0]}", expect=404)
        yield self.api("GET", f"/queue/mailer/job/{ids[1]}")

        # The routing: changed to the other queue, then deleted.
        yield browser.click("#nav-routings")
        routing_row = f"#routings-body tr[data-category={css_string('mail/send')}]"
        yield browser.wait_for(routing_row)
        yield browser.click(routing_row + " button.change")
        yield browser.select(routing_row + " select.change-queue", XSS_QUEUE)
        yield browser.click(routing_row + " button.save")
        yield browser.wait_text(routing_row, XSS_QUEUE)
        self.assertEqual((yield self.api("GET", "/routing/mail/send"))["queue_name"], XSS_QUEUE)
        yield browser.click(routing_row + " button.delete")
        yield self.confirm()
        yield browser.wait_text("#routings-body", "No routings")
        yield self.api("GET", "/routing/mail/send", expect=404)

        # The queue: deleted; its jobs stay stored.
        yield browser.click("#nav-queues")
        yield browser.click(xss_row + " button.delete")
        yield self.confirm()
        yield wait_until(
            lambda: browser.execute("return !document.querySelector(arguments[0])", xss_row),
            10,
            message="the deleted queue's row to go",
        )
        yield self.api("GET", "/queue/" + quote(XSS_QUEUE, safe=""), expect=404)
        yield self.api("GET", "/queue/mailer")
        yield self.assert_no_script_ran()

    @inlineCallbacks
    def test_pause_purge_resume_and_cancel(self):
        """
        A queue paused, purged and resumed from its row, and a job being
        delivered canceled from its page: the worker's connection is
        aborted and the job is gone.
        """
        browser = self.browser
        yield browser.get(self.server.url("/ui/"))
        row = self.queue_row("default")
        yield browser.wait_for(row)
        yield browser.click(row + " button.pause")
        yield browser.wait_for(row + " span.paused")
        self.assertIs((yield self.api("GET", "/queue/default")).get("paused"), True)
        for _ in range(3):
            yield self.api("POST", "/job/c", {"url": self.worker.url("/success")})
        yield browser.click(row + " button.purge")
        yield self.confirm()
        yield browser.wait_text("#flash", "Purged 3 job(s) of queue default")
        yield browser.click(row + " button.resume")
        yield wait_until(
            lambda: browser.execute("return !document.querySelector(arguments[0])", row + " span.paused"),
            10, message="the paused badge to go",
        )
        self.assertNotIn("paused", (yield self.api("GET", "/queue/default")))
        self.assertEqual(self.worker.deliveries, [])

        job = yield self.api("POST", "/job/c", {"url": self.worker.url("/hang"), "timeout": 30, "max_retries": 2})
        yield wait_until(lambda: len(self.worker.deliveries) >= 1, 10, message="the delivery")
        yield browser.get(self.server.url(f"/ui/#/queue/default/job/{job['id']}"))
        yield browser.wait_text("#job-delete", "Cancel job")
        yield browser.click("#job-delete")
        yield self.confirm()
        yield browser.wait_text("#flash", f"Canceling job {job['id']}")
        yield wait_until(lambda: job["id"] in self.worker.lost, 5, message="the delivery aborted")
        yield wait_until(
            lambda: self.server.call("GET", f"/queue/default/job/{job['id']}").addCallback(lambda r: r[0] == 404),
            5, message="the canceled job deleted",
        )
        self.assertEqual(len(self.worker.deliveries), 1)
        yield self.assert_no_script_ran()

    @inlineCallbacks
    def test_lossless_json(self):
        """The console's parser keeps ids and big numbers exact, where JSON.parse does not."""
        yield self.browser.get(self.server.url("/ui/"))
        yield self.browser.wait_for("#queues-body tr")
        text = (
            '{"id":9007199254740993,"job_id":1,"n":9007199254740993,"f":2.5,'
            '"payload":{"a":1.0,"b":12345678901234567890,"id":5,"s":"\\u00e9\\"x"},'
            '"list":[-9007199254740993,true,null,"__proto__"],"__proto__":{"polluted":1}}'
        )
        result: Dict[str, Any] = yield self.browser.execute(
            "const X = window.FireworqJSON, v = X.parse(arguments[0]);"
            "let bad = []; for (const t of ['', '{', '[1,]', '{\"a\":1,}', '01', '1 2', '\"\\u0001\"', 'nul']) {"
            "  try { X.parse(t); } catch (e) { if (e instanceof SyntaxError) continue; } bad.push(t); }"
            "return {id: v.id, idType: typeof v.id, jobId: v.job_id, n: String(v.n), nNumber: Number(v.n),"
            "  f: v.f, payload: X.stringify(v.payload), s: v.payload.s, list: X.stringify(v.list),"
            "  polluted: ({}).polluted === undefined ? null : 1, protoKey: Object.keys(v).includes('__proto__'),"
            "  native: String(JSON.parse(arguments[0]).id), bad: bad}",
            text,
        )
        self.assertEqual(
            result,
            {
                "id": "9007199254740993",
                "idType": "string",
                "jobId": "1",
                "n": "9007199254740993",
                "nNumber": 9007199254740992,
                "f": 2.5,
                "payload": '{"a":1.0,"b":12345678901234567890,"id":5,"s":"é\\"x"}',
                "s": 'é"x',
                "list": '[-9007199254740993,true,null,"__proto__"]',
                "polluted": None,
                "protoKey": True,
                # What the console would show with JSON.parse: the wrong id.
                "native": "9007199254740992",
                "bad": [],
            },
        )


class ConsolePushFormTests(ConsoleCase):
    """The push form and the job options on job views (issue 12)."""

    @inlineCallbacks
    def test_push_form_with_options(self):
        browser = self.browser
        markup = '<img src=x onerror="window.__xss=1">'
        yield browser.get(self.server.url("/ui/#/push"))
        yield browser.wait_for("#push-form")
        # A dot segment is part of the category, not a path step to resolve.
        yield browser.fill("#push-category", "reports/../daily")
        yield browser.fill("#push-url", self.worker.url("/success"))
        yield browser.fill("#push-payload", '{"day": 26, "big": 12345678901234567890}')
        yield browser.fill("#push-run-after", "3600")
        yield browser.fill("#push-name", markup)
        yield browser.fill("#push-priority", "-7")
        yield browser.fill("#push-retry-backoff", "2.5")
        yield browser.fill("#push-idempotency-key", "report-26")
        yield browser.fill("#push-tags", '{"team": "ops"}')
        yield browser.fill("#push-headers", '{"X-Trace": "abc"}')
        yield browser.click("#push-retry-jitter")
        yield browser.execute("document.querySelector('#push-success').value = '2xx'")
        yield browser.click("#push-submit")
        yield browser.wait_for("#push-job-link")
        job_id = int((yield browser.text("#push-job-link")))
        job = yield self.api("GET", f"/queue/default/job/{job_id}")
        self.assertEqual(
            {k: job[k] for k in ("name", "priority", "retry_backoff", "retry_jitter", "success", "idempotency_key",
                                 "tags", "headers")},
            {"name": markup, "priority": -7, "retry_backoff": 2.5, "retry_jitter": True, "success": "2xx",
             "idempotency_key": "report-26", "tags": {"team": "ops"}, "headers": {"X-Trace": "abc"}},
        )
        self.assertEqual(job["payload"], {"day": 26, "big": 12345678901234567890})
        self.assertEqual(job["category"], "reports/../daily")
        # The job's page shows its options as text.
        yield browser.click("#push-job-link")
        yield browser.wait_for("#job-name")
        self.assertEqual((yield browser.text("#job-name")), markup)
        self.assertEqual((yield browser.text("#job-priority")), "-7")
        self.assertIn("any 2xx", (yield browser.text("#job-success")))
        self.assertIn("X-Trace", (yield browser.text("#job-headers")))
        self.assertEqual((yield browser.text("#job-idempotency-key")), "report-26")
        yield self.assert_no_script_ran()
        yield self.screenshot("job-with-options.png")
        # A bad option is refused by the server, and the console says why.
        yield browser.get(self.server.url("/ui/#/push"))
        yield browser.wait_for("#push-form")
        yield browser.fill("#push-category", "reports/daily")
        yield browser.fill("#push-url", self.worker.url("/success"))
        yield browser.fill("#push-priority", "101")
        yield browser.click("#push-submit")
        yield browser.wait_text("#flash", "priority")
