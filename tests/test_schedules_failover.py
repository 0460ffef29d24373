"""
Schedules across failover (B10), on real server processes and MySQL: two
nodes fire a per-second schedule (a 6-field cron, allowed in tests only by
FIREWORQ_TEST_SCHEDULE_SECONDS) for about 40 s while the firing node is
killed with SIGKILL and, later, the next firing node is paused with
SIGSTOP.  A real worker counts the deliveries; each carries the scheduled
time it serves (``Fireworq-Scheduled-At``).  Every second from the first
to the last served time produced exactly one job: none twice (the push
and the record of the served time commit together, under the scheduler
lease's epoch), none missing (``catch_up: last``; the failovers are far
shorter than the one-minute grace, so each missed second is pushed by the
next holder).  A job may be delivered twice (at-least-once delivery of a
job in flight when its node died); it is still one job.  The schedule is
defined through the node that does not fire, so it also shows that the
firing node sees it within ``config_refresh_interval``.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from datetime import datetime
from typing import Any, Dict, List, Set

from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.python import log

from tests.support.mariadb import database_for
from tests.support.polling import pause, wait_until
from tests.test_multinode import REFRESH_MS, REFRESH_SLACK, ClusterTestCase, Node

QUEUE = "ticks"
CATEGORY = "tick"
SCHEDULED_AT = "fireworq-scheduled-at"


def seconds_of(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class ScheduleFailoverTests(ClusterTestCase):
    timeout = 240

    def settings(self, **overrides: Any) -> Dict[str, str]:
        settings = super().settings(**overrides)
        settings["test_schedule_seconds"] = "1"
        return settings

    @inlineCallbacks
    def fired(self, node: Node) -> Any:
        """This node's fireworq_schedule_fired_total for the schedule (0 if unknown)."""
        code, text = yield node.call("GET", "/metrics")
        if code != 200:
            return 0.0
        for line in str(text).splitlines():
            if line.startswith('fireworq_schedule_fired_total{schedule="every-second"}'):
                return float(line.split()[-1])
        return 0.0

    def jobs_by_time(self) -> Dict[int, Set[int]]:
        """Scheduled second -> ids of the jobs delivered for it."""
        out: Dict[int, Set[int]] = defaultdict(set)
        for d in self.worker.deliveries:
            at = d.headers.get(SCHEDULED_AT)
            if at:
                out[seconds_of(at)].add(d.job_id)
        return out

    @inlineCallbacks
    def wait_firing(self, node: Node, what: str) -> Any:
        before = yield self.fired(node)

        @inlineCallbacks
        def more() -> Any:
            now = yield self.fired(node)
            return now >= before + 2

        yield wait_until(more, 30, 0.1, f"{what} to fire the schedule")

    def make_database(self) -> str:
        self.database = database_for(self, "sched")
        return self.database.dsn

    @inlineCallbacks
    def scheduler_holder(self) -> Any:
        """The node id in the scheduler's lease row, while unexpired (from the database)."""
        rows = yield deferToThread(
            self.database.server.execute,
            "SELECT holder FROM fireworq_lease WHERE name = '/schedules' AND expires_at > "
            "CAST(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)",
            None, self.database.name,
        )
        if not rows:
            return None
        holder = rows[0][0]
        return holder.decode() if isinstance(holder, bytes) else holder

    @inlineCallbacks
    def test_every_second_once_across_kill_and_pause(self) -> Any:
        a = yield self.start_node("a")
        code, body = yield a.call("PUT", f"/queue/{QUEUE}", {"polling_interval": 100, "max_workers": 16})
        self.assertEqual(code, 200, body)
        code, body = yield a.call("PUT", f"/routing/{CATEGORY}", {"queue_name": QUEUE})
        self.assertEqual(code, 200, body)
        # a started first and holds the scheduler lease.
        yield wait_until(self.scheduler_holder, 15, 0.1, "a scheduler lease holder")
        holder = yield self.scheduler_holder()
        self.assertTrue(a.owns({"id": holder}), holder)
        b = yield self.start_node("b")
        # Defined through b, fired by a: seen within config_refresh_interval.
        code, body = yield b.call("PUT", "/schedule/every-second", {
            "cron": "* * * * * *", "category": CATEGORY, "url": self.worker.url("/success"),
            "catch_up": "last", "payload": {"hello": "tick"},
        })
        self.assertEqual(code, 200, body)
        defined_at = time.time()
        yield wait_until(lambda: self.jobs_by_time(), 15, 0.05, "the first scheduled job")
        took = min(d.received_at for d in self.worker.deliveries) - defined_at
        log.msg(f"first job delivered {took:.2f}s after the schedule was defined through another node")
        self.assertLess(took, REFRESH_MS / 1000 + REFRESH_SLACK + 1.0)
        yield self.wait_firing(a, "node a")
        yield pause(5)

        # 1. The firing node dies: b takes over and serves the seconds missed.
        a.process.kill()
        killed_at = time.time()
        yield self.wait_firing(b, "node b after a was killed")
        log.msg(f"b fires {time.time() - killed_at:.2f}s after the kill")
        yield pause(5)
        c = yield self.start_node("c")
        yield pause(3)

        # 2. The firing node hangs: c takes over; b wakes up fenced.
        b.process.signal(signal.SIGSTOP)
        stopped_at = time.time()
        yield self.wait_firing(c, "node c after b was paused")
        log.msg(f"c fires {time.time() - stopped_at:.2f}s after the pause")
        yield pause(5)
        b.process.signal(signal.SIGCONT)
        yield pause(5)

        code, body = yield c.call("PUT", "/schedule/every-second", {
            "cron": "* * * * * *", "category": CATEGORY, "url": self.worker.url("/success"),
            "catch_up": "last", "enabled": False,
        })
        self.assertEqual(code, 200, body)
        self.assertIsNotNone(body["last_run_at"], "the served times are recorded")
        last = seconds_of(body["last_run_at"])
        # Every job pushed up to the last served second gets delivered.
        yield wait_until(lambda: last in self.jobs_by_time(), 30, 0.1, "the last served second's job")
        yield pause(2)
        by_time = self.jobs_by_time()
        first = min(by_time)
        self.assertGreaterEqual(last - first, 25, f"only {last - first} s of firing")
        twice = {t: ids for t, ids in by_time.items() if len(ids) > 1}
        self.assertEqual(twice, {}, "seconds with more than one job")
        missing = [t for t in range(first, last + 1) if t not in by_time]
        self.assertEqual(missing, [], "seconds without a job")
        # Every stored job was one of these (none pushed beyond the record).
        ids: List[int] = sorted(i for ids_ in by_time.values() for i in ids_)
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(len(ids), last - first + 1)
        self.assertGreater((yield self.fired(b)), 0)
        self.assertGreater((yield self.fired(c)), 0)
