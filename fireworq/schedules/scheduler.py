"""
L{Scheduler}: fires the schedules (B10) on the node that holds the
scheduler lease (MySQL; the only node otherwise).

Every ``tick`` seconds it compares each enabled schedule's next time with
the wall clock; a due time is pushed through the queue manager's guarded
push, which stores the job and marks the time served in one transaction
(L{fireworq.schedules.model.IPushGuard}), so a time is pushed once across
nodes, restarts and failovers.  Definitions are reloaded every
``refresh_interval`` (``config_refresh_interval``), so a change made
through another node is seen within it.

Missed times.  A time is *on time* while it is at most ``grace_ms``
(L{MISFIRE_GRACE_MS}) old: it is pushed, however late within that.
Older times were missed (the firing node was down, or the time fell in a
failover longer than the grace): with ``catch_up: none`` they are skipped
(marked served, counted in ``fireworq_schedule_missed_total``); with
``catch_up: last`` the latest of them is pushed and the others skipped.
A ``PUT`` starts a schedule afresh: times before it are never pushed.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

import attr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq import backoff
from fireworq.model import Job, NewJob
from fireworq.schedules.cron import Cron, CronError
from fireworq.schedules.model import ISchedules, ScheduleRecord
from fireworq.timers import Periodic

#: How old a scheduled time may be and still be pushed (ms).
MISFIRE_GRACE_MS = 60_000

#: Times of one schedule pushed per tick at most (a per-second test
#: schedule after a failover pushes a few; the rest wait a tick).
MAX_PER_TICK = 100

#: Missed times counted one by one at most (beyond, the count is this):
#: counting walks the cron, in the reactor thread.
MAX_COUNTED = 10_000

#: Seconds a schedule waits after a failed push before it is tried again
#: (the store is down: one warning per schedule and pause, not per tick);
#: the wait doubles with each failure in a row, up to L{RETRY_MAX_SECONDS}
#: (the one retry policy, L{fireworq.backoff.policy}; no jitter: only the
#: lease holder pushes, so there is no herd of nodes to spread).
RETRY_SECONDS = 2.0
RETRY_MAX_SECONDS = 30.0

_retry_delay = backoff.policy(initial=RETRY_SECONDS, maximum=RETRY_MAX_SECONDS, jitter=0.0)

#: Builds a schedule's job: (category, job fields as JSON text, extra
#: delivery headers) -> (job, finish), where ``finish`` applies the queue's
#: job defaults (see the queue manager's push).
JobMaker = Callable[[str, str, Tuple[Tuple[str, str], ...]], Tuple[NewJob, Any]]

#: Delivery headers of a scheduled job: the schedule's name and the
#: scheduled time it serves (RFC 3339, UTC), so that a worker can tell the
#: runs apart.  Kept with the job's own headers (job options), so not
#: ``X-Fireworq-``, a prefix refused there.
SCHEDULE_HEADER = "Fireworq-Schedule"
SCHEDULED_AT_HEADER = "Fireworq-Scheduled-At"


def schedule_headers(name: str, when_ms: int) -> Tuple[Tuple[str, str], ...]:
    """The delivery headers of the job of ``name`` for the time ``when_ms``."""
    moment = datetime.fromtimestamp(when_ms // 1000, tz=timezone.utc)
    return ((SCHEDULE_HEADER, name), (SCHEDULED_AT_HEADER, moment.strftime("%Y-%m-%dT%H:%M:%SZ")))


class NoJobs:
    """The job store a scheduler lease keeper recovers from: a schedule has no grabbed jobs."""

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        return succeed(0)


@attr.s(auto_attribs=True)
class _Entry:
    record: ScheduleRecord
    cron: Optional[Cron]
    due: Optional[int]
    #: Wall ms before which a schedule whose push failed is not tried again.
    hold_until: int = 0
    #: Failed pushes in a row (the retry delay grows with them).
    failures: int = 0


class Scheduler(Service):
    """
    Fires schedules on this node while it holds the scheduler lease.

    @param schedules: the store's schedules.
    @param manager: the queue manager (its C{push_guarded}).
    @param make_job: see L{JobMaker}.
    @param lease: the scheduler's L{fireworq.lease.keeper.LeaseKeeper}
        (MySQL), or None: this node fires every schedule.
    @param metrics: a L{fireworq.schedules.metrics.ScheduleMetrics}, or None.
    @param wall: the wall clock in seconds (cron times are wall times).
    """

    name = "scheduler"
    _log = Logger()

    def __init__(
        self,
        schedules: ISchedules,
        manager: Any,
        make_job: JobMaker,
        clock: IReactorTime,
        lease: Optional[Any] = None,
        metrics: Optional[Any] = None,
        wall: Optional[Callable[[], float]] = None,
        tick: float = 0.5,
        refresh_interval: float = 1.0,
        grace_ms: int = MISFIRE_GRACE_MS,
        allow_seconds: bool = False,
    ) -> None:
        self.schedules = schedules
        self.manager = manager
        self.make_job = make_job
        self.lease = lease
        self.metrics = metrics
        self.allow_seconds = allow_seconds
        self.grace_ms = grace_ms
        self._wall = wall or time.time
        self._entries: Dict[str, _Entry] = {}
        self._loaded = False
        self._refresh_failing = False
        self._ticker = Periodic(tick, self._tick, clock=clock, name="the scheduler")
        self._refresher = Periodic(refresh_interval, self.refresh, clock=clock, now=True,
                                   name="the schedule watcher")

    # -- lifecycle -----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.lease is not None:
            self.lease.start()
        self._refresher.startService()
        self._ticker.startService()

    def stopService(self) -> Deferred:
        super().stopService()
        d = DeferredList([
            self._ticker.stopService(),
            self._refresher.stopService(),
        ])
        if self.lease is not None:
            d.addCallback(lambda _: self.lease.stop())
        return d

    # -- definitions -----------------------------------------------------------

    def now_ms(self) -> int:
        """The wall clock, in ms."""
        return int(self._wall() * 1000)

    def cron_of(self, record: ScheduleRecord) -> Optional[Cron]:
        """The parsed cron of a record (None if it cannot be parsed any more, e.g. a zone removed)."""
        definition = record.definition
        try:
            return Cron.parse(definition.cron, definition.timezone, allow_seconds=self.allow_seconds)
        except CronError as e:
            self._log.warn("Schedule {name} cannot run: {why}", name=definition.name, why=str(e))
            return None

    def known(self, record: ScheduleRecord) -> None:
        """Take a record as current (after a local change or a load)."""
        entry = self._entries.get(record.name)
        if entry is not None and entry.record.definition == record.definition and entry.cron is not None:
            cron: Optional[Cron] = entry.cron
        else:
            cron = self.cron_of(record)
        due = cron.next_after(record.served_until) if cron is not None else None
        self._entries[record.name] = _Entry(
            record, cron, due,
            entry.hold_until if entry is not None else 0,
            entry.failures if entry is not None else 0,
        )

    def forget(self, name: str) -> None:
        """A schedule was deleted."""
        self._entries.pop(name, None)

    def refresh(self) -> Deferred:
        """
        Reload every schedule from the store.  While the store cannot be
        read, the schedules last loaded stay in use (one warning per outage).
        """
        d = self.schedules.list()

        def loaded(records: List[ScheduleRecord]) -> None:
            names = set()
            for record in records:
                names.add(record.name)
                self.known(record)
            for name in list(self._entries):
                if name not in names:
                    del self._entries[name]
            self._loaded = True
            if self._refresh_failing:
                self._refresh_failing = False
                self._log.info("Schedules loaded again")

        def failed(failure: Failure) -> None:
            if not self._refresh_failing:
                self._refresh_failing = True
                self._log.warn(
                    "Cannot load schedules: {why}; the schedules last loaded stay in use",
                    why=failure.getErrorMessage(),
                )

        d.addCallbacks(loaded, failed)
        return d

    def next_run_at(self, record: ScheduleRecord) -> Optional[int]:
        """When the schedule runs next (ms), or None (disabled, or no time left)."""
        if not record.definition.enabled:
            return None
        cron = self.cron_of(record)
        if cron is None:
            return None
        return cron.next_after(max(record.served_until, self.now_ms() - self.grace_ms))

    # -- firing ------------------------------------------------------------------

    def _epoch(self) -> Optional[int]:
        return None if self.lease is None else self.lease.grabber_id

    def _may_fire(self) -> bool:
        if not self._loaded:
            return False
        if self.lease is None:
            return True
        return self.lease.held()

    def _tick(self) -> Optional[Deferred]:
        if not self._may_fire():
            return None
        now = self.now_ms()
        work = [
            self.serve(entry.record.name, now)
            for entry in list(self._entries.values())
            if entry.record.definition.enabled and entry.due is not None and entry.due <= now
            and entry.hold_until <= now
        ]
        if not work:
            return None
        return DeferredList(work, consumeErrors=True)

    def serve(self, name: str, now: int) -> Deferred:
        """Push (or skip) the due times of one schedule up to ``now``, in order."""
        entry = self._entries.get(name)
        if entry is None or entry.cron is None:
            return succeed(None)
        record, cron = entry.record, entry.cron
        base = record.served_until
        cutoff = now - self.grace_ms
        steps: List[Tuple[str, int, int]] = []  # (what, time, missed count)
        first = cron.next_after(base)
        if first is None or first > now:
            return succeed(None)
        if first <= cutoff:
            latest_late = cron.latest_at_or_before(cutoff, base)
            if latest_late is not None:
                late = len(cron.times_between(base, latest_late, MAX_COUNTED))
                if record.definition.catch_up == "last":
                    steps.append(("push", latest_late, late - 1))
                else:
                    steps.append(("skip", latest_late, late))
                base = latest_late
        for when in cron.times_between(max(base, cutoff), now, MAX_PER_TICK):
            steps.append(("push", when, 0))
        d: Deferred = succeed(None)
        for what, when, missed in steps:
            d.addCallback(self._step, name, what, when, missed)
        d.addErrback(self._failed, name)
        return d

    def _step(self, _: object, name: str, what: str, when: int, missed: int) -> Deferred:
        entry = self._entries.get(name)
        if entry is None or not self._may_fire():
            raise _Stop()
        if entry.record.served_until >= when:
            return succeed(None)
        epoch = self._epoch()
        if what == "skip":
            d = self.schedules.skip(name, when, epoch)
            d.addCallback(self._skipped, name, when, missed)
            return d
        definition = entry.record.definition
        job, finish = self.make_job(definition.category, definition.job, schedule_headers(name, when))
        guard = self.schedules.guard(name, when, epoch)
        d = self.manager.push_guarded(entry.record.definition.category, job, guard, finish)
        d.addCallback(self._pushed, name, when, missed)
        return d

    def _skipped(self, done: bool, name: str, when: int, missed: int) -> None:
        if not done:
            raise _Stale()
        if self.metrics is not None and missed:
            self.metrics.missed(name, missed)
        self._log.info(
            "Schedule {name}: skipped {n} missed time(s) up to {when} (catch_up: none)",
            name=name, n=missed, when=datetime.fromtimestamp(when // 1000, tz=timezone.utc).isoformat(),
        )
        self._advance(name, when, None)

    def _pushed(self, result: Tuple[str, Optional[Job]], name: str, when: int, missed: int) -> None:
        queue_name, job = result
        if job is None:
            raise _Stale()
        if self.metrics is not None:
            self.metrics.fired(name)
            if missed:
                self.metrics.missed(name, missed)
        self._advance(name, when, (queue_name, job.id))

    def _advance(self, name: str, when: int, last_job: Optional[Tuple[str, int]]) -> None:
        entry = self._entries.get(name)
        if entry is None:
            return
        record = attr.evolve(entry.record, last_run_at=max(when, entry.record.last_run_at or 0))
        if last_job is not None:
            record = attr.evolve(record, last_job=last_job)
        entry.record = record
        entry.failures = 0
        entry.due = entry.cron.next_after(record.served_until) if entry.cron is not None else None

    def _failed(self, failure: Failure, name: str) -> Optional[Deferred]:
        if failure.check(_Stop):
            return None
        if failure.check(_Stale):
            # Served by another node, or our lease is gone: read the state again.
            d = self.schedules.find(name)
            d.addCallback(lambda record: self.known(record) if record is not None else self.forget(name))
            d.addErrback(lambda f: None)
            return d
        entry = self._entries.get(name)
        delay = _retry_delay(0)
        if entry is not None:
            delay = _retry_delay(entry.failures)
            entry.failures += 1
            entry.hold_until = self.now_ms() + int(delay * 1000)
        self._log.warn(
            "Schedule {name}: cannot push a scheduled job; will retry in {delay} s: {why}",
            name=name, delay=delay, why=failure.getErrorMessage(),
        )
        return None

    def note_run(self, name: str, queue_name: str, job_id: int) -> None:
        """A job pushed by ``POST /schedule/{name}/run`` (``last_job`` only)."""
        entry = self._entries.get(name)
        if entry is not None:
            entry.record = attr.evolve(entry.record, last_job=(queue_name, job_id))


class _Stop(Exception):
    """This node may not fire any more (lease lost, schedule deleted)."""


class _Stale(Exception):
    """The store says the time was served already (by another node) or the lease is gone."""
