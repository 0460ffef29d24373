"""
What a worker's answer means for its job under the job's success rule
(protocol B7 ``success``).

With the rule C{"status"} (the default) the answer's JSON ``status``
decides, as L{fireworq.dispatch.delivery.classify} reads it (A1).  With
C{"2xx"} any 2xx answer completes the job whatever its body, as webhook
receivers answer; any other answer is a failure, never retried when its
body says C{permanent-failure} (A1).  The recorded result's ``status`` is
the body's JSON ``status`` when it has one, else C{success} for a 2xx and
C{failure} otherwise -- so what is recorded and what happens to the job
may differ, and a L{Verdict} carries both.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import attr

from fireworq.dispatch.delivery import QUOTED_BODY_BYTES, classify
from fireworq.joboptions.values import SUCCESS_2XX
from fireworq.model import Completion, CompletionKind, Job, Result, ResultStatus

#: The statuses of A1 that a worker may report.
_REPORTED = frozenset(
    (ResultStatus.SUCCESS.value, ResultStatus.FAILURE.value, ResultStatus.PERMANENT_FAILURE.value)
)

#: How L{classify} starts the message of an answer without a usable status.
_UNUSABLE = ("Invalid result status: ", "Cannot parse body as JSON: ")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Verdict:
    """
    The meaning of one answer.

    @ivar outcome: what happens to the job: C{success}, C{failure} (retried
        while retries are left) or C{permanent-failure} (a
        L{ResultStatus} value).
    @ivar result: what is recorded (logs, failure log, job history).
    """

    outcome: str
    result: Result

    def completion(self, job: Job) -> Completion:
        """
        The store-side effect on ``job`` (the retry rule of A1, applied to
        the outcome), carrying the recorded result.
        """
        if self.outcome == ResultStatus.SUCCESS.value:
            kind = CompletionKind.SUCCESS
        elif self.outcome == ResultStatus.PERMANENT_FAILURE.value or job.retry_count <= 0:
            kind = CompletionKind.FAIL
        else:
            kind = CompletionKind.RETRY
        return Completion(job=job, kind=kind, result=self.result)


def is_2xx(code: int) -> bool:
    """Whether an HTTP status code is a success (200-299)."""
    return 200 <= code <= 299


def _quote(body: bytes) -> str:
    text = body[:QUOTED_BODY_BYTES].decode("utf-8", "replace")
    if len(body) > QUOTED_BODY_BYTES:
        text += "…"
    return text


def _stated_status(body: bytes) -> Optional[str]:
    """
    The ``status`` string of a JSON object body that L{classify} finds no
    A1 status in (C{{"status": "ok"}}), or None.
    """
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(value, dict):
        status = value.get("status")
        if isinstance(status, str) and status:
            return status
    return None


def _stated_message(body: bytes) -> str:
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    message = value.get("message") if isinstance(value, dict) else None
    return message if isinstance(message, str) else ""


def judge_2xx(code: int, body: bytes) -> Verdict:
    """The L{Verdict} on a complete answer under the rule C{"2xx"}."""
    ok = is_2xx(code)
    read = classify(code, body)
    if read.status in _REPORTED and not read.message.startswith(_UNUSABLE):
        stated: Optional[str] = read.status
        message = read.message
    else:
        stated = _stated_status(body)
        message = _stated_message(body) if stated else ""
    if ok:
        outcome = ResultStatus.SUCCESS.value
    elif stated == ResultStatus.PERMANENT_FAILURE.value:
        outcome = ResultStatus.PERMANENT_FAILURE.value
    else:
        outcome = ResultStatus.FAILURE.value
        if not message:
            message = f"Not a 2xx answer: HTTP {code}\nOriginal response body:\n{_quote(body)}"
    if stated is None:
        stated = ResultStatus.SUCCESS.value if ok else ResultStatus.FAILURE.value
    return Verdict(outcome=outcome, result=Result(stated, code, message))


def judge(rule: str, code: int, body: bytes) -> Verdict:
    """
    The L{Verdict} on a complete answer (``code``, ``body``) under the
    job's success ``rule`` (L{fireworq.joboptions.values.JobOptions.effective_success}).
    Under C{"status"} the outcome is the classified status (A1), exactly as
    L{classify} decides it.
    """
    if rule == SUCCESS_2XX:
        return judge_2xx(code, body)
    return verdict_of(classify(code, body))


def verdict_of(result: Result) -> Verdict:
    """
    The L{Verdict} of a result decided without a complete answer (timeout,
    connection error, answer too large) or by L{classify}: its status is its
    outcome (an internal failure is a failure).
    """
    outcome = result.status
    if outcome not in _REPORTED:
        outcome = ResultStatus.FAILURE.value
    return Verdict(outcome=outcome, result=result)
