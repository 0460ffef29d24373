"""
Converting between MySQL rows and the model's value types.

The original's tables are ``CHARSET=binary``: text columns come back as
bytes, which are UTF-8 as the servers write them (anything else is shown
with replacement characters rather than refused).
"""

from __future__ import annotations

import struct
from typing import Any, Optional, Sequence

from fireworq.joboptions.values import NO_OPTIONS, decode_options
from fireworq.model import FailedJob, Job
from fireworq.store.failure_log import decode_failure_options, decode_failure_result

#: The job columns every job query selects, in the order L{job_from_row} reads.
JOB_COLUMNS = (
    "job_id, category, url, payload, status, created_at, next_try, "
    "timeout, fail_count, retry_count, retry_delay, grabber_id, attempts, options"
)

#: L{JOB_COLUMNS} of a job table without our ``attempts`` column (one the
#: original created, when the server may not alter it): attempts read as 0.
UNCOUNTED_JOB_COLUMNS = JOB_COLUMNS.replace(", attempts", ", 0")


def job_columns(counted: bool, optioned: bool) -> str:
    """
    The job columns to select from a table with (or without) our
    ``attempts`` column and B7 columns (read as 0 and no options without).
    """
    columns = JOB_COLUMNS if counted else UNCOUNTED_JOB_COLUMNS
    return columns if optioned else columns.replace(", options", ", NULL")

#: The failure-log columns every failure query selects (L{failed_from_row}).
FAILED_COLUMNS = "failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at"


def text(value: Any) -> str:
    """A text column's value as ``str`` (NULL as ``""``)."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def integer(value: Any, default: int = 0) -> int:
    """A numeric column's value as ``int`` (NULL as ``default``)."""
    if value is None:
        return default
    return int(value)


def job_from_row(row: Sequence[Any]) -> Job:
    """A L{Job} from a row of L{JOB_COLUMNS}."""
    return Job(
        id=int(row[0]),
        category=text(row[1]),
        url=text(row[2]),
        payload=text(row[3]),
        status=text(row[4]),
        created_at=integer(row[5]),
        next_try=integer(row[6]),
        timeout=integer(row[7]),
        fail_count=integer(row[8]),
        retry_count=integer(row[9]),
        retry_delay=integer(row[10]),
        grabber_id=None if row[11] is None else int(row[11]),
        attempts=integer(row[12]),
        options=NO_OPTIONS if len(row) < 14 or row[13] is None else decode_options(text(row[13])),
    )


def failed_from_row(row: Sequence[Any]) -> FailedJob:
    """
    A L{FailedJob} from a row of L{FAILED_COLUMNS}.  Rows the original
    server wrote have no job settings in ``result``; they read as 0.
    """
    stored = text(row[5])
    result, max_retries, retry_delay, timeout = decode_failure_result(stored)
    return FailedJob(
        id=int(row[0]),
        job_id=int(row[1]),
        category=text(row[2]),
        url=text(row[3]),
        payload=text(row[4]),
        result=result,
        fail_count=integer(row[6]),
        failed_at=integer(row[7]),
        created_at=integer(row[8]),
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
        options=decode_failure_options(stored),
    )


def float32(value: Any) -> float:
    """
    A ``FLOAT`` column's value as the shortest decimal that is the same
    single-precision number (0.1 rather than 0.10000000149011612), so that a
    definition reads back as it was written.
    """
    if value is None:
        return 0.0
    number = float(value)
    packed = struct.pack("<f", number)
    for digits in range(6, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return number


def same_float32(a: float, b: float) -> bool:
    """Whether two numbers are stored as the same ``FLOAT``."""
    return struct.pack("<f", float(a)) == struct.pack("<f", float(b))


def placeholders(count: int) -> str:
    """``%s, %s, ...`` for an IN list of ``count`` values."""
    return ", ".join(["%s"] * count)


def optional_first(rows: Sequence[Any]) -> Optional[Any]:
    """The first row, or None."""
    return rows[0] if rows else None
