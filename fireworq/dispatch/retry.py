"""
How long a failed job waits before its next try (protocol B7).

The n-th retry waits ``min(retry_delay * retry_backoff ** (n - 1),
retry_max_delay)`` seconds; with ``retry_jitter`` the wait is drawn
uniformly from ``[wait / 2, wait]``; an answer's C{Retry-After} header
(delta seconds or an HTTP date) raises the wait to at least what it asks.
With the defaults (backoff 1, no maximum, no jitter) the wait is
``retry_delay``, the original's fixed delay (A1).

This is the policy of a job's retries, set per job by its pusher; the
server's own retries (store, leases, completions) use L{fireworq.backoff},
whose formula (Twisted's, with additive jitter) is not the one B7 states.
"""

from __future__ import annotations

import random
from typing import Optional, Protocol, Sequence, Union

import attr
from twisted.web.http import stringToDatetime

from fireworq.joboptions.values import JobOptions
from fireworq.model import UINT32_MAX

#: The longest wait, in seconds: the largest C{retry_delay} a job may have.
#: A backoff that grows past it, or a C{Retry-After} beyond it, is cut to it.
MAX_WAIT = float(UINT32_MAX)

#: Digits of a C{Retry-After} delta beyond which it is surely past L{MAX_WAIT}.
_MAX_DELTA_DIGITS = 12


class RandomSource(Protocol):
    """What the jitter draws from: C{random.Random} and its subclasses."""

    def uniform(self, a: float, b: float) -> float:
        """A number from ``a`` to ``b``."""


#: The jitter's source when none is given.
_RANDOM = random.Random()


@attr.s(frozen=True, slots=True, auto_attribs=True)
class RetryPolicy:
    """
    The retry timing of one job.

    @ivar retry_delay: seconds before the first retry (A2).
    @ivar backoff: the factor each later wait grows by (1 to 10).
    @ivar max_delay: the longest wait in seconds, or None for no limit
        but L{MAX_WAIT}.
    @ivar jitter: spread each wait uniformly over its upper half.
    """

    retry_delay: int = 0
    backoff: float = 1.0
    max_delay: Optional[int] = None
    jitter: bool = False

    @classmethod
    def for_job(cls, retry_delay: int, options: JobOptions) -> "RetryPolicy":
        """The policy of a job with this ``retry_delay`` and these options."""
        return cls(
            retry_delay=retry_delay,
            backoff=options.effective_backoff,
            max_delay=options.retry_max_delay,
            jitter=options.effective_jitter,
        )

    def base_wait(self, retry: int) -> float:
        """
        The wait in seconds before retry number ``retry`` (1 for the first
        retry, that is after the first failed try), before jitter.
        """
        if retry < 1:
            raise ValueError(f"retries are counted from 1, not {retry}")
        if self.retry_delay <= 0:
            wait = 0.0
        elif self.backoff == 1:
            wait = float(self.retry_delay)
        else:
            try:
                wait = self.retry_delay * self.backoff ** (retry - 1)
            except OverflowError:
                wait = MAX_WAIT
        if self.max_delay is not None:
            wait = min(wait, float(self.max_delay))
        return min(wait, MAX_WAIT)

    def wait(
        self,
        retry: int,
        retry_after: Optional[float] = None,
        rng: Optional[RandomSource] = None,
    ) -> float:
        """
        The wait in seconds before retry number ``retry``: L{base_wait},
        jittered when the policy says so (drawn from ``rng``), then raised
        to ``retry_after`` seconds when the failed answer asked for that
        (L{parse_retry_after}).
        """
        wait = self.base_wait(retry)
        if self.jitter and wait > 0:
            wait = (rng or _RANDOM).uniform(wait / 2, wait)
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, MAX_WAIT)
        return wait

    def wait_ms(
        self,
        retry: int,
        retry_after: Optional[float] = None,
        rng: Optional[RandomSource] = None,
    ) -> int:
        """L{wait} in whole milliseconds, the unit of a stored job's C{next_try}."""
        return int(round(self.wait(retry, retry_after, rng) * 1000))


def parse_retry_after(value: Union[bytes, str, None], now: float) -> Optional[float]:
    """
    The seconds a C{Retry-After} header value asks to wait, ``now`` being the
    current time in seconds since the epoch: a delta in whole seconds, or an
    HTTP date (any of the three forms of RFC 9110, read by Twisted's
    L{stringToDatetime}) less ``now``, at least 0.  None when the value is
    absent or neither form (an unreadable header is ignored, as RFC 9110
    lets a client do).
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = value.encode("ascii")
        except UnicodeEncodeError:
            return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        if len(text) > _MAX_DELTA_DIGITS:
            return MAX_WAIT
        return min(float(int(text)), MAX_WAIT)
    try:
        when = stringToDatetime(text)
    except (ValueError, KeyError, IndexError, OverflowError, TypeError):
        return None
    return min(max(0.0, when - now), MAX_WAIT)


def retry_after_of(values: Optional[Sequence[bytes]], now: float) -> Optional[float]:
    """
    L{parse_retry_after} of a response's raw C{Retry-After} values
    (C{response.headers.getRawHeaders(b"retry-after")}): the first one, as
    several are not meaningful.
    """
    if not values:
        return None
    return parse_retry_after(values[0], now)
