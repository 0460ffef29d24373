"""
Crash safety: ``kill -9`` the server at random moments under load.

Pushers push jobs (one at a time and in batches), each payload carrying a
unique token, to a worker that answers success or failure (the job is then
retried) after a short delay, so that deliveries are in flight when the
server dies.  The server is killed with SIGKILL several times at moments
drawn from a seeded random generator and restarted on the same database
each time.  At the end, once every job has finished:

- every job whose push was answered 200 was delivered at least once;
- no delivery carried a token that was not pushed, or whose push was
  answered with an error or never reached the server (connection refused);
  a push that got no answer (the server died during it) may or may not have
  been stored -- either way is fine;
- the failure log holds only tokens of pushes that may have been stored;
- the queue is empty: nothing is stuck as grabbed.

L{CrashSafetyMixin} holds the test; each store is a subclass that provides
``server_settings``: L{SQLiteCrashSafetyTests} and L{MySQLCrashSafetyTests}
(a throwaway MariaDB from tests/support/mariadb.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from typing import Any, Dict, List, Set

import treq
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.error import ConnectionRefusedError
from twisted.python import log
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.polling import pause, wait_until
from tests.support.server import FireworqProcess


class CrashWorker:
    """
    A worker on a loopback port.  It records the token and attempt of every
    delivery and answers after a few milliseconds: failure for about a third
    of the attempts (decided by a hash of token and attempt, so the same
    delivery always gets the same answer), success otherwise.
    """

    def __init__(self) -> None:
        self.deliveries: List[Dict[str, Any]] = []
        self.tokens: Set[str] = set()
        self.timers: List[Any] = []
        self.open_requests = 0
        self._port: Any = None

    def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        worker = self

        class _Resource(Resource):
            isLeaf = True

            def render_POST(self, request: Any) -> Any:
                return worker.deliver(request)

        site = Site(_Resource())
        site.noisy = False
        self._port = reactor.listenTCP(0, site, interface="127.0.0.1")

    def url(self, path: str = "/work") -> str:
        """The worker's URL."""
        return f"http://127.0.0.1:{self._port.getHost().port}{path}"

    @staticmethod
    def outcome(token: str, attempt: str) -> str:
        """The answer to a delivery: deterministic per (token, attempt)."""
        digest = hashlib.sha256(f"{token}/{attempt}".encode()).digest()
        return "failure" if digest[0] % 3 == 0 else "success"

    def deliver(self, request: Any) -> Any:
        body = request.content.read()
        try:
            token = json.loads(body)["token"]
        except (ValueError, KeyError, TypeError):
            token = f"<unreadable {body[:80]!r}>"
        attempt = (request.getHeader(b"x-fireworq-attempt") or b"?").decode("ascii", "replace")
        self.deliveries.append({"token": token, "attempt": attempt})
        self.tokens.add(token)
        status = self.outcome(token, attempt)
        gone = [False]
        self.open_requests += 1

        def finished(_: object) -> None:
            gone[0] = True
            self.open_requests -= 1

        request.notifyFinish().addBoth(finished)

        def answer() -> None:
            if gone[0]:
                return
            request.setHeader(b"Content-Type", b"application/json")
            request.write(json.dumps({"status": status, "message": "crash test"}).encode())
            request.finish()

        delay = hashlib.sha256(token.encode()).digest()[1] / 255 * 0.03
        self.timers.append(reactor.callLater(delay, answer))
        return NOT_DONE_YET

    def stop(self) -> Any:
        """Forget pending answers and stop listening."""
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        return self._port.stopListening()


