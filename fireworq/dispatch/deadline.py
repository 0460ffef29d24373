"""
Job deadlines (protocol B7 ``deadline``): no attempt starts after a job's
deadline; such a job goes to the failure log with the status C{expired}
and counts in C{fireworq_jobs_expired_total{queue}}.

The dispatcher asks twice: when a job is grabbed (L{expired_at_grab}:
do not deliver it) and when a failed job would be retried
(L{expires_before_retry}: the next try would start after the deadline, so
expire it now rather than keep it until then).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from fireworq.model import Result

#: The failure-log status of an expired job.
EXPIRED = "expired"


def expired_at_grab(deadline_at: Optional[int], now: int) -> bool:
    """Whether a job grabbed at ``now`` (ms) is past its deadline (ms), so must not be tried."""
    return deadline_at is not None and now > deadline_at


def expires_before_retry(deadline_at: Optional[int], next_try: int) -> bool:
    """Whether a retry due at ``next_try`` (ms) would start after the deadline."""
    return deadline_at is not None and next_try > deadline_at


def _rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expired_result(deadline_at: int, tries: int) -> Result:
    """
    The failure-log result of a job that expired after ``tries`` attempts
    (0 when it never started): C{{"status": "expired", "code": 0,
    "message": …}}.
    """
    attempts = "it was never tried" if tries == 0 else f"after {tries} attempt{'s' if tries != 1 else ''}"
    return Result(EXPIRED, 0, f"Deadline passed at {_rfc3339(deadline_at)}; {attempts}")
