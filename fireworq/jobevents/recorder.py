"""
L{EventRecorder}: turns the job lifecycle, as the queue manager and the
dispatchers report it (L{fireworq.events.IQueueEvents}), into
L{fireworq.jobevents.model.JobEvent}s for its listeners.

While nobody listens it builds nothing: each callback returns after one
attribute test, so the push and delivery paths pay nothing for it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.events import IQueueEvents
from fireworq.jobevents import render
from fireworq.jobevents.model import (
    JOB_CANCELED,
    JOB_COMPLETED,
    JOB_EXPIRED,
    JOB_FAILED,
    JOB_PUSHED,
    JOB_RETRIED,
    IJobEventListener,
    JobEvent,
)
from fireworq.model import Completion, CompletionKind, Job, Result


def boot_token(now: Optional[float] = None) -> str:
    """A short token of this process's start (base 36 of the ms clock), the prefix of its event ids."""
    value = int((time.time() if now is None else now) * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out or "0"


@implementer(IQueueEvents)
class EventRecorder:
    """
    An observer of every queue's job events that makes L{JobEvent}s and
    hands them, in order, to its L{IJobEventListener}s.

    Event ids are C{"<boot>-<seq>"}: this process's boot token and a
    sequence number counting from 1, so an id of an earlier run of the
    server (or of another node) is never taken for one of this run.

    A delivery that fails because the job's deadline passes is reported by
    the dispatcher as a failure followed at once by the expiry; the
    recorder holds a C{job.failed} event until the end of the reactor turn
    so that such a pair becomes one C{job.expired} event.

    @ivar keeps_history: whether a queue keeps finished jobs (its job
        objects then show C{state} and C{attempts}, as its answers do).
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        keeps_history: Callable[[str], bool] = lambda queue: False,
        boot: Optional[str] = None,
    ) -> None:
        self._clock = clock
        self.keeps_history = keeps_history
        self.boot = boot if boot is not None else boot_token()
        self.listeners: List[IJobEventListener] = []
        #: The last sequence number given.
        self.seq = 0
        self._held: Optional[JobEvent] = None
        self._held_call: Optional[IDelayedCall] = None

    # -- listeners ---------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether any listener takes events (if not, none are made)."""
        return bool(self.listeners)

    def add_listener(self, listener: IJobEventListener) -> None:
        """Hand every event from now on to ``listener`` too."""
        self.listeners.append(listener)

    def remove_listener(self, listener: IJobEventListener) -> None:
        """Stop handing events to ``listener``."""
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            self._release()

    # -- making events -----------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def _make(self, type: str, queue: str, job: Any, now: int) -> JobEvent:
        self.seq += 1
        return JobEvent(type=type, id=f"{self.boot}-{self.seq}", time=now, queue=queue, job=job, seq=self.seq)

    def _emit(self, event: JobEvent) -> None:
        self._release()
        self._tell(event)

    def _tell(self, event: JobEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener.job_event(event)
            except Exception:
                self._log.failure("Job event listener {listener} failed", listener=type(listener).__name__)

    def _hold(self, event: JobEvent) -> None:
        self._release()
        self._held = event
        self._held_call = self._clock.callLater(0, self._release)

    def _release(self) -> None:
        held, self._held = self._held, None
        call, self._held_call = self._held_call, None
        if call is not None and call.active():
            call.cancel()
        if held is not None:
            self._tell(held)

    # -- IQueueEvents ------------------------------------------------------------

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        if not self.listeners:
            return
        now = self._now()
        keeps = self.keeps_history(queue_name)
        for job in jobs:
            self._emit(self._make(JOB_PUSHED, queue_name, render.pushed_job(job, keeps, now), now))

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        """Grabbing a job is not an event of its own."""

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        if not self.listeners:
            return
        now = self._now()
        duration_ms = max(0, int(duration * 1000))
        kind = completion.kind
        if kind is CompletionKind.RETRY:
            job = render.retried_job(completion, self.keeps_history(queue_name), now, duration_ms)
            self._emit(self._make(JOB_RETRIED, queue_name, job, now))
        elif kind is CompletionKind.SUCCESS:
            self._emit(self._make(JOB_COMPLETED, queue_name, render.finished_job(completion, now, duration_ms), now))
        elif kind is CompletionKind.CANCEL:
            self._emit(self._make(JOB_CANCELED, queue_name, render.finished_job(completion, now, duration_ms), now))
        else:
            event = self._make(JOB_FAILED, queue_name, render.finished_job(completion, now, duration_ms), now)
            if completion.result.status == "expired":
                self._emit(event.retyped(JOB_EXPIRED, event.job))
            else:
                self._hold(event)

    def expired(self, queue_name: str, jobs: Sequence[Job]) -> None:
        """``jobs`` went to the failure log because their deadline passed."""
        if not self.listeners:
            return
        now = self._now()
        for job in jobs:
            held = self._held
            if held is not None and held.queue == queue_name and held.job_id == job.id:
                # The failure just reported was this expiry.
                self._held = None
                event = held.retyped(JOB_EXPIRED, render.expired_job(job, held.time, duration_ms=self._elapsed(held)))
                self._emit(event)
            else:
                self._emit(self._make(JOB_EXPIRED, queue_name, render.expired_job(job, now), now))

    @staticmethod
    def _elapsed(event: JobEvent) -> int:
        result = event.job.get("result")
        value = result.get("elapsed") if isinstance(result, dict) else None
        return value if isinstance(value, int) else 0

    def canceled(self, queue_name: str, jobs: Sequence[Job], result: Optional[Result] = None) -> None:
        """``jobs`` were canceled (deleted while waiting, or their delivery aborted)."""
        if not self.listeners:
            return
        now = self._now()
        for job in jobs:
            self._emit(self._make(JOB_CANCELED, queue_name, render.canceled_job(job, now, result), now))