class CrashSafetyMixin:
    """
    The crash test; a L{TestCase} subclass supplies ``server_settings``.

    @ivar seed: seeds the random kill moments and push shapes.
    @ivar kills: how many times the server is killed.
    """

    timeout = 150
    seed = 20240607
    kills = 4
    pushers = 6
    #: Seconds between restarts and the next kill, drawn uniformly.
    load_seconds = (0.4, 1.4)
    #: Seconds to wait, after the last restart, for every job to finish.
    drain_seconds = 40.0

    def server_settings(self) -> Dict[str, str]:
        """FIREWORQ_* settings (without the prefix) of the store under test."""
        raise NotImplementedError()

    def setUp(self) -> None:
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.worker = CrashWorker()
        self.worker.start()
        self.addCleanup(self.worker.stop)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.rng = random.Random(self.seed)
        #: Tokens by what their push got back.
        self.attempted: Set[str] = set()
        self.accepted: Set[str] = set()
        self.unanswered: Set[str] = set()
        self.refused: Set[str] = set()
        self.errors: List[str] = []
        self.stopping = False

    @inlineCallbacks
    def push_loop(self, server: FireworqProcess, index: int):
        """Push until told to stop; classify every token by the answer."""
        number = 0
        while not self.stopping:
            number += 1
            batch = self.rng.random() < 0.25
            count = self.rng.randint(2, 6) if batch else 1
            tokens = [f"p{index}-{number}-{i}" for i in range(count)]
            jobs = [
                {"url": self.worker.url(), "payload": {"token": t}, "max_retries": 3, "retry_delay": 0}
                for t in tokens
            ]
            path, data = ("/jobs/crash", jobs) if batch else ("/job/crash", jobs[0])
            self.attempted.update(tokens)
            try:
                response = yield treq.post(
                    server.url(path), json=data, pool=self.pool, timeout=10
                )
                content = yield response.content()
            except ConnectionRefusedError:
                self.refused.update(tokens)  # never reached the server
                yield pause(0.02)
                continue
            except Exception:
                self.unanswered.update(tokens)  # it died during the push
                continue
            if response.code != 200:
                self.refused.update(tokens)
                if response.code != 503:  # 503: starting up; anything else is a bug
                    self.errors.append(f"{response.code} {content[:300]!r}")
                yield pause(0.02)
                continue
            answer = json.loads(content)
            answers = answer if batch else [answer]
            if [a["payload"]["token"] for a in answers] != tokens:
                self.errors.append(f"the answer does not echo the pushed jobs: {answer!r:.300}")
            self.accepted.update(tokens)

    @inlineCallbacks
    def queue_is_empty(self, server: FireworqProcess):
        """Whether the queue holds no job in any state."""
        for state in ("waiting", "deferred", "grabbed"):
            code, page = yield server.call("GET", f"/queue/default/{state}?limit=1")
            if code != 200 or page["jobs"]:
                return False
        return True

    @inlineCallbacks
    def failure_log_tokens(self, server: FireworqProcess):
        """The tokens of every entry of the failure log."""
        tokens: Set[str] = set()
        cursor = ""
        while True:
            code, page = yield server.call(
                "GET", f"/queue/default/failed?limit=1000&cursor={cursor}"
            )
            self.assertEqual(code, 200, page)
            tokens.update(entry["payload"]["token"] for entry in page["failed_jobs"])
            cursor = page["next_cursor"]
            if not cursor:
                return tokens

    @inlineCallbacks
    def test_kill_9_under_load(self):
        settings = {
            "queue_default": "default",
            "queue_default_polling_interval": "50",
            "queue_default_max_workers": "10",
            "shutdown_timeout": "5",
        }
        settings.update(self.server_settings())
        server = FireworqProcess(self.workdir, settings)
        self.addCleanup(server.kill)
        yield server.start()

        loops = [self.push_loop(server, index) for index in range(self.pushers)]
        for _ in range(self.kills):
            yield pause(self.rng.uniform(*self.load_seconds))
            server.kill()
            if self.rng.random() < 0.5:
                yield pause(self.rng.uniform(0.05, 0.3))  # some pushes find nobody
            yield server.start()
        yield pause(self.rng.uniform(*self.load_seconds))
        self.stopping = True
        yield DeferredList(loops, fireOnOneErrback=True, consumeErrors=True)

        yield wait_until(
            lambda: self.accepted <= self.worker.tokens,
            self.drain_seconds,
            0.1,
            lambda: f"every accepted job to be delivered; missing: "
            f"{sorted(self.accepted - self.worker.tokens)[:20]}",
        )
        yield wait_until(
            lambda: self.queue_is_empty(server),
            self.drain_seconds,
            0.1,
            "every job to finish",
        )

        summary = (
            f"crash test: {self.kills} kills; pushed {len(self.attempted)} jobs: "
            f"{len(self.accepted)} accepted, {len(self.unanswered)} unanswered, "
            f"{len(self.refused)} refused; {len(self.worker.deliveries)} deliveries of "
            f"{len(self.worker.tokens)} jobs ({len(self.unanswered & self.worker.tokens)} "
            f"of the unanswered)"
        )
        log.msg(summary)
        self.assertEqual(self.errors, [], summary)
        self.assertGreater(len(self.accepted), 100, "too little load to mean anything")
        self.assertTrue(self.worker.deliveries)
        may_exist = self.accepted | self.unanswered
        invented = self.worker.tokens - may_exist
        self.assertEqual(
            sorted(invented)[:20],
            [],
            f"deliveries of jobs that were never accepted ({len(invented)}; "
            f"refused pushes: {len(self.refused & invented)})",
        )
        self.assertEqual(sorted(self.accepted - self.worker.tokens), [])
        failed = yield self.failure_log_tokens(server)
        self.assertEqual(sorted(failed - may_exist)[:20], [])
        code, stats = yield server.call("GET", "/queue/default/stats")
        self.assertEqual(code, 200)
        self.assertEqual(stats["outstanding_jobs"], 0)


class SQLiteCrashSafetyTests(CrashSafetyMixin, TestCase):
    """The embedded sqlite store."""

    def server_settings(self) -> Dict[str, str]:
        return {"driver": "sqlite", "sqlite_path": os.path.join(self.workdir, "fireworq.sqlite3")}


class MySQLCrashSafetyTests(CrashSafetyMixin, TestCase):
    """The MySQL store, on a database of the throwaway MariaDB server."""

    def server_settings(self) -> Dict[str, str]:
        from tests.support.mariadb import database_for

        database = database_for(self, "crash")
        # A restarted node takes the queue over once the dead one's lease expires.
        return {"driver": "mysql", "mysql_dsn": database.dsn, "lease_ttl": "1000"}
