"""
A finished job kept by its queue (protocol B8), and the pieces every store
shares to build, store and read it, so that the three stores keep exactly
the same values.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Dict, Optional, Tuple

import attr

from fireworq.joboptions.values import NO_OPTIONS, decode_options, options_json
from fireworq.model import (
    Completion,
    CompletionKind,
    Job,
    QueueDefinition,
    Result,
    ResultStatus,
    stored_int,
    stored_object,
    stored_str,
)

#: Bytes of a worker's answer kept as a kept job's ``output``.
OUTPUT_LIMIT = 65_536

#: The result status of a job that expired (B7's deadline).
EXPIRED = "expired"
#: The result status of a job canceled while grabbed (B9).
CANCELED = "canceled"


class FinishedState(str, enum.Enum):
    """How a kept job finished."""

    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"


#: Why a job went to the failure log (shown in a queue that keeps jobs).
PERMANENT = "permanent-failure"
RETRIES_EXHAUSTED = "retries-exhausted"


def failure_reason(result: Result) -> str:
    """
    Why a failure-log entry's job failed, from its recorded result: the
    worker said it failed permanently, its deadline passed, or it failed
    with no retry left.
    """
    if result.status == EXPIRED:
        return EXPIRED
    if result.status == ResultStatus.PERMANENT_FAILURE.value:
        return PERMANENT
    return RETRIES_EXHAUSTED


def capture_output(body: bytes, limit: int = OUTPUT_LIMIT) -> Tuple[str, bool]:
    """
    The text kept of an answer body: its first ``limit`` bytes, cut at a
    UTF-8 character boundary (a character never split), and whether it was
    cut.  Bytes that are not UTF-8 read as U+FFFD.
    """
    if len(body) <= limit:
        return body.decode("utf-8", "replace"), False
    cut = body[:limit]
    # Step back over the continuation bytes (10xxxxxx) of a last character
    # that the cut left incomplete.
    start = len(cut) - 1
    while start > 0 and len(cut) - start < 4 and cut[start] & 0xC0 == 0x80:
        start -= 1
    lead = cut[start]
    needed = 1
    if lead >= 0xF0:
        needed = 4
    elif lead >= 0xE0:
        needed = 3
    elif lead >= 0xC0:
        needed = 2
    if len(cut) - start < needed:
        cut = cut[:start]
    return cut.decode("utf-8", "replace"), True


def retention_seconds(definition: Optional[QueueDefinition], job_lifetime: int) -> int:
    """How long the queue keeps finished jobs: its ``retention``, else ``job_lifetime``."""
    if definition is not None and definition.defaults.retention is not None:
        return definition.defaults.retention
    return job_lifetime


@attr.s(frozen=True, slots=True, auto_attribs=True)
class KeptJob:
    """
    A finished job kept for its queue's retention: the job as it was when it
    finished, how it finished and its last attempt's result and times (ms).
    """

    job: Job
    state: str
    result: Result
    attempts: int
    started_at: int
    finished_at: int
    expires_at: int

    @property
    def id(self) -> int:
        """The job's id."""
        return self.job.id

    @property
    def elapsed(self) -> int:
        """The last attempt's duration in ms."""
        return max(0, self.finished_at - self.started_at)


def finished_state(completion: Completion, canceled: bool = False) -> str:
    """The state a completion leaves its job in (``canceled``: marked canceled)."""
    if canceled or completion.kind == CompletionKind.CANCEL:
        return FinishedState.CANCELED.value
    if completion.kind == CompletionKind.SUCCESS:
        return FinishedState.COMPLETED.value
    if completion.result.status == EXPIRED:
        return FinishedState.EXPIRED.value
    return FinishedState.FAILED.value


