"""
What an idle server keeps out of memory (docs/performance.md, "Memory"):
modules that only some feature needs are imported when that feature is
first used -- and then the feature works.

Each test runs a real ``twistd -n fireworq`` whose start-up wrapper writes
the names of the modules it has loaded to a file when it gets SIGUSR2, so
what is checked is the server process itself, not this test process (which
has imported everything long ago).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, FrozenSet, List, Optional

from twisted.internet.defer import inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.mysql_cases import MySQLServerMixin
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess

#: Run instead of twistd's usual command line: the first argument is where
#: to write the loaded modules' names on SIGUSR2; then twistd runs as ever.
DUMPING_TWISTD = """
import os, signal, sys
target = sys.argv.pop(1)
def dump(signum, frame):
    names = sorted(name for name, module in list(sys.modules.items()) if module is not None)
    with open(target + ".tmp", "w") as f:
        f.write("\\n".join(names))
    os.replace(target + ".tmp", target)
signal.signal(signal.SIGUSR2, dump)
from twisted.scripts.twistd import run
run()
"""

#: Not loaded by an idle server of any store, and what needs each.
IDLE_ABSENT = {
    "OpenSSL": "TLS (an https:// delivery or an ssl: bind)",
    "cryptography": "TLS",
    "cronsim": "the first schedule",
    "zoneinfo": "the first schedule",
    "importlib.resources": "the first GET /openapi.yaml",
    "fireworq.server.workers": "--workers N",
}

#: Loaded once each feature above (but TLS) has been used.
FIRST_USE = ("cronsim", "zoneinfo", "importlib.resources")


class DumpingProcess(FireworqProcess):
    """
    A server process that writes its loaded modules' names on SIGUSR2
    (L{FireworqProcess.spawn} with L{DUMPING_TWISTD} for twistd's command).
    """

    def command(self) -> List[str]:
        return [sys.executable, "-c", DUMPING_TWISTD, self.modules_path]

    def spawn(self, extra_args: Optional[list] = None) -> None:
        self.modules_path = os.path.join(self.workdir, f"modules-{id(self)}.txt")
        super().spawn(extra_args)

    @inlineCallbacks
    def modules(self) -> Any:
        """Fire with the names of the modules the server has loaded now."""
        if os.path.exists(self.modules_path):
            os.remove(self.modules_path)
        self.signal(signal.SIGUSR2)
        yield wait_until(lambda: os.path.exists(self.modules_path), 15, message="the module list")
        with open(self.modules_path) as f:
            return frozenset(f.read().split())


class IdleImportsTests(ServerTestCase):
    """An idle sqlite server; the first use of each deferred feature."""

    #: Also not loaded by an idle server of this class's store.
    store_absent: FrozenSet[str] = frozenset(
        {"MySQLdb", "pymysql", "twisted.enterprise.adbapi", "fireworq.store.mysql.jobs"}
    )

    @inlineCallbacks
    def idle_server(self, **extra: str) -> Any:
        """A started server without a default queue (nothing configured)."""
        settings = {
            "driver": self.driver,
            "queue_default": "",
            "sqlite_path": os.path.join(self.workdir, "fireworq.sqlite3"),
            "shutdown_timeout": "5",
            **extra,
        }
        dsn = getattr(getattr(self, "database", None), "dsn", None)
        if dsn is not None:
            settings["mysql_dsn"] = dsn
        server = DumpingProcess(self.workdir, settings)
        self.addCleanup(server.kill)
        yield server.start()
        return server

    @inlineCallbacks
    def test_idle_server_leaves_modules_out(self):
        server = yield self.idle_server()
        loaded = yield server.modules()
        self.assertIn("fireworq.server.tree", loaded)  # the list is the server's
        for name in sorted(set(IDLE_ABSENT) | self.store_absent):
            self.assertNotIn(name, loaded, f"{name} is loaded by an idle server ({IDLE_ABSENT.get(name, 'store')})")

    @inlineCallbacks
    def test_features_work_on_first_use(self):
        server = yield self.idle_server()
        code, text = yield server.call("GET", "/openapi.yaml")
        self.assertEqual(code, 200)
        self.assertTrue(text.startswith("openapi:"), text[:80])

        code, answer = yield server.call(
            "PUT",
            "/schedule/nightly",
            {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "category": "c", "url": self.worker.url("/success")},
        )
        self.assertEqual(code, 200, answer)
        self.assertIn("T02:30:00", answer["next_run_at"])
        code, answer = yield server.call("PUT", "/schedule/bad", {"cron": "61 * * * *", "category": "c"})
        self.assertEqual(code, 400, answer)
        code, answer = yield server.call(
            "PUT", "/schedule/bad", {"cron": "* * * * *", "timezone": "Mars/Olympus", "category": "c"}
        )
        self.assertEqual(code, 400, answer)
        self.assertIn("Mars/Olympus", answer["message"])

        code, answer = yield server.call("PUT", "/queue/q", {"polling_interval": 100, "max_workers": 2})
        self.assertEqual(code, 200, answer)
        code, answer = yield server.call("PUT", "/routing/c", {"queue_name": "q"})
        self.assertEqual(code, 200, answer)
        code, answer = yield self.push(server, "c", url=self.worker.url("/success"), payload={"n": 1})
        self.assertEqual(code, 200, answer)
        yield self.delivered(1)
        self.assertEqual(json.loads(self.worker.deliveries[0].body), {"n": 1})

        loaded = yield server.modules()
        for name in FIRST_USE:
            self.assertIn(name, loaded)


class MySQLIdleImportsTests(MySQLServerMixin, IdleImportsTests):
    """The same on MySQL, whose server needs nothing of sqlite either."""

    database_name = "idle"
    store_absent = frozenset({"sqlite3", "_sqlite3", "pymysql"})

    @inlineCallbacks
    def test_workers_supervisor_loads_no_server(self):
        """
        The supervisor of ``--workers 2`` imports what supervising needs, not
        the server its children run (nor TLS).
        """
        server = yield self.idle_server(workers="2")
        loaded = yield server.modules()
        self.assertIn("fireworq.server.workers", loaded)  # the list is the supervisor's
        for name in ("fireworq.server.tree", "fireworq.web.app", "klein", "OpenSSL", "cryptography"):
            self.assertNotIn(name, loaded, f"{name} is loaded by the supervisor")
        code, _ = yield server.call("GET", "/health")
        self.assertEqual(code, 200)
