"""
Schedules (B10): cron parsing and its daylight-saving edges, the scheduler's
catch-up policies and disabled schedules (with a Clock as the wall clock),
the guarded push on every store, and the API.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, List, Optional, Tuple
from zoneinfo import ZoneInfo

import attr
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fireworq.model import NewJob, PushEntry
from fireworq.schedules.cron import Cron, CronError
from fireworq.schedules.memory import MemorySchedules
from fireworq.schedules.metrics import ScheduleMetrics
from fireworq.schedules.model import ScheduleDefinition, ScheduleRecord
from fireworq.schedules.scheduler import MISFIRE_GRACE_MS, SCHEDULED_AT_HEADER, SCHEDULE_HEADER, Scheduler
from fireworq.schedules.sqlite import SqliteSchedules
from fireworq.store.memory import MemoryJobStore
from fireworq.store.sqlite import open_sqlite
from fireworq.web.schedules import make_job
from prometheus_client import CollectorRegistry
from tests.test_web import APITestCase

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def ms(text: str) -> int:
    """An ISO time with offset, in ms."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def local(when: int, zone: str) -> str:
    return datetime.fromtimestamp(when / 1000, tz=ZoneInfo(zone)).isoformat()


class CronParsingTests(SynchronousTestCase):
    """Cron.parse: what is accepted and how each refusal is named."""

    def test_five_fields_and_aliases(self) -> None:
        self.assertEqual(Cron.parse("*/15 9-17 * * mon-fri").fields, "*/15 9-17 * * mon-fri")
        self.assertEqual(Cron.parse("@hourly").fields, "0 * * * *")
        self.assertEqual(Cron.parse("@DAILY").fields, "0 0 * * *")
        self.assertEqual(Cron.parse("@weekly").fields, "0 0 * * 0")
        self.assertEqual(Cron.parse("@monthly").fields, "0 0 1 * *")
        self.assertEqual(Cron.parse("@yearly").fields, Cron.parse("@annually").fields)
        self.assertEqual(Cron.parse("  0   1  * * *  ").expression, "0 1 * * *")

    def test_refusals(self) -> None:
        for expression, words in [
            ("", "empty"),
            ("* * * *", "5 fields"),
            ("* * * * * *", "5 fields"),  # seconds only in tests
            ("61 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("0 0 32 * *", "day"),
            ("0 0 30 2 *", "day"),  # never
            ("@reboot", "alias"),
            ("a b c d e", "invalid"),
        ]:
            with self.assertRaises(CronError, msg=expression) as caught:
                Cron.parse(expression)
            self.assertIn(words, str(caught.exception).lower().replace("field", "field"), expression)

    def test_unknown_zone(self) -> None:
        for zone in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "Europe/../UTC"):
            with self.assertRaises(CronError, msg=zone) as caught:
                Cron.parse("0 * * * *", zone)
            self.assertIn("time zone", str(caught.exception))

    def test_seconds_field_when_allowed(self) -> None:
        cron = Cron.parse("*/2 * * * * *", allow_seconds=True)
        start = ms("2026-01-01T00:00:00+00:00")
        self.assertEqual(cron.times_between(start, start + 6000, 10), [start + 2000, start + 4000, start + 6000])


