"""
The ``result`` column of a failure-log entry, as every driver stores and
reads it: the delivery's L{Result} as JSON (the three fields the original
server reads), plus the job's own ``max_retries``, ``retry_delay``,
``timeout`` and options under ``"job"``, so that the entry can be pushed
again.  (L{fireworq.store.common.failure_result_text} makes it storable.)
"""

from __future__ import annotations

import json
from typing import Tuple

from fireworq.joboptions.values import NO_OPTIONS, JobOptions, decode_options, options_json
from fireworq.model import UINT32_MAX, Job, Result


def encode_failure_result(job: Job, result: Result) -> str:
    """
    The ``result`` column of a failure-log row: the L{Result} as JSON, plus
    the job's ``max_retries``, ``retry_delay`` and ``timeout`` under
    ``"job"`` (ignored by the original server, which reads only the three
    result fields).
    """
    value = result.to_json()
    value["job"] = {
        "max_retries": job.max_retries,
        "retry_delay": job.retry_delay,
        "timeout": job.timeout,
    }
    if not job.options.is_empty:
        value["job"]["options"] = options_json(job.options)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_failure_result(text: str) -> Tuple[Result, int, int, int]:
    """
    Read a ``result`` column: the L{Result} and the job's max_retries,
    retry_delay and timeout (0 when absent, as in rows the original wrote).
    """
    result = Result.from_json(text)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        value = {}
    job = value.get("job") if isinstance(value, dict) else None
    if not isinstance(job, dict):
        job = {}

    def field(name: str) -> int:
        number = job.get(name)
        if isinstance(number, int) and not isinstance(number, bool) and 0 <= number <= UINT32_MAX:
            return number
        return 0

    return result, field("max_retries"), field("retry_delay"), field("timeout")


def decode_failure_options(text: str) -> JobOptions:
    """
    The job's options (B7) kept in a ``result`` column under
    ``"job"``/``"options"``; none in rows the original (or a Part A job) wrote.
    """
    if not text or '"options"' not in text:
        return NO_OPTIONS
    try:
        value = json.loads(text)
    except ValueError:
        return NO_OPTIONS
    job = value.get("job") if isinstance(value, dict) else None
    options = job.get("options") if isinstance(job, dict) else None
    if not isinstance(options, dict):
        return NO_OPTIONS
    return decode_options(json.dumps(options))
