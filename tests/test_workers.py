"""
``--workers N``: several server processes of one host on one port
(fireworq/server/workers.py), with real processes, a real worker and the
throwaway MariaDB.

  - ``--workers 2`` on MySQL: pushes land on both processes (the kernel
    spreads the connections), and every push is delivered at once, also
    the ones taken by the process that does not hold the queue's lease
    (the sibling wake-up, not the 5 s poll);
  - the sqlite and in-memory stores refuse ``--workers 2`` with one line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from typing import Any, Dict, List

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from fireworq.config import load
from fireworq.server.workers import (
    GROUP_ENV,
    INDEX_ENV,
    Siblings,
    Slot,
    _WakeReceiver,
    child_environment,
    slot_from_environment,
)

from tests.support.mariadb import database_for
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess, REPO, twistd
from tests.support.worker import Worker

#: The queue's polling interval (ms): far longer than any push may take to be delivered.
POLLING_MS = 5000

#: Pushes of the test, each on a connection of its own (keep_alive off).
PUSHES = 40


class SiblingsTests(TestCase):
    """The wake-up datagrams between the processes (real unix sockets, a fake clock)."""

    def setUp(self) -> None:
        self.group = tempfile.mkdtemp(prefix="w18-siblings-")
        self.slot = Slot(self.group, 0, 3)
        self.receivers = []
        for index in (1, 2):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(self.slot.socket_path(index))
            sock.setblocking(False)
            self.addCleanup(sock.close)
            self.receivers.append(sock)
        self.clock = Clock()
        self.siblings = Siblings(self.slot, self.clock, lambda name: None)
        self.addCleanup(self.siblings._out.close)

    def received(self) -> List[List[bytes]]:
        """The datagrams each sibling has received since the last call."""
        out = []
        for sock in self.receivers:
            got = []
            while True:
                try:
                    got.append(sock.recv(65536))
                except BlockingIOError:
                    break
            out.append(got)
        return out

    def test_one_datagram_per_turn(self) -> None:
        self.siblings.wake("b")
        self.siblings.wake("a")
        self.siblings.wake("b")
        self.assertEqual(self.received(), [[], []])
        self.clock.advance(0)
        self.assertEqual(self.received(), [[b"a\nb"], [b"a\nb"]])

    def test_stream_of_wakes_spaced(self) -> None:
        self.siblings.wake("q")
        self.clock.advance(0)
        self.received()
        self.siblings.wake("q")
        self.clock.advance(0)
        self.assertEqual(self.received(), [[], []])  # within MIN_GAP of the last one
        self.clock.advance(Siblings.MIN_GAP)
        self.assertEqual(self.received(), [[b"q"], [b"q"]])

    def test_missing_sibling_skipped(self) -> None:
        self.receivers.pop(0).close()
        os.unlink(self.slot.socket_path(1))  # sibling 1 is restarting
        self.siblings.wake("q")
        self.clock.advance(0)
        self.assertEqual(self.received(), [[b"q"]])

    def test_receiver_wakes_each_queue(self) -> None:
        woken: List[str] = []
        _WakeReceiver(woken.append).datagramReceived(b"a\nb", None)
        self.assertEqual(woken, ["a", "b"])


class EnvironmentTests(TestCase):
    """How a child learns its place and its settings."""

    def test_slot(self) -> None:
        config = load({}, {"FIREWORQ_DRIVER": "mysql", "FIREWORQ_MYSQL_DSN": "u:p@tcp(h:3306)/d",
                           "FIREWORQ_WORKERS": "3"})
        self.assertIsNone(slot_from_environment(config, {}))
        self.assertEqual(slot_from_environment(config, {GROUP_ENV: "/g", INDEX_ENV: "2"}), Slot("/g", 2, 3))
        one = load({}, {})
        self.assertIsNone(slot_from_environment(one, {GROUP_ENV: "/g", INDEX_ENV: "0"}))

    def test_child_environment(self) -> None:
        config = load({"workers": "2", "pid": "/tmp/x.pid"},
                      {"FIREWORQ_DRIVER": "mysql", "FIREWORQ_MYSQL_DSN": "u:secret@tcp(h:3306)/d",
                       "FIREWORQ_BIND": "127.0.0.1:0"})
        env = child_environment(config, Slot("/g", 1, 2), 4321)
        self.assertEqual(env["FIREWORQ_BIND"], "127.0.0.1:4321")
        self.assertEqual(env["FIREWORQ_PID"], "")
        self.assertEqual(env["FIREWORQ_WORKERS"], "2")
        self.assertEqual(env["FIREWORQ_MYSQL_DSN"], "u:secret@tcp(h:3306)/d")
        self.assertEqual((env[GROUP_ENV], env[INDEX_ENV]), ("/g", "1"))
        self.assertEqual(load({}, env).bind_port, 4321)


class WorkersTests(TestCase):
    """Two server processes sharing one port, on MySQL."""

    timeout = 180

    def setUp(self) -> None:
        self.worker = Worker()
        self.worker.start()
        self.addCleanup(self.worker.stop)
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)

    def answered_by(self, server: FireworqProcess) -> Counter:
        """POST /job answers by child process (the supervisor's [worker-N] log prefixes)."""
        counts: Counter = Counter()
        for line in server.stdout().splitlines():
            match = re.search(r"\[(worker-\d+)\] (\{.*\})$", line)
            if not match:
                continue
            try:
                record = json.loads(match.group(2))
            except ValueError:
                continue
            if record.get("method") == "POST" and record.get("uri") == "/job/wake":
                counts[match.group(1)] += 1
        return counts

    @inlineCallbacks
    def test_pushes_to_both_processes_delivered_at_once(self) -> Any:
        database = database_for(self)
        server = FireworqProcess(self.workdir, {
            "driver": "mysql",
            "mysql_dsn": database.dsn,
            "workers": "2",
            "keep_alive": "false",  # a connection per push: both processes get some
            "lease_ttl": "1000",
            "config_refresh_interval": "300",
            "shutdown_timeout": "5",
            "queue_log": os.path.join(self.workdir, "queue.log"),
        })
        self.addCleanup(server.kill)
        yield server.start(timeout=60)
        code, body = yield server.call("PUT", "/queue/wake", {"polling_interval": POLLING_MS, "max_workers": 10})
        self.assertEqual(code, 200, body)
        code, body = yield server.call("PUT", "/routing/wake", {"queue_name": "wake"})
        self.assertEqual(code, 200, body)

        # Both processes know the queue and one of them holds its lease.
        @inlineCallbacks
        def settled() -> Any:
            holders = set()
            for _ in range(8):
                code, body = yield server.call("GET", "/queue/wake/node")
                if code != 200:
                    return False
                holders.add(body["id"])
            return len(holders) == 1

        yield wait_until(settled, 30, 0.2, "one holder of the queue's lease, known to both processes")

        # Each push on a connection of its own: the kernel spreads new
        # connections over the processes (SO_REUSEPORT), while one kept-alive
        # connection would take every push to the same process.
        from twisted.internet import reactor
        from twisted.web.client import HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=False)
        sent: Dict[int, float] = {}
        for n in range(PUSHES):
            started = time.time()
            response = yield treq.post(
                server.url("/job/wake"),
                json={"url": self.worker.url("/ok"), "payload": {"n": n}},
                pool=pool,
                timeout=10,
            )
            body = yield response.json()
            self.assertEqual(response.code, 200, body)
            sent[body["id"]] = started
        yield wait_until(lambda: len(self.worker.deliveries) >= PUSHES, 30, 0.05, "every job delivered")

        # The access log is flushed periodically: wait for every push's line.
        yield wait_until(
            lambda: sum(self.answered_by(server).values()) >= PUSHES, 10, 0.1, "every push in the access log"
        )
        by_process = self.answered_by(server)
        self.assertEqual(set(by_process), {"worker-0", "worker-1"}, by_process)
        delays: List[float] = []
        for delivery in self.worker.deliveries:
            delays.append(delivery.received_at - sent[delivery.job_id])
        delays.sort()
        # Without the wake-up, the pushes taken by the process without the
        # lease would wait for the holder's poll (up to 5 s).
        self.assertLess(delays[-1], 1.0, f"push→delivery delays (s): {delays}")
        self.assertLess(delays[len(delays) // 2], 0.2, delays)
        self.assertEqual(sorted(d.job_id for d in self.worker.deliveries), sorted(sent))

        # Log rotation: SIGUSR1 to the supervisor reaches every child.
        log = os.path.join(self.workdir, "queue.log")
        yield wait_until(lambda: os.path.exists(log) and os.path.getsize(log) > 0, 10, 0.05, "the queue log")
        os.rename(log, log + ".1")
        server.signal(signal.SIGUSR1)

        @inlineCallbacks
        def reopened() -> Any:
            # A child writes to a new file only once it has reopened its logs.
            code, _ = yield server.call("POST", "/job/wake", {"url": self.worker.url("/ok")})
            self.assertEqual(code, 200)
            return os.path.exists(log) and os.path.getsize(log) > 0

        yield wait_until(reopened, 20, 0.1, "a new queue log after SIGUSR1")
        status = yield server.stop()
        self.assertIn(status, (0, -15))


def children(pid: int) -> List[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and alive(int(entry)):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class SupervisorDeathTests(TestCase):
    """No server process outlives a supervisor killed with SIGKILL."""

    timeout = 120

    @inlineCallbacks
    def test_children_stop(self) -> Any:
        workdir = os.path.abspath(self.mktemp())
        server = FireworqProcess(workdir, {"driver": "mysql", "mysql_dsn": database_for(self).dsn,
                                           "workers": "2", "shutdown_timeout": "2"})
        self.addCleanup(server.kill)
        yield server.start(timeout=60)
        assert server.process is not None
        yield wait_until(lambda: len(children(server.process.pid)) == 2, 30, 0.1, "two children")
        pids = children(server.process.pid)
        self.addCleanup(lambda: [os.kill(p, signal.SIGKILL) for p in pids if alive(p)])
        server.kill()
        yield wait_until(lambda: not any(alive(p) for p in pids), 30, 0.1, "the children to exit")


class OneProcessStoresTests(TestCase):
    """The sqlite and in-memory stores belong to one process."""

    def test_refused(self) -> None:
        for driver in ("sqlite", "in-memory"):
            env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
            env.update(PYTHONPATH=REPO, FIREWORQ_DRIVER=driver, FIREWORQ_WORKERS="2",
                       FIREWORQ_SQLITE_PATH=os.path.abspath(self.mktemp()))
            done = subprocess.run(twistd() + ["--pidfile=", "-n", "fireworq"], env=env,
                                  capture_output=True, timeout=60, cwd=REPO)
            self.assertEqual(done.returncode, 2, done.stderr)
            lines = done.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("workers", lines[0])
            self.assertIn("mysql driver", lines[0])
