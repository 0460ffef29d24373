"""
Job events (protocol: event hooks and live events): what happened to a job,
as one typed value with the body every consumer shows --
``{"type", "id", "time", "queue", "job"}``.

- L{model}: the event types and L{model.JobEvent};
- L{render}: the ``job`` object of each type (as ``GET /queue/{q}/job/{id}``
  shows the job, with its result once it finished);
- L{recorder}: L{recorder.EventRecorder}, an observer of the job lifecycle
  (L{fireworq.events.IQueueEvents}) that makes events only while someone
  listens, and hands them to its listeners;
- L{ring}: the bounded window of recent events that ``Last-Event-ID``
  resumes from;
- L{stream}: the Server-Sent Events hub and its per-client bounded streams.
"""

from fireworq.jobevents.model import (
    EVENT_TYPES,
    JOB_CANCELED,
    JOB_COMPLETED,
    JOB_EXPIRED,
    JOB_FAILED,
    JOB_PUSHED,
    JOB_RETRIED,
    IJobEventListener,
    JobEvent,
)
from fireworq.jobevents.recorder import EventRecorder

__all__ = [
    "EVENT_TYPES",
    "JOB_CANCELED",
    "JOB_COMPLETED",
    "JOB_EXPIRED",
    "JOB_FAILED",
    "JOB_PUSHED",
    "JOB_RETRIED",
    "IJobEventListener",
    "JobEvent",
    "EventRecorder",
]
