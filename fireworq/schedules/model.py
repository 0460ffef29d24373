"""
Value types and interfaces of schedules (B10).

A schedule's definition is what ``PUT /schedule/{name}`` gave; its record
adds what the store keeps about it: since when it runs (the time of its
latest ``PUT``), the scheduled time it last served and the job it last
pushed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import attr
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

#: Catch-up policies: after downtime skip the missed times (``none``), or
#: push once for the latest missed time (``last``).
CATCH_UP_POLICIES = ("none", "last")

#: The job fields of a schedule in the order answers show them (a push's
#: order: Part A, then the options; ``name`` is shown as ``job_name``).
JOB_FIELD_ORDER = (
    "url", "payload", "run_after", "max_retries", "retry_delay", "timeout",
    "name", "tags", "headers", "priority", "retry_backoff", "retry_max_delay",
    "retry_jitter", "success", "deadline",
)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ScheduleDefinition:
    """
    One schedule as defined.

    @ivar job: the job fields of A2/B7 as JSON text, kept as the API wrote
        it so that numbers in the payload stay exact (the job's ``name`` is
        kept as ``name``; answers show it as ``job_name``).
    """

    name: str
    cron: str
    category: str
    job: str
    timezone: str = "UTC"
    enabled: bool = True
    catch_up: str = "none"

    def to_json(self) -> Dict[str, Any]:
        """
        The schedule's own fields as answered; the API adds the job fields
        after them (read from L{job} with exact numbers, in L{JOB_FIELD_ORDER}).
        """
        return {
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "category": self.category,
            "enabled": self.enabled,
            "catch_up": self.catch_up,
        }

    def encode(self) -> str:
        """The definition as stored (JSON text)."""
        return json.dumps(
            {
                "cron": self.cron,
                "timezone": self.timezone,
                "category": self.category,
                "enabled": self.enabled,
                "catch_up": self.catch_up,
                "job_text": self.job,
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def decode(cls, name: str, text: str) -> "ScheduleDefinition":
        """A definition from L{encode}'s text."""
        value = json.loads(text)
        job = value.get("job_text")
        if not isinstance(job, str):
            job = json.dumps(value.get("job") or {}, separators=(",", ":"))
        return cls(
            name=name,
            cron=value["cron"],
            category=value["category"],
            job=job,
            timezone=value.get("timezone", "UTC"),
            enabled=bool(value.get("enabled", True)),
            catch_up=value.get("catch_up", "none"),
        )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ScheduleRecord:
    """
    A schedule and its state as stored.

    @ivar since: ms of the latest ``PUT``: times up to it are never pushed.
    @ivar last_run_at: ms of the scheduled time last served (pushed or
        skipped as missed), or None.
    @ivar last_job: (queue name, job id) of the last pushed job, or None.
    """

    definition: ScheduleDefinition
    since: int
    last_run_at: Optional[int] = None
    last_job: Optional[Tuple[str, int]] = None

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def served_until(self) -> int:
        """Times at or before this are served (or not to be served)."""
        return max(self.since, self.last_run_at or 0)


class IPushGuard(Interface):
    """
    What a guarded push (L{fireworq.store.interface.IJobStore.push_guarded})
    runs in its transaction: L{claim} before storing the job (nothing is
    stored when it answers False), L{record} after.  ``cursor`` is the
    driver's cursor or connection of that transaction (None in memory).
    """

    def claim(cursor: Any) -> bool:
        """Mark the scheduled time served; False if it was already (or the lease is lost)."""

    def record(cursor: Any, queue_name: str, job_id: int) -> None:
        """Remember the job pushed for the time."""


class ISchedules(Interface):
    """The schedules of a store: definitions and state (one row per schedule)."""

    kind = Attribute("The driver's name: in-memory, sqlite or mysql.")

    def start() -> "Deferred[None]":
        """Create the table if needed."""

    def stop() -> "Deferred[None]":
        """Release resources."""

    def list() -> "Deferred[List[ScheduleRecord]]":
        """Every schedule, by name."""

    def find(name: str) -> "Deferred[Optional[ScheduleRecord]]":
        """One schedule, or None."""

    def put(definition: ScheduleDefinition, now_ms: int) -> "Deferred[ScheduleRecord]":
        """Create or replace a definition; ``since`` becomes ``now_ms``, the state is kept."""

    def delete(name: str) -> "Deferred[Optional[ScheduleRecord]]":
        """Delete a schedule; fire with what it was, or None."""

    def guard(name: str, at_ms: int, epoch: Optional[int]) -> IPushGuard:
        """The guard of pushing the time ``at_ms`` under the scheduler lease's ``epoch``."""

    def skip(name: str, at_ms: int, epoch: Optional[int]) -> "Deferred[bool]":
        """Mark ``at_ms`` served without a job (a missed time); True if this call did."""

    def set_last_job(name: str, queue_name: str, job_id: int) -> "Deferred[None]":
        """Record a job pushed by ``run`` (``last_run_at`` unchanged)."""