class CronTimesTests(SynchronousTestCase):
    """The times of a cron, including daylight-saving changes (cronsim's Debian-cron rules)."""

    def times(self, expression: str, zone: str, start: str, count: int, days: int = 400) -> List[str]:
        cron = Cron.parse(expression, zone)
        begin = ms(start)
        return [local(t, zone) for t in cron.times_between(begin, begin + days * 86_400_000, count)]

    def test_step_minutes(self) -> None:
        self.assertEqual(
            self.times("*/20 * * * *", "UTC", "2026-05-01T10:05:00+00:00", 4),
            ["2026-05-01T10:20:00+00:00", "2026-05-01T10:40:00+00:00",
             "2026-05-01T11:00:00+00:00", "2026-05-01T11:20:00+00:00"],
        )

    def test_strictly_after(self) -> None:
        cron = Cron.parse("0 * * * *")
        at = ms("2026-05-01T10:00:00+00:00")
        self.assertEqual(cron.next_after(at), at + 3_600_000)
        self.assertEqual(cron.next_after(at - 1), at)

    def test_month_ends(self) -> None:
        # The 31st exists in 7 months; February 29 only in leap years.
        self.assertEqual(
            self.times("0 0 31 * *", "UTC", "2026-01-15T00:00:00+00:00", 4),
            ["2026-01-31T00:00:00+00:00", "2026-03-31T00:00:00+00:00",
             "2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00"],
        )
        self.assertEqual(self.times("0 12 29 2 *", "UTC", "2026-01-01T00:00:00+00:00", 1, days=1000),
                         ["2028-02-29T12:00:00+00:00"])

    def test_spring_forward_fixed_time_runs_after_the_gap(self) -> None:
        # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        self.assertEqual(
            self.times("30 2 * * *", BERLIN, "2026-03-28T12:00:00+01:00", 3),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"],
        )
        # New York, 2026-03-08 (02:00 EST -> 03:00 EDT).
        self.assertEqual(
            self.times("15 2 * * *", NEW_YORK, "2026-03-07T12:00:00-05:00", 2),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:15:00-04:00"],
        )

    def test_spring_forward_frequent_job_skips_the_missing_times(self) -> None:
        self.assertEqual(
            self.times("*/30 * * * *", BERLIN, "2026-03-29T01:20:00+01:00", 3),
            ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"],
        )

    def test_fall_back_fixed_time_runs_once(self) -> None:
        # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        self.assertEqual(
            self.times("30 2 * * *", BERLIN, "2026-10-24T12:00:00+02:00", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        )

    def test_fall_back_frequent_job_runs_in_both_hours(self) -> None:
        self.assertEqual(
            self.times("*/30 * * * *", BERLIN, "2026-10-25T01:50:00+02:00", 5),
            ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
             "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"],
        )

    def test_latest_at_or_before(self) -> None:
        cron = Cron.parse("0 0 31 * *")
        self.assertEqual(
            cron.latest_at_or_before(ms("2026-05-01T00:00:00+00:00"), 0), ms("2026-03-31T00:00:00+00:00")
        )
        self.assertEqual(
            cron.latest_at_or_before(ms("2026-03-31T00:00:00+00:00"), 0), ms("2026-03-31T00:00:00+00:00")
        )
        self.assertIsNone(
            cron.latest_at_or_before(ms("2026-05-01T00:00:00+00:00"), ms("2026-03-31T00:00:00+00:00"))
        )


@attr.s(auto_attribs=True)
class FakeManager:
    """The queue manager's guarded push over a memory job store, every category in queue q."""

    store: MemoryJobStore
    refuse: bool = False

    def push_guarded(self, category: str, job: NewJob, guard: Any, finish: Any = None) -> Any:
        if self.refuse:
            from twisted.internet.defer import fail

            from fireworq.store.interface import StoreUnavailable

            return fail(StoreUnavailable("down"))
        d = self.store.push_guarded(PushEntry("q", job), guard)
        d.addCallback(lambda stored: ("q", stored))
        return d


START = ms("2026-05-01T10:00:30+00:00")


