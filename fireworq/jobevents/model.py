"""The job event types and the event value shared by live events and hooks."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import attr
from zope.interface import Interface

JOB_PUSHED = "job.pushed"
JOB_COMPLETED = "job.completed"
JOB_RETRIED = "job.retried"
JOB_FAILED = "job.failed"
JOB_EXPIRED = "job.expired"
JOB_CANCELED = "job.canceled"

#: Every job event type, in lifecycle order.
EVENT_TYPES = (JOB_PUSHED, JOB_COMPLETED, JOB_RETRIED, JOB_FAILED, JOB_EXPIRED, JOB_CANCELED)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JobEvent:
    """
    One thing that happened to one job.

    @ivar type: one of L{EVENT_TYPES}.
    @ivar id: the event's id (unique on this node; live events resume by it).
    @ivar time: when it happened, ms since the epoch.
    @ivar queue: the job's queue.
    @ivar job: the job as C{GET /queue/{q}/job/{id}} shows it (with its
        C{result} once it finished), see L{fireworq.jobevents.render}.
    @ivar seq: the event's place in this node's sequence (for resuming).
    """

    type: str
    id: str
    time: int
    queue: str
    job: Dict[str, Any]
    seq: int = 0

    @property
    def job_id(self) -> Optional[int]:
        """The job's id."""
        value = self.job.get("id")
        return value if isinstance(value, int) else None

    def body(self) -> Dict[str, Any]:
        """The event as JSON: C{{"type", "id", "time", "queue", "job"}} (time in RFC 3339)."""
        from fireworq.web.routes import timestamp

        return {"type": self.type, "id": self.id, "time": timestamp(self.time), "queue": self.queue, "job": self.job}

    def json(self) -> str:
        """L{body} as compact JSON text on one line."""
        return json.dumps(self.body(), ensure_ascii=False, separators=(",", ":"))

    def retyped(self, type: str, job: Dict[str, Any]) -> "JobEvent":
        """The same event (same id and time) as another type with another job object."""
        return attr.evolve(self, type=type, job=job)


class IJobEventListener(Interface):
    """Whoever takes the events an L{fireworq.jobevents.recorder.EventRecorder} makes."""

    def job_event(event: JobEvent) -> None:
        """``event`` happened (called in the reactor thread, in event order)."""
