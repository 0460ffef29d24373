"""
Per-token request limits: a token bucket per token on each node.

A token with ``rate`` r and ``burst`` b may make b requests at once and r
a second on average: its bucket holds up to b permits and gains r a
second.  Every answer to the token carries ``RateLimit-Limit`` (b),
``RateLimit-Remaining`` (whole permits left) and ``RateLimit-Reset``
(seconds until the bucket is full again), as the IETF draft "RateLimit
header fields for HTTP" names them; a request that finds the bucket empty
is answered ``429`` with ``Retry-After`` (seconds until one permit is
back).  Limits are per node: behind a load balancer over n nodes a token
gets up to n times its rate.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Tuple

import attr


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Decision:
    """The outcome of one request against a bucket."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the bucket is full again.
    reset: int
    #: Seconds until the next permit (0 when allowed).
    retry_after: int

    def headers(self) -> List[Tuple[bytes, bytes]]:
        """The RateLimit-* (and, when refused, Retry-After) headers."""
        out = [
            (b"RateLimit-Limit", b"%d" % self.limit),
            (b"RateLimit-Remaining", b"%d" % self.remaining),
            (b"RateLimit-Reset", b"%d" % self.reset),
        ]
        if not self.allowed:
            out.append((b"Retry-After", b"%d" % self.retry_after))
        return out


class TokenBucket:
    """
    ``burst`` permits, refilled at ``rate`` a second, read from ``now``
    (seconds; the reactor's clock).
    """

    def __init__(self, rate: float, burst: int, now: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._now = now
        self._permits = float(burst)
        self._at = now()

    def _refill(self) -> float:
        now = self._now()
        elapsed = max(0.0, now - self._at)
        self._at = now
        self._permits = min(float(self.burst), self._permits + elapsed * self.rate)
        return self._permits

    def take(self) -> Decision:
        """Spend one permit if there is one."""
        permits = self._refill()
        allowed = permits >= 1.0
        if allowed:
            permits = self._permits = permits - 1.0
        reset = math.ceil((self.burst - permits) / self.rate) if permits < self.burst else 0
        retry_after = 0 if allowed else max(1, math.ceil((1.0 - permits) / self.rate))
        return Decision(allowed, self.burst, int(math.floor(permits)), reset, retry_after)


class Limiter:
    """The buckets of this node, one per token id (made on first use)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._buckets: Dict[str, TokenBucket] = {}

    def take(self, token_id: str, rate: float, burst: int) -> Decision:
        """Spend a permit of ``token_id``'s bucket."""
        bucket = self._buckets.get(token_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[token_id] = TokenBucket(rate, burst, self._now)
        return bucket.take()

    def forget(self, token_ids: Iterable[str]) -> None:
        """Drop the buckets of tokens that are gone."""
        for token_id in token_ids:
            self._buckets.pop(token_id, None)