class SchedulerTests(SynchronousTestCase):
    """Firing with a Clock as both the reactor and the wall clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START / 1000)
        self.jobs = MemoryJobStore(clock=lambda: int(self.clock.seconds() * 1000))
        self.successResultOf(self.jobs.start())
        self.schedules = MemorySchedules()
        self.manager = FakeManager(self.jobs)
        self.registry = CollectorRegistry()
        self.metrics = ScheduleMetrics(self.registry)
        self.scheduler = self.make_scheduler()

    def make_scheduler(self, lease: Any = None) -> Scheduler:
        return Scheduler(
            self.schedules, self.manager, make_job, self.clock, lease=lease, metrics=self.metrics,
            wall=self.clock.seconds, tick=0.5, refresh_interval=1.0,
        )

    def define(self, cron: str = "* * * * *", **fields: Any) -> ScheduleRecord:
        job = {"url": "http://w/", "payload": {"n": 1}}
        job.update(fields.pop("job", {}))
        definition = ScheduleDefinition(name=fields.pop("name", "s"), cron=cron, category="c",
                                        job=json.dumps(job), **fields)
        record = self.successResultOf(self.schedules.put(definition, int(self.clock.seconds() * 1000)))
        self.scheduler.known(record)
        return record

    def advance(self, seconds: float, step: float = 0.5) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def pushed(self) -> List[Tuple[str, str]]:
        """(schedule, scheduled_at) of every stored job, by id."""
        out = []
        queue = self.jobs._queue("q")
        for job in sorted(queue.jobs.values(), key=lambda j: j.id):
            headers = dict(job.options.headers or ())
            out.append((headers[SCHEDULE_HEADER], headers[SCHEDULED_AT_HEADER]))
        return out

    def count(self, name: str, schedule: str = "s") -> float:
        return self.registry.get_sample_value(name, {"schedule": schedule}) or 0.0

    def test_pushes_each_time_once(self) -> None:
        self.define()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(185)
        self.assertEqual(
            self.pushed(),
            [("s", "2026-05-01T10:01:00Z"), ("s", "2026-05-01T10:02:00Z"), ("s", "2026-05-01T10:03:00Z")],
        )
        self.assertEqual(self.count("fireworq_schedule_fired_total"), 3)
        record = self.successResultOf(self.schedules.find("s"))
        self.assertEqual(record.last_run_at, ms("2026-05-01T10:03:00+00:00"))
        self.assertEqual(record.last_job, ("q", 3))

    def test_job_carries_the_fields(self) -> None:
        self.define(job={"run_after": 5, "max_retries": 2, "name": "nightly", "priority": 7})
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(31)
        [job] = self.jobs._queue("q").jobs.values()
        self.assertEqual(
            (job.next_try - job.created_at, job.retry_count, job.options.name, job.options.priority),
            (5000, 2, "nightly", 7),
        )
        self.assertEqual(job.payload, '{"n":1}')

    def test_disabled_schedule_does_not_fire(self) -> None:
        self.define(enabled=False)
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(125)
        self.assertEqual(self.pushed(), [])
        self.assertIsNone(self.scheduler.next_run_at(self.successResultOf(self.schedules.find("s"))))
        # Enabled again: times before the PUT are not pushed (no catch-up of a pause).
        self.define(enabled=True, catch_up="last")
        self.advance(30)
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:03:00Z")])
        self.assertEqual(self.count("fireworq_schedule_missed_total"), 0)

    def downtime(self, catch_up: str, down_for: float) -> None:
        self.define(catch_up=catch_up)
        self.scheduler.startService()
        self.advance(31)  # 10:01 pushed
        self.successResultOf(self.scheduler.stopService())
        self.clock.advance(down_for)
        self.scheduler = self.make_scheduler()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(1)

    def test_catch_up_none_skips_times_missed_beyond_the_grace(self) -> None:
        # Down from 10:01:01 to 10:10:01: 10:02..10:09 are older than the
        # grace (60 s) and skipped; 10:10 is on time.
        self.downtime("none", 540)
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:01:00Z"), ("s", "2026-05-01T10:10:00Z")])
        self.assertEqual(self.count("fireworq_schedule_missed_total"), 8)
        self.assertEqual(self.count("fireworq_schedule_fired_total"), 2)

    def test_catch_up_last_pushes_the_latest_missed_time(self) -> None:
        self.downtime("last", 520)  # back at 10:09:41: 10:09 is on time, 10:08 the latest missed
        self.assertEqual(
            self.pushed(),
            [("s", "2026-05-01T10:01:00Z"), ("s", "2026-05-01T10:08:00Z"), ("s", "2026-05-01T10:09:00Z")],
        )
        self.assertEqual(self.count("fireworq_schedule_missed_total"), 6)  # 10:02..10:07

    def test_catch_up_last_after_a_long_downtime(self) -> None:
        self.downtime("last", 3 * 3600)
        pushed = self.pushed()
        self.assertEqual(pushed[0], ("s", "2026-05-01T10:01:00Z"))
        # Back at 13:01:01: only 13:01 is within the grace; 13:00 is the
        # latest missed time, pushed; 10:02..12:59 are skipped.
        self.assertEqual(pushed[1:], [("s", "2026-05-01T13:00:00Z"), ("s", "2026-05-01T13:01:00Z")])
        self.assertEqual(self.count("fireworq_schedule_missed_total"), 178)

    def test_short_outage_within_the_grace_misses_nothing(self) -> None:
        self.downtime("none", 100)  # back at 10:02:41: 10:02 is 41 s late, within the grace
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:01:00Z"), ("s", "2026-05-01T10:02:00Z")])
        self.assertEqual(self.count("fireworq_schedule_missed_total"), 0)

    def test_a_time_served_elsewhere_is_not_pushed_again(self) -> None:
        record = self.define()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        # Another node served 10:01 already (the guard refuses it here).
        self.assertTrue(self.successResultOf(self.schedules.skip("s", ms("2026-05-01T10:01:00+00:00"), None)))
        self.advance(31)
        self.assertEqual(self.pushed(), [])
        # The state was read again: the next time is 10:02.
        self.advance(60)
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:02:00Z")])
        self.assertEqual(self.count("fireworq_schedule_fired_total"), 1)
        del record

    def test_store_failure_is_retried_next_tick(self) -> None:
        self.define()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.manager.refuse = True
        self.advance(31)
        self.assertEqual(self.pushed(), [])
        self.manager.refuse = False  # at 10:01:01; failed at 10:01:00
        self.advance(0.5)
        self.assertEqual(self.pushed(), [])  # held back for RETRY_SECONDS
        self.advance(0.5)
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:01:00Z")])

    def test_failed_pushes_back_off(self) -> None:
        """
        Failures in a row wait longer each time (the one retry policy of
        fireworq/backoff.py: 2 s, 4 s, ...), and a success starts over.
        """
        self.define()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.manager.refuse = True
        self.advance(30.5)  # the first try, at 10:01:00, fails: held 2 s
        self.assertEqual(self.scheduler._entries["s"].failures, 1)
        self.advance(2)  # the second, at 10:01:02, fails: held 4 s
        self.assertEqual(self.scheduler._entries["s"].failures, 2)
        self.manager.refuse = False
        self.advance(3)
        self.assertEqual(self.pushed(), [])  # 10:01:05.5: still held
        self.advance(0.5)
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:01:00Z")])
        self.assertEqual(self.scheduler._entries["s"].failures, 0)

    def test_fires_only_while_the_lease_is_held(self) -> None:
        class Lease:
            grabber_id = 7
            holding = False

            def held(self) -> bool:
                return self.holding

            def start(self) -> None:
                pass

            def stop(self) -> Any:
                return succeed(None)

        lease = Lease()
        self.scheduler = self.make_scheduler(lease)
        self.define()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(40)
        self.assertEqual(self.pushed(), [])
        lease.holding = True
        self.advance(1)
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:01:00Z")])

    def test_definitions_are_reloaded(self) -> None:
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        # Defined through another node: only in the store.
        definition = ScheduleDefinition(name="other", cron="* * * * *", category="c",
                                        job=json.dumps({"url": "http://w/"}))
        self.successResultOf(self.schedules.put(definition, START))
        self.advance(31)
        self.assertEqual(self.pushed(), [("other", "2026-05-01T10:01:00Z")])
        self.successResultOf(self.schedules.delete("other"))
        self.advance(61)
        self.assertEqual(len(self.pushed()), 1)

    def test_daylight_saving_nights(self) -> None:
        """Through Berlin's fall-back and spring-forward nights, in the scheduler itself."""
        self.clock = Clock()
        self.clock.advance(ms("2026-10-25T00:00:00+02:00") / 1000)
        self.jobs = MemoryJobStore(clock=lambda: int(self.clock.seconds() * 1000))
        self.manager = FakeManager(self.jobs)
        self.scheduler = self.make_scheduler()
        self.define("30 2 * * *", name="fixed", timezone=BERLIN)
        self.define("*/30 * * * *", name="frequent", timezone=BERLIN)
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(5 * 3600, step=20)  # to 04:00 CET
        by_name: dict = {}
        for name, at in self.pushed():
            by_name.setdefault(name, []).append(at)
        # 02:30 happens twice (CEST, then CET): the fixed time runs once.
        self.assertEqual(by_name["fixed"], ["2026-10-25T00:30:00Z"])
        # Every half hour that exists runs, both 02:00 and both 02:30.
        self.assertEqual(by_name["frequent"], [
            "2026-10-24T22:30:00Z", "2026-10-24T23:00:00Z", "2026-10-24T23:30:00Z",
            "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z",
            "2026-10-25T03:00:00Z",
        ])
        self.assertEqual(self.count("fireworq_schedule_missed_total", "fixed"), 0)

    def test_spring_forward_fixed_time_runs_after_the_gap(self) -> None:
        self.clock = Clock()
        self.clock.advance(ms("2026-03-29T01:00:00+01:00") / 1000)
        self.jobs = MemoryJobStore(clock=lambda: int(self.clock.seconds() * 1000))
        self.manager = FakeManager(self.jobs)
        self.scheduler = self.make_scheduler()
        self.define("30 2 * * *", name="fixed", timezone=BERLIN)
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(3 * 3600, step=20)
        # 02:30 does not exist that night: the job runs at 03:00 CEST (01:00 UTC).
        self.assertEqual(self.pushed(), [("fixed", "2026-03-29T01:00:00Z")])

    def test_unreadable_store_keeps_the_schedules_loaded(self) -> None:
        from twisted.internet.defer import fail
        from twisted.logger import capturedLogs

        from fireworq.store.interface import StoreUnavailable

        self.define()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)
        self.advance(1)
        listing = self.schedules.list
        self.schedules.list = lambda: fail(StoreUnavailable("database down"))  # type: ignore[method-assign]
        with capturedLogs() as events:
            self.advance(40)
        warnings = [e for e in events if "Cannot load schedules" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)  # once per outage, no traceback
        self.assertFalse([e for e in events if e.get("log_failure") is not None])
        self.assertEqual(self.pushed(), [("s", "2026-05-01T10:01:00Z")])  # fired from what was loaded
        self.schedules.list = listing  # type: ignore[method-assign]
        with capturedLogs() as events:
            self.advance(1)
        self.assertTrue([e for e in events if "Schedules loaded again" in e.get("log_format", "")])

    def test_grace_is_a_minute(self) -> None:
        self.assertEqual(MISFIRE_GRACE_MS, 60_000)


