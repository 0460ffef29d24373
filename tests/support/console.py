"""
The fixture of the console's browser tests (tests/test_console_*browser.py):
a real server (sqlite, in the test's directory) and a real headless
Chromium (L{tests.support.browser.Browser}).

  - L{open_console}: start both for a test case with the given settings
    (the sign-in tests turn auth on).
  - L{ConsoleCase}: that with the default queue and a L{SwitchWorker}, plus
    the helpers the console pages' tests share (API calls, screenshots,
    the confirmation dialog, the no-markup check, table rows).  It has no
    tests of its own.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from tests.support.browser import Browser, skip_reason
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess
from tests.support.worker import Worker, _WorkerResource


class SwitchWorker(Worker):
    """
    The test worker, plus the path ``/switch``: a failure while ``failing``
    is true, a success after.  (A retried job is a new job whose first try is
    attempt 1 again, so ``/flaky/<n>`` would fail it again.)
    """

    failing = True

    def start(self) -> None:
        worker = self

        class Resource(_WorkerResource):
            def _answer(self, request: Any, path: str, delivery: Any, finished: List[bool]) -> None:
                if path == "/switch":
                    path = "/failure" if worker.failing else "/success"
                super()._answer(request, path, delivery, finished)

        site = Site(Resource(self))
        site.noisy = False
        self._port = self.reactor.listenTCP(0, site, interface="127.0.0.1")


def css_string(text: str) -> str:
    """``text`` as a quoted CSS string (for attribute selectors)."""
    return json.dumps(text)


@inlineCallbacks
def open_console(case: TestCase, settings: Dict[str, str]) -> Any:
    """
    Make ``case.workdir``, start a server there (sqlite file
    ``fireworq.sqlite3``, a 5 s shutdown timeout, then ``settings``) as
    ``case.server`` and a browser as ``case.browser``; both end with the test.
    """
    case.workdir = os.path.abspath(case.mktemp())
    os.makedirs(case.workdir)
    settings = {
        "driver": "sqlite",
        "sqlite_path": os.path.join(case.workdir, "fireworq.sqlite3"),
        "shutdown_timeout": "5",
        **settings,
    }
    case.server = FireworqProcess(case.workdir, settings)
    case.addCleanup(case.server.kill)
    yield case.server.start()
    case.browser = yield Browser.launch(os.path.join(case.workdir, "browser"))
    case.addCleanup(case.browser.quit)


class ConsoleCase(TestCase):
    """A server with the default queue, a L{SwitchWorker} and a browser; the shared helpers."""

    timeout = 120
    skip = skip_reason()

    @inlineCallbacks
    def setUp(self):
        self.worker = SwitchWorker()
        self.worker.start()
        self.addCleanup(self.worker.stop)
        yield open_console(self, {"queue_default": "default", "queue_default_polling_interval": "100"})
        self.sqlite_path = os.path.join(self.workdir, "fireworq.sqlite3")
        self.shots = os.environ.get("FIREWORQ_CONSOLE_SCREENSHOTS") or os.path.join(self.workdir, "screenshots")

    @inlineCallbacks
    def api(self, method: str, path: str, body: Any = None, expect: int = 200):
        """Call the API and check the status; fire with the decoded body."""
        code, value = yield self.server.call(method, path, body)
        self.assertEqual(code, expect, f"{method} {path}: {value}")
        return value

    @inlineCallbacks
    def screenshot(self, name: str):
        """Dismiss the notices (they were checked already) and save a screenshot."""
        yield self.browser.execute("document.querySelectorAll('#flash .close').forEach(b => b.click())")
        yield self.browser.move_mouse_away()
        yield self.browser.screenshot(os.path.join(self.shots, name))

    @inlineCallbacks
    def confirm(self):
        """Accept the console's confirmation dialog."""
        yield self.browser.wait_for("#modal-confirm")
        yield self.browser.click("#modal-confirm")
        yield wait_until(lambda: self.browser.execute("return !document.querySelector('#modal-confirm')"))

    @inlineCallbacks
    def assert_no_script_ran(self):
        """No data shown was taken as markup: no handler ran, no image was made."""
        state = yield self.browser.execute(
            "return {xss: window.__xss === undefined ? null : window.__xss,"
            " images: document.querySelectorAll('img').length}"
        )
        self.assertEqual(state, {"xss": None, "images": 0})

    def queue_row(self, name: str) -> str:
        """The selector of queue ``name``'s row on the queues page."""
        return f"#queues-body tr[data-queue={css_string(name)}]"

    @inlineCallbacks
    def rows(self, tbody: str) -> Any:
        """The data-id and the cells' text of each row of ``tbody``."""
        value = yield self.browser.execute(
            "return Array.from(document.querySelectorAll(arguments[0] + ' tr')).map("
            "  tr => ({id: tr.dataset.id || null, jobId: tr.dataset.jobId || null,"
            "          cells: Array.from(tr.cells).map(td => td.textContent)}))",
            tbody,
        )
        return value
