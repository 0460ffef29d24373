"""
Answers of the job history (protocol B8): kept finished jobs, the ``state``
and ``attempts`` of jobs in a queue that keeps finished jobs, why a
failure-log entry failed, and the ``name``/``tag`` filters of the lists.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Union

from twisted.internet.defer import Deferred, gatherResults

from fireworq.history.filters import BadFilter, JobFilter, parse_filter
from fireworq.history.record import KeptJob, failure_reason, retention_seconds
from fireworq.joboptions.values import add_option_fields
from fireworq.model import FailedJob, Job, JobStatus, NewJob, Replay, Result, pushed_again
from fireworq.web.body import stored_json_value
from fireworq.web.errors import bad_request
from fireworq.web.routes import timestamp

#: The ``status`` of a kept finished job (A5's are ``claimed`` and ``grabbed``).
FINISHED = "finished"


def keeps_history(routes: Any, queue_name: str) -> bool:
    """Whether the queue keeps finished jobs (its retention, or the server's ``job_lifetime``, is > 0)."""
    definition = routes.manager.defined(queue_name)
    return retention_seconds(definition, routes.config.job_lifetime) > 0


def list_filter(request: Any) -> JobFilter:
    """The ``name`` and ``tag`` filters of a list request (400 when malformed)."""
    try:
        names = [v.decode("utf-8") for v in request.args.get(b"name", [])]
        tags = [v.decode("utf-8") for v in request.args.get(b"tag", [])]
    except UnicodeDecodeError:
        raise bad_request("query parameters name and tag must be valid UTF-8")
    try:
        return parse_filter(names, tags)
    except BadFilter as e:
        raise bad_request(str(e))


def live_state(job: Job, now_ms: Optional[int] = None) -> str:
    """``waiting``, ``deferred`` or ``grabbed``: where a job not yet finished stands."""
    if job.status == JobStatus.GRABBED.value:
        return "grabbed"
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    return "waiting" if job.next_try <= now_ms else "deferred"


def now_ms(routes: Any) -> int:
    """The time on the server's clock (the queue manager's), in ms."""
    clock = getattr(routes.manager, "clock", None)
    return int((clock.seconds() if clock is not None else time.time()) * 1000)


def with_state(out: Dict[str, Any], job: Job, now: Optional[int] = None, state: Optional[str] = None) -> Dict[str, Any]:
    """
    A job answer of a queue that keeps finished jobs: ``state`` (the list's
    when given, else from the job and ``now``) and ``attempts`` added.
    """
    out["state"] = state or live_state(job, now)
    out["attempts"] = job.attempts
    return out


def _replay_state(routes: Any, queue_name: str, out: Dict[str, Any], job_id: int) -> "Deferred[None]":
    """
    Add the current ``state`` and ``attempts`` of the job a replayed push
    answer names (still in the queue, or kept finished); a job no longer
    stored (deleted, or past its retention) adds nothing.
    """
    d = routes.inspection.find_job(queue_name, job_id)

    def found(job: Optional[Job]) -> Any:
        if job is not None:
            with_state(out, job, now_ms(routes))
            return None
        kept = routes.inspection.find_kept(queue_name, job_id)

        def finished(k: Optional[KeptJob]) -> None:
            if k is not None:
                out["state"] = k.state
                out["attempts"] = k.attempts

        kept.addCallback(finished)
        return kept

    d.addCallback(found)
    return d


def push_states(
    routes: Any, queue_name: str, answers: List[Dict[str, Any]], stored: Sequence[Union[Job, Replay]]
) -> "Union[List[Dict[str, Any]], Deferred[List[Dict[str, Any]]]]":
    """
    Push answers as a queue that keeps finished jobs shows them (B8): each
    with the job's ``state`` and ``attempts`` when answered -- ``waiting``
    or ``deferred`` with 0 attempts as stored, ``grabbed`` with 1 when
    stored straight for this node's dispatcher (immediate dispatch, B4);
    a replayed idempotency key shows its job's state now.  Other queues'
    answers are left in the Part A shape.

    Returns ``answers`` itself when nothing has to be looked up (every push
    to a queue that keeps no finished jobs: the push path takes no Deferred
    for it), else a Deferred firing with them once the replayed jobs'
    states are known; a Deferred's callback may return either.
    """
    if not keeps_history(routes, queue_name):
        return answers
    now = now_ms(routes)
    lookups = []
    for out, job in zip(answers, stored):
        if isinstance(job, Replay):
            lookups.append(_replay_state(routes, queue_name, out, job.job_id))
        else:
            with_state(out, job, now)
    if not lookups:
        return answers
    d = gatherResults(lookups, consumeErrors=True)
    # The first lookup's own failure (a store error answers as usual).
    d.addCallbacks(lambda _: answers, lambda f: f.value.subFailure)
    return d


def with_reason(out: Dict[str, Any], failed: FailedJob) -> Dict[str, Any]:
    """
    A failure-log answer of a queue that keeps finished jobs: ``reason`` says
    whether the job failed permanently, ran out of retries or expired.
    """
    out["reason"] = failure_reason(failed.result)
    return out


def kept_json(kept: KeptJob) -> Dict[str, Any]:
    """A kept finished job as the API shows it: the job, its state, attempts and last result."""
    job = kept.job
    out: Dict[str, Any] = {"id": job.id, "category": job.category, "url": job.url}
    if job.payload:
        out["payload"] = stored_json_value(job.payload)
    out.update(
        {
            "status": FINISHED,
            "created_at": timestamp(job.created_at),
            "timeout": job.timeout,
            "fail_count": job.fail_count,
            "max_retries": job.max_retries,
            "retry_delay": job.retry_delay,
        }
    )
    add_option_fields(out, job.options)
    out["state"] = kept.state
    out["attempts"] = kept.attempts
    out["result"] = result_json(kept.result, kept.started_at, kept.finished_at, kept.elapsed)
    return out


def result_json(result: Result, started_at: int, finished_at: int, elapsed: int) -> Dict[str, Any]:
    """A job's last result as the API shows it, with when its attempt ran."""
    out: Dict[str, Any] = {
        "status": result.status,
        "code": result.code,
        "message": result.message,
        "output": result.output if result.output is not None else "",
    }
    if result.output_truncated:
        out["output_truncated"] = True
    out["started_at"] = timestamp(started_at)
    out["finished_at"] = timestamp(finished_at)
    out["elapsed"] = elapsed
    return out


def as_new_job(kept: KeptJob) -> NewJob:
    """A kept job pushed again: as first pushed, due now, without its idempotency key."""
    return pushed_again(kept.job)