def kept_job(completion: Completion, now: int, canceled: bool = False) -> KeptJob:
    """
    The kept job a completion (with ``keep_ms``) leaves, finished at the
    store's ``now`` (ms): kept until ``now + keep_ms``.  A job that failed
    counts that failure (as its failure-log entry does).
    """
    job = completion.job
    state = finished_state(completion, canceled)
    result = completion.result
    if state == FinishedState.CANCELED.value and result.status != CANCELED:
        # An aborted delivery's own message (the client's CancelledError) says
        # nothing to a reader: say what happened when no answer arrived.
        message = result.message if result.code else "the job was canceled while being delivered"
        result = Result(CANCELED, result.code, message,
                        output=result.output, output_truncated=result.output_truncated)
    times = completion.attempt
    attempts = times.attempts if times is not None and times.attempts is not None else job.attempt
    if completion.kind == CompletionKind.FAIL:
        # retry_count may read -1: max_retries (fail_count + retry_count)
        # stays the job's own allowance.
        job = attr.evolve(job, fail_count=job.fail_count + 1, retry_count=job.retry_count - 1)
    started = times.started_at if times is not None else now
    finished = times.finished_at if times is not None else now
    job = attr.evolve(job, status=state, grabber_id=None, next_try=finished)
    return KeptJob(
        job=job,
        state=state,
        result=result,
        attempts=attempts,
        started_at=started,
        finished_at=finished,
        expires_at=now + completion.keep_ms,
    )


def kept_completions(completions: Any) -> Dict[int, Completion]:
    """The completions of ``completions`` whose job is to be kept, by job id."""
    return {
        c.job.id: c for c in completions if c.keep_ms > 0 and c.kind != CompletionKind.RETRY
    }


def encode_record(kept: KeptJob) -> str:
    """
    The ``record`` column of a kept job in the SQL stores: compact JSON of
    what is not in a column of its own (job id, state, times).
    """
    job = kept.job
    result = kept.result
    value: Dict[str, Any] = {
        "category": job.category,
        "url": job.url,
        "payload": job.payload,
        "created_at": job.created_at,
        "timeout": job.timeout,
        "fail_count": job.fail_count,
        "retry_count": job.retry_count,
        "retry_delay": job.retry_delay,
        "attempts": kept.attempts,
        "started_at": kept.started_at,
        "result": {"status": result.status, "code": result.code, "message": result.message},
    }
    if result.output is not None:
        value["result"]["output"] = result.output
    if result.output_truncated:
        value["result"]["output_truncated"] = True
    if not job.options.is_empty:
        value["options"] = options_json(job.options)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "replace").decode("utf-8")


def decode_record(job_id: int, state: str, finished_at: int, expires_at: int, text: Any) -> KeptJob:
    """Read a kept job from its columns; never fails (odd fields read as empty)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    value = stored_object(text)
    raw = value.get("result")
    raw = raw if isinstance(raw, dict) else {}
    output = raw.get("output")
    result = Result(
        stored_str(raw.get("status")),
        stored_int(raw.get("code")),
        stored_str(raw.get("message")),
        output=output if isinstance(output, str) else None,
        output_truncated=raw.get("output_truncated") is True,
    )
    options = value.get("options")
    job = Job(
        id=job_id,
        category=stored_str(value.get("category")),
        url=stored_str(value.get("url")),
        payload=stored_str(value.get("payload")),
        status=state,
        created_at=stored_int(value.get("created_at")),
        next_try=int(finished_at),
        timeout=stored_int(value.get("timeout")),
        fail_count=stored_int(value.get("fail_count")),
        retry_count=stored_int(value.get("retry_count")),
        retry_delay=stored_int(value.get("retry_delay")),
        attempts=stored_int(value.get("attempts")),
        options=decode_options(json.dumps(options)) if isinstance(options, dict) else NO_OPTIONS,
    )
    return KeptJob(
        job=job,
        state=state,
        result=result,
        attempts=stored_int(value.get("attempts")),
        started_at=stored_int(value.get("started_at")) or int(finished_at),
        finished_at=int(finished_at),
        expires_at=int(expires_at),
    )
