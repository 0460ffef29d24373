"""
The one retry policy for internal retries: opening the store at boot,
recovering a queue's grabbed jobs, writing a batch of completions, renewing
a lease after an error.

It is Twisted's L{backoffPolicy} (the policy L{ClientService} reconnects
with): an exponential delay from ``initial`` growing by ``factor`` up to
``maximum``, plus a random jitter of up to ``jitter`` of the delay, so that
many nodes (or many queues of one node) that fail together do not retry in
lock step.  Using Twisted's function rather than a table of delays per class
keeps one tested formula; L{Backoff} adds only the attempt counter and the
timer that every retrying class needs.

Usage::

    self._retry = Backoff(clock, initial=0.1, maximum=5.0)
    ...
    def _failed(self, failure):
        delay = self._retry.schedule(self._write)   # calls _write later
    def _written(self, result):
        self._retry.reset()                          # the next failure starts again at 0.1
    def stop(self):
        self._retry.cancel()                          # no retry after stop
"""

from __future__ import annotations

import random
from typing import Any, Callable, Optional

from twisted.application.internet import backoffPolicy
from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: A function from the number of failures so far (0 for the first) to a delay in seconds.
Policy = Callable[[int], float]


def policy(
    initial: float = 1.0,
    maximum: float = 30.0,
    factor: float = 2.0,
    jitter: float = 0.1,
    rng: Callable[[], float] = random.random,
) -> Policy:
    """
    The retry policy: ``initial * factor ** failures``, capped at
    ``maximum``, plus up to ``jitter`` times that delay at random.

    @param jitter: the largest random addition as a fraction of the delay
        (0 for none, as tests with a Clock may want).
    """
    base = backoffPolicy(initialDelay=initial, maxDelay=maximum, factor=factor, jitter=lambda: 0.0)

    def delay(failures: int) -> float:
        value = base(failures)
        return value + value * jitter * rng() if jitter else value

    return delay


class Backoff:
    """
    The retry state of one retrying activity: how many times it failed in
    a row, and the pending retry (at most one).

    L{schedule} arranges the next try after the policy's delay for the
    failures so far; L{reset} after a success; L{cancel} when stopping,
    so that a stopped component never retries.
    """

    def __init__(
        self,
        clock: IReactorTime,
        initial: float = 1.0,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.1,
        retry_policy: Optional[Policy] = None,
    ) -> None:
        self._clock = clock
        self._policy = retry_policy or policy(initial, maximum, factor, jitter)
        self.failures = 0
        self._call: Optional[IDelayedCall] = None

    def next_delay(self) -> float:
        """The delay before the next try, counting one more failure."""
        delay = self._policy(self.failures)
        self.failures += 1
        return delay

    def schedule(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """
        Count a failure and call ``f(*args, **kwargs)`` after the policy's
        delay, replacing a retry already pending.  Returns the delay (for
        the log line).
        """
        self.cancel()
        delay = self.next_delay()

        def fire() -> None:
            self._call = None
            f(*args, **kwargs)

        self._call = self._clock.callLater(delay, fire)
        return delay

    @property
    def pending(self) -> bool:
        """Whether a retry is scheduled."""
        return self._call is not None and self._call.active()

    def cancel(self) -> None:
        """Drop the pending retry, if any (the failure count stays)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def reset(self) -> None:
        """After a success: the next failure waits the initial delay again."""
        self.failures = 0
