"""
When the client tries a call again: only calls that are safe to repeat
(idempotent ones), only after a 503 or a transport failure (no answer, a
broken connection, a timeout), a bounded number of times with exponential
backoff and jitter, at least as long as the server's ``Retry-After``.
"""

from __future__ import annotations

import random
from typing import Optional

import attr
import httpx

#: httpx failures after which a repeatable call is tried again: no answer
#: arrived (refused, reset, timed out, closed early).
RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

#: Answers after which a repeatable call is tried again.
RETRYABLE_STATUSES = frozenset({503})


@attr.s(auto_attribs=True, frozen=True)
class RetryPolicy:
    """
    How often and how patiently to repeat a call that may be repeated.

    @ivar attempts: tries in all, the first included (1: never retry).
    @ivar backoff: seconds before the first retry; each next waits
        ``factor`` times longer, at most ``max_delay``.
    @ivar jitter: wait a random time in [delay/2, delay] (spreads clients
        that failed together).
    """

    attempts: int = 4
    backoff: float = 0.25
    factor: float = 2.0
    max_delay: float = 5.0
    jitter: bool = True

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        wait = min(self.backoff * self.factor ** (retry - 1), self.max_delay)
        if self.jitter:
            wait = random.uniform(wait / 2, wait)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def may_retry(self, attempt: int) -> bool:
        """Whether another try may follow try number ``attempt`` (1 for the first)."""
        return attempt < self.attempts


#: A policy that never retries.
NO_RETRY = RetryPolicy(attempts=1)
