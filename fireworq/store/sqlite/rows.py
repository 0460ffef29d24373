"""
Converting between the sqlite store's rows and the model's value types.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from fireworq.joboptions.values import NO_OPTIONS, decode_options
from fireworq.model import FailedJob, Job
from fireworq.store.failure_log import decode_failure_options, decode_failure_result

#: Ids bound in one ``IN (...)`` list.
CHUNK = 500

#: The job columns every job query selects, in the order L{job_from_row} reads.
JOB_COLUMNS = (
    "job_id, category, url, payload, status, created_at, next_try, timeout,"
    " fail_count, retry_count, retry_delay, grabber_id, attempts, options"
)

#: The failure-log columns every failure query selects (L{failed_from_row}).
FAILED_COLUMNS = (
    "failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at"
)

#: The condition on a job that the caller (``?`` = job id, grabber id) holds.
OWNED = "job_id = ? AND status = 'grabbed' AND grabber_id = ?"


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """``ids`` in runs of at most L{CHUNK}."""
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def job_from_row(row: Sequence) -> Job:
    """A L{Job} from a row of L{JOB_COLUMNS} (a NULL payload reads as "")."""
    values = list(row)
    if values[3] is None:
        values[3] = ""
    text = values[13]
    values[13] = NO_OPTIONS if text is None else decode_options(text)
    return Job(*values)


def failed_from_row(row: Sequence) -> FailedJob:
    """A L{FailedJob} from a row of L{FAILED_COLUMNS}."""
    (failure_id, job_id, category, url, payload, text, fail_count, failed_at, created_at) = row
    result, max_retries, retry_delay, timeout = decode_failure_result(text or "")
    return FailedJob(
        id=failure_id,
        job_id=job_id,
        category=category,
        url=url,
        payload=payload or "",
        result=result,
        fail_count=fail_count,
        failed_at=failed_at,
        created_at=created_at,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
        options=decode_failure_options(text or ""),
    )
