"""
A token bucket for throttled queues (A3): at most ``max_dispatches_per_second``
dispatches per second on average, with bursts of up to ``max_burst_size``.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime


class TokenBucket:
    """
    Tokens accrue at ``rate`` per second up to ``burst``; each dispatch takes
    one.  The bucket starts full.  The dispatcher asks how many tokens are
    there before a grab, so it never grabs jobs it could not send at once.
    """

    def __init__(self, rate: float, burst: int, clock: IReactorTime) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock.seconds()

    def _refill(self) -> None:
        now = self._clock.seconds()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    def available(self) -> int:
        """Whole tokens available now."""
        self._refill()
        return int(self._tokens)

    def take(self, count: int) -> None:
        """Spend ``count`` tokens (the caller checked L{available})."""
        self._refill()
        self._tokens -= count

    def wait_time(self) -> float:
        """Seconds until at least one whole token is available."""
        self._refill()
        missing = 1.0 - self._tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate
