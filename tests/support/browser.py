"""
A real headless Chromium for tests, driven over the W3C WebDriver protocol.

Debian's ``chromedriver`` (package ``chromium-driver``) runs in a child
process on a free loopback port; this module talks to it with treq, so every
browser command is a Deferred and the test's reactor keeps running — the
in-process worker (L{tests.support.worker.Worker}) answers deliveries while
the browser waits.  No Python package beyond the project's own dependencies
is needed.

Usage::

    browser = yield Browser.launch(workdir)      # fails with BrowserUnavailable
    self.addCleanup(browser.quit)
    yield browser.get(server.url("/ui/"))
    yield browser.fill("#queue-name", "jobs")
    yield browser.click("#queue-submit")
    yield browser.wait_text("#queues-body", "jobs")

``tests/support/ensure-browser`` installs the two binaries when they are
missing.  ``FIREWORQ_CHROMIUM`` and ``FIREWORQ_CHROMEDRIVER`` may name other
ones; ``FIREWORQ_SKIP_BROWSER_TESTS=1`` is the explicit opt-out that
L{skip_reason} reports.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from typing import Any, Dict, List, Optional

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.client import HTTPConnectionPool

from tests.support.polling import wait_until
from tests.support.server import free_port

#: The W3C key of an element reference in WebDriver answers.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

#: Flags for a quiet, offline, sandbox-free headless Chromium.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--lang=en-US",
]

#: Where Debian puts the browser: the real binary first (the /usr/bin
#: launcher is a shell script that only adds flags we pass anyway).
CHROMIUM_CANDIDATES = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser"]
CHROMEDRIVER_CANDIDATES = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]

_HINT = (
    "run tests/support/ensure-browser (installs Debian's chromium and chromium-driver), "
    "point FIREWORQ_CHROMIUM / FIREWORQ_CHROMEDRIVER at the binaries, "
    "or set FIREWORQ_SKIP_BROWSER_TESTS=1 to skip the browser tests"
)


class BrowserUnavailable(AssertionError):
    """Chromium or chromedriver is missing or would not start."""


class WebDriverError(AssertionError):
    """A WebDriver command failed; ``error`` is the protocol's error code."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


def skip_reason() -> Optional[str]:
    """Why browser tests skip: only the explicit opt-out, else None."""
    if os.environ.get("FIREWORQ_SKIP_BROWSER_TESTS") == "1":
        return "FIREWORQ_SKIP_BROWSER_TESTS=1: the console's browser tests are switched off"
    return None


def _find(variable: str, candidates: List[str], name: str) -> str:
    explicit = os.environ.get(variable)
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise BrowserUnavailable(f"{variable}={explicit} is not an executable file; {_HINT}")
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return found
    raise BrowserUnavailable(f"{name} is not installed; {_HINT}")


def find_chromium() -> str:
    """The Chromium binary to run."""
    return _find("FIREWORQ_CHROMIUM", CHROMIUM_CANDIDATES, "chromium")


def find_chromedriver() -> str:
    """The chromedriver binary to run."""
    return _find("FIREWORQ_CHROMEDRIVER", CHROMEDRIVER_CANDIDATES, "chromedriver")


class Browser:
    """One headless Chromium session behind its own chromedriver process."""

    def __init__(self, driver: subprocess.Popen, port: int, log_path: str) -> None:
        self.driver = driver
        self.port = port
        self.log_path = log_path
        self.session: Optional[str] = None
        # Our own pool, closed by quit(), so no connection outlives the test.
        self.pool = HTTPConnectionPool(reactor, persistent=True)

    # ------------------------------------------------------------- life

    @classmethod
    @inlineCallbacks
    def launch(cls, workdir: str, width: int = 1366, height: int = 860, timeout: float = 30.0):
        """
        Start chromedriver and a Chromium session with a window of
        ``width`` x ``height`` CSS pixels; fire with the L{Browser}.

        @raise BrowserUnavailable: when a binary is missing or does not start
            within ``timeout`` seconds (the message says why and what to do).
        """
        chromium = find_chromium()
        chromedriver = find_chromedriver()
        os.makedirs(workdir, exist_ok=True)
        port = free_port()
        log_path = os.path.join(workdir, "chromedriver.log")
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [chromedriver, f"--port={port}", f"--log-path={log_path}", "--allowed-ips=127.0.0.1"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        browser = cls(process, port, log_path)
        try:
            yield wait_until(
                browser._driver_ready, timeout, 0.05, lambda: "chromedriver to answer:\n" + browser.log_tail()
            )
            if browser.driver.poll() is not None:
                raise BrowserUnavailable(
                    f"chromedriver ({chromedriver}) exited with {browser.driver.returncode}:\n"
                    f"{browser.log_tail()}\n{_HINT}"
                )
            profile = os.path.join(workdir, "chromium-profile")
            capabilities = {
                "capabilities": {
                    "alwaysMatch": {
                        "browserName": "chrome",
                        "pageLoadStrategy": "normal",
                        "goog:chromeOptions": {
                            "binary": chromium,
                            "args": CHROMIUM_FLAGS
                            + [f"--user-data-dir={profile}", f"--window-size={width},{height}"],
                        },
                    }
                }
            }
            try:
                value = yield browser._http("POST", "/session", capabilities, timeout=timeout)
            except WebDriverError as e:
                raise BrowserUnavailable(f"Chromium ({chromium}) did not start: {e}\n{browser.log_tail()}\n{_HINT}")
            browser.session = value["sessionId"]
            yield browser.command("POST", "/timeouts", {"implicit": 0, "pageLoad": 20000, "script": 10000})
        except BaseException:
            browser.kill_driver()
            yield browser.pool.closeCachedConnections()
            raise
        return browser

    def _driver_ready(self) -> Any:
        if self.driver.poll() is not None:
            return "exited"
        d = treq.get(f"http://127.0.0.1:{self.port}/status", timeout=2, pool=self.pool)
        d.addCallback(treq.json_content)
        d.addCallback(lambda body: body.get("value", {}).get("ready"))
        return d

    def log_tail(self, size: int = 3000) -> str:
        """The end of chromedriver's log."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    @inlineCallbacks
    def quit(self):
        """End the session (closing Chromium) and stop chromedriver."""
        try:
            if self.session is not None:
                yield self._http("DELETE", f"/session/{self.session}", timeout=10)
        except Exception:
            pass
        finally:
            self.session = None
            self.kill_driver()
            yield self.pool.closeCachedConnections()

    def kill_driver(self) -> None:
        """Stop the chromedriver process group (Chromium included), and reap."""
        if self.driver.poll() is None:
            try:
                os.killpg(self.driver.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.driver.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.driver.pid, signal.SIGKILL)
                self.driver.wait(5)
        else:
            # chromedriver is gone; its browser children may linger in the group.
            try:
                os.killpg(self.driver.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # ---------------------------------------------------------- protocol

    @inlineCallbacks
    def _http(self, method: str, path: str, body: Any = None, timeout: float = 30.0):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        response = yield treq.request(
            method,
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            headers={b"Content-Type": [b"application/json"]},
            timeout=timeout,
            pool=self.pool,
        )
        text = yield response.content()
        try:
            answer = json.loads(text)
        except ValueError:
            raise WebDriverError("invalid answer", f"{response.code} {text[:500]!r}")
        value = answer.get("value") if isinstance(answer, dict) else None
        if response.code >= 400:
            value = value or {}
            raise WebDriverError(value.get("error", str(response.code)), value.get("message", "")[:2000])
        return value

    def command(self, method: str, path: str, body: Any = None) -> Deferred:
        """A command of the current session (``path`` below /session/<id>)."""
        assert self.session is not None, "the browser is not running"
        return self._http(method, f"/session/{self.session}{path}", body)

    # ------------------------------------------------------------ pages

    def get(self, url: str) -> Deferred:
        """Load ``url`` and wait for its load event."""
        return self.command("POST", "/url", {"url": url})

    def execute(self, script: str, *args: Any) -> Deferred:
        """Run ``script`` (a function body; ``arguments`` holds ``args``) in the page."""
        return self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def execute_async(self, script: str, *args: Any) -> Deferred:
        """Run an async script; it calls ``arguments[arguments.length - 1]`` with its result."""
        return self.command("POST", "/execute/async", {"script": script, "args": list(args)})

    @inlineCallbacks
    def find(self, css: str):
        """The element reference of the first match of ``css`` (WebDriverError if none)."""
        value = yield self.command("POST", "/element", {"using": "css selector", "value": css})
        return value[ELEMENT]

    @inlineCallbacks
    def find_all(self, css: str):
        """Element references of every match of ``css``."""
        values = yield self.command("POST", "/elements", {"using": "css selector", "value": css})
        return [v[ELEMENT] for v in values]

    @inlineCallbacks
    def text(self, css: str):
        """The rendered text of the first match of ``css``."""
        element = yield self.find(css)
        value = yield self.command("GET", f"/element/{element}/text")
        return value

    def click(self, css: str, timeout: float = 10.0) -> Deferred:
        """
        Click the first match of ``css`` as a user would (scrolled into
        view), waiting until there is one; a click that fails because the
        page re-rendered the element or something covers it is tried again.
        """

        @inlineCallbacks
        def attempt():
            element = yield self.find(css)
            yield self.command("POST", f"/element/{element}/click", {})
            return True

        return wait_until(attempt, timeout, 0.05, f"a click on {css!r}")

    def fill(self, css: str, text: str, timeout: float = 10.0) -> Deferred:
        """Clear the input matched by ``css`` (waiting for it) and type ``text`` into it."""

        @inlineCallbacks
        def attempt():
            element = yield self.find(css)
            yield self.command("POST", f"/element/{element}/clear", {})
            yield self.command("POST", f"/element/{element}/value", {"text": text})
            return True

        return wait_until(attempt, timeout, 0.05, f"typing into {css!r}")

    def select(self, css: str, value: str) -> Deferred:
        """Choose the option of value ``value`` in the select matched by ``css``."""
        return self.click(f"{css} option[value={json.dumps(value)}]")

    def move_mouse_away(self) -> Deferred:
        """Put the pointer in the page's top left corner (so nothing shows hovered)."""
        move = {"type": "pointerMove", "duration": 0, "x": 0, "y": 0, "origin": "viewport"}
        return self.command(
            "POST",
            "/actions",
            {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [move]}]},
        )

    @inlineCallbacks
    def screenshot(self, path: str):
        """Save a PNG of the viewport to ``path``."""
        data = yield self.command("GET", "/screenshot")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    # ---------------------------------------------------------- waiting

    def wait_for(self, css: str, timeout: float = 10.0) -> Deferred:
        """Wait until ``css`` matches an element; fire with its reference."""
        return wait_until(lambda: self.find(css), timeout, 0.05, f"an element matching {css!r}")

    def wait_text(self, css: str, expected: str, timeout: float = 10.0) -> Deferred:
        """Wait until the text of ``css`` contains ``expected``; fire with the text."""
        last: Dict[str, Any] = {}

        def check() -> Deferred:
            d = self.text(css)
            d.addCallback(lambda t: last.update(text=t) or (expected in t and t))
            return d

        return wait_until(
            check,
            timeout,
            0.05,
            lambda: f"{expected!r} in the text of {css!r} (last text: {last.get('text')!r})",
        )

    def wait_js(self, script: str, timeout: float = 10.0, message: str = "") -> Deferred:
        """Wait until ``script`` (a function body) returns something truthy; fire with it."""
        return wait_until(lambda: self.execute(script), timeout, 0.05, message or f"script {script!r}")