@inlineCallbacks
def on_sqlite(case: TestCase, check: Any) -> Any:
    """Open a sqlite job store and its schedules in a new file, run ``check(jobs, schedules)``, close the file."""
    jobs, _ = open_sqlite(case.mktemp())
    schedules = SqliteSchedules(jobs.db)
    yield jobs.start()
    try:
        yield schedules.start()
        yield check(jobs, schedules)
    finally:
        yield jobs.stop()


class GuardedPushTests(TestCase):
    """IJobStore.push_guarded with each driver's guard: one job per time."""

    def check(self, jobs: Any, schedules: Any) -> Any:
        exact = '{"url":"http://w/","payload":{"precise":0.1000000000000000000001}}'
        definition = ScheduleDefinition(name="s", cron="* * * * *", category="c", job=exact)
        stored = yield schedules.put(definition, 1000)
        self.assertEqual(stored.definition, definition)  # the job text kept as written
        entry = PushEntry("q", NewJob("c", "http://w/"))
        first = yield jobs.push_guarded(entry, schedules.guard("s", 60_000, None))
        self.assertIsNotNone(first)
        again = yield jobs.push_guarded(entry, schedules.guard("s", 60_000, None))
        self.assertIsNone(again)
        earlier = yield jobs.push_guarded(entry, schedules.guard("s", 30_000, None))
        self.assertIsNone(earlier)
        record = yield schedules.find("s")
        self.assertEqual((record.last_run_at, record.last_job), (60_000, ("q", first.id)))
        skipped = yield schedules.skip("s", 120_000, None)
        self.assertTrue(skipped)
        skipped = yield schedules.skip("s", 120_000, None)
        self.assertFalse(skipped)
        # A PUT keeps the state.
        record = yield schedules.put(attr.evolve(definition, cron="@hourly"), 2000)
        self.assertEqual((record.since, record.last_run_at, record.definition.cron), (2000, 120_000, "@hourly"))
        yield schedules.set_last_job("s", "q", 99)
        record = yield schedules.find("s")
        self.assertEqual(record.last_job, ("q", 99))
        listed = yield schedules.list()
        self.assertEqual([r.name for r in listed], ["s"])
        gone = yield schedules.delete("s")
        self.assertEqual(gone.name, "s")
        gone = yield schedules.delete("s")
        self.assertIsNone(gone)

    def test_memory(self) -> Any:
        from twisted.internet.defer import inlineCallbacks

        jobs = MemoryJobStore()
        return inlineCallbacks(self.check)(jobs, MemorySchedules())

    def test_sqlite(self) -> Any:
        return on_sqlite(self, inlineCallbacks(self.check))


