"""
The ``job`` object of each event type: the job as ``GET /queue/{q}/job/{id}``
shows it at that moment.

- ``job.pushed``: the job as pushed (with ``state``/``attempts`` in a queue
  that keeps finished jobs, as the job's answer there);
- ``job.retried``: the job waiting for its next try, plus the failed
  attempt's ``result``;
- ``job.completed``, ``job.failed``, ``job.expired``, ``job.canceled``:
  the finished job as a queue that keeps finished jobs shows it (``state``,
  ``attempts`` and ``result`` of the last attempt, with its times) -- also
  for a queue that does not keep it, where ``output`` is empty.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import attr

from fireworq.history.record import CANCELED, kept_job
from fireworq.model import AttemptTimes, Completion, CompletionKind, Job, Result


def pushed_job(job: Job, keeps_history: bool, now_ms: int) -> Dict[str, Any]:
    """The ``job`` of a ``job.pushed`` event."""
    from fireworq.web.history import with_state
    from fireworq.web.routes import job_json

    out = job_json(job)
    return with_state(out, job, now_ms) if keeps_history else out


def _result_json(result: Result, started_at: int, finished_at: int) -> Dict[str, Any]:
    from fireworq.web.history import result_json

    return result_json(result, started_at, finished_at, max(0, finished_at - started_at))


def retried_job(completion: Completion, keeps_history: bool, now_ms: int, duration_ms: int) -> Dict[str, Any]:
    """
    The ``job`` of a ``job.retried`` event: the job as it waits for its next
    try (one more failure counted), with the failed attempt's ``result``.
    """
    from fireworq.web.history import with_state
    from fireworq.web.routes import job_json

    job = completion.job
    wait_ms = completion.retry_wait_ms
    if wait_ms is None:
        wait_ms = job.retry_delay * 1000
    waiting = attr.evolve(
        job,
        status="claimed",
        grabber_id=None,
        fail_count=job.fail_count + 1,
        retry_count=job.retry_count - 1,
        next_try=now_ms + wait_ms,
    )
    out = job_json(waiting)
    if keeps_history:
        with_state(out, waiting, now_ms)
    times = completion.attempt  # the attempt's own times when the dispatcher gave them
    if times is not None:
        out["result"] = _result_json(completion.result, times.started_at, times.finished_at)
    else:
        out["result"] = _result_json(completion.result, now_ms - duration_ms, now_ms)
    return out


def finished_job(completion: Completion, now_ms: int, duration_ms: int, attempts: Optional[int] = None) -> Dict[str, Any]:
    """
    The ``job`` of a ``job.completed``/``failed``/``expired``/``canceled``
    event: the finished job with its state, attempts and last result.
    """
    from fireworq.web.history import kept_json

    if completion.attempt is None:
        completion = attr.evolve(completion, attempt=AttemptTimes(now_ms - duration_ms, now_ms, attempts))
    return kept_json(kept_job(completion, now_ms))


def canceled_job(job: Job, now_ms: int, result: Optional[Result] = None) -> Dict[str, Any]:
    """The ``job`` of a ``job.canceled`` event (``result`` of an aborted delivery, if any)."""
    if result is None:
        result = Result(CANCELED, 0, "the job was canceled")
    completion = Completion(job, CompletionKind.CANCEL, result)
    return finished_job(completion, now_ms, 0, attempts=job.attempts)


def expired_job(job: Job, now_ms: int, result: Optional[Result] = None, duration_ms: int = 0) -> Dict[str, Any]:
    """The ``job`` of a ``job.expired`` event (``result``: the expiry as the failure log shows it)."""
    if result is None:
        from fireworq.dispatch.deadline import expired_result

        result = expired_result(job.deadline_at or now_ms, job.attempts)
    return finished_job(Completion(job, CompletionKind.FAIL, result), now_ms, duration_ms, attempts=job.attempts)