class _Crash(Exception):
    """Stands for a process dying between the claim and the commit."""


class CrashingGuard:
    """A guard whose record step fails: the whole transaction must be undone."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def claim(self, cursor: Any) -> bool:
        return self.inner.claim(cursor)

    def record(self, cursor: Any, queue_name: str, job_id: int) -> None:
        self.inner.record(cursor, queue_name, job_id)
        raise _Crash()


class AtomicGuardTests(TestCase):
    """
    A guarded push that fails after its claim and insert leaves neither the
    job nor the served time (sqlite, MySQL: one transaction), so the time is
    pushed again later -- and then once.
    """

    @inlineCallbacks
    def check_atomic(self, jobs: Any, schedules: Any, count_jobs: Any) -> Any:
        definition = ScheduleDefinition(name="s", cron="* * * * *", category="c", job="{}")
        yield schedules.put(definition, 1000)
        entry = PushEntry("qa", NewJob("c", "http://w/"))
        with self.assertRaises(_Crash):
            yield jobs.push_guarded(entry, CrashingGuard(schedules.guard("s", 60_000, None)))
        record = yield schedules.find("s")
        self.assertIsNone(record.last_run_at)
        self.assertEqual((yield count_jobs()), 0)
        job = yield jobs.push_guarded(entry, schedules.guard("s", 60_000, None))
        self.assertIsNotNone(job)
        self.assertEqual((yield count_jobs()), 1)

    def test_sqlite(self) -> Any:
        return on_sqlite(self, lambda jobs, schedules: self.check_atomic(jobs, schedules, lambda: self.total(jobs)))

    @staticmethod
    def total(jobs: Any) -> Any:
        d = jobs.count_jobs("qa")
        d.addCallback(lambda counts: sum(attr.asdict(counts).values()))
        return d

    @inlineCallbacks
    def test_mysql(self) -> Any:
        from twisted.internet import reactor

        from fireworq.schedules.mysql import SCHEDULER_LEASE, MySQLSchedules
        from fireworq.store.interface import NodeInfo
        from fireworq.server.stores import open_mysql
        from tests.support import mariadb

        database = mariadb.database_for(self)
        jobs, repository, leases = open_mysql(database.dsn, None, reactor)
        schedules = MySQLSchedules(jobs._pool)
        self.addCleanup(leases.stop)
        self.addCleanup(repository.stop)
        self.addCleanup(jobs.stop)
        self.addCleanup(schedules.stop)
        yield jobs.start()
        yield leases.start()
        yield schedules.start()
        yield inlineCallbacks(GuardedPushTests.check)(self, jobs, schedules)
        yield self.check_atomic(jobs, schedules, lambda: self.total(jobs))
        # Under the scheduler lease: only its current epoch may push.
        grant = yield leases.acquire(SCHEDULER_LEASE, NodeInfo("a", "h"), 60_000)
        entry = PushEntry("q", NewJob("c", "http://w/"))
        stale = yield jobs.push_guarded(entry, schedules.guard("s", 120_000, grant.epoch + 1))
        self.assertIsNone(stale)
        fresh = yield jobs.push_guarded(entry, schedules.guard("s", 120_000, grant.epoch))
        self.assertIsNotNone(fresh)
        again = yield jobs.push_guarded(entry, schedules.guard("s", 120_000, grant.epoch))
        self.assertIsNone(again)
        self.assertFalse((yield schedules.skip("s", 120_000, grant.epoch)))
        self.assertTrue((yield schedules.skip("s", 180_000, grant.epoch)))
        self.assertFalse((yield schedules.skip("s", 240_000, grant.epoch + 1)))


class ScheduleAPITests(APITestCase):
    """The routes, over memory stores (nothing fires: the scheduler is not started)."""

    BODY = {"cron": "0 3 * * *", "timezone": BERLIN, "category": "nightly", "url": "http://w/x",
            "payload": {"k": 1}, "job_name": "report", "max_retries": 2}

    def test_put_get_list_delete(self) -> None:
        code, body = self.call("PUT", "/schedule/rep", self.BODY)
        self.assertEqual(code, 200, body)
        self.assertEqual(body["name"], "rep")
        self.assertEqual(body["job_name"], "report")
        self.assertEqual((body["enabled"], body["catch_up"]), (True, "none"))
        self.assertEqual((body["last_run_at"], body["last_job"]), (None, None))
        # Times have milliseconds, as every time of the API (protocol conventions).
        self.assertTrue(body["next_run_at"].endswith("T03:00:00.000+01:00") or body["next_run_at"].endswith("T03:00:00.000+02:00"))
        code, got = self.call("GET", "/schedule/rep")
        self.assertEqual((code, got), (200, body))
        code, listed = self.call("GET", "/schedules")
        self.assertEqual((code, listed), (200, [body]))
        code, deleted = self.call("DELETE", "/schedule/rep")
        self.assertEqual(code, 200)
        self.assertEqual(deleted["name"], "rep")
        code, _ = self.call("GET", "/schedule/rep")
        self.assertEqual(code, 404)
        code, _ = self.call("DELETE", "/schedule/rep")
        self.assertEqual(code, 404)

    def test_run_now_pushes_also_when_disabled(self) -> None:
        self.call("PUT", "/schedule/rep", dict(self.BODY, enabled=False))
        code, job = self.call("POST", "/schedule/rep/run")
        self.assertEqual(code, 200, job)
        self.assertEqual((job["queue_name"], job["category"], job["name"], job["payload"]),
                         ("default", "nightly", "report", {"k": 1}))
        code, body = self.call("GET", "/schedule/rep")
        self.assertEqual(body["last_job"], {"queue_name": "default", "id": job["id"]})
        self.assertIsNone(body["last_run_at"])
        self.assertIsNone(body["next_run_at"])
        code, _ = self.call("POST", "/schedule/none/run")
        self.assertEqual(code, 404)

    def test_payload_numbers_stay_exact(self) -> None:
        # As for a push (A2): numbers no double holds are kept as written.
        payload = '{"big":123456789012345678901234567890,"precise":0.1000000000000000000001}'
        raw = ('{"cron":"@daily","category":"c","url":"http://w/","payload":%s}' % payload).encode()
        response, body = self.call_raw("PUT", "/schedule/exact", raw=raw)
        self.assertEqual(response.code, 200, body)
        self.assertIn(b'"payload":' + payload.encode(), body)
        response, body = self.call_raw("GET", "/schedule/exact")
        self.assertIn(b'"payload":' + payload.encode(), body)
        response, body = self.call_raw("POST", "/schedule/exact/run")
        self.assertEqual(response.code, 200, body)
        self.assertIn(b'"payload":' + payload.encode(), body)
        [job] = self.store._queue("default").jobs.values()
        self.assertEqual(job.payload, payload)

    def test_bad_input_names_the_field(self) -> None:
        for change, field in [
            ({"cron": "61 * * * *"}, "cron"),
            ({"cron": "* * * * * *"}, "cron"),
            ({"cron": None}, "cron"),
            ({"cron": 5}, "cron"),
            ({"timezone": "Mars/Base"}, "timezone"),
            ({"timezone": 1}, "timezone"),
            ({"category": ""}, "category"),
            ({"category": 3}, "category"),
            ({"enabled": "yes"}, "enabled"),
            ({"catch_up": "all"}, "catch_up"),
            ({"url": None}, "url"),
            ({"max_retries": -1}, "max_retries"),
            ({"priority": 1000}, "priority"),
            ({"idempotency_key": "k"}, "idempotency_key"),
            ({"bogus": 1}, "bogus"),
            ({"name": "other"}, "name"),
        ]:
            body = dict(self.BODY)
            for k, v in change.items():
                if v is None:
                    body.pop(k)
                else:
                    body[k] = v
            code, answer = self.call("PUT", "/schedule/rep", body)
            self.assertEqual(code, 400, (change, answer))
            self.assertIn(field, answer["message"], (change, answer))
        code, answer = self.call("PUT", "/schedule/rep", [1])
        self.assertEqual(code, 400)
        code, answer = self.call("PUT", "/schedule/%2E%2E", self.BODY)
        self.assertIn(code, (400, 404))
        code, _ = self.call("GET", "/schedules")
        self.assertEqual(code, 200)
