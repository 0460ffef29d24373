"""
Waiting for readiness, bounded: L{ReadyWaiters} holds the callers that
arrived before something was ready (the queue manager's first load of the
definitions) and lets them go on when it is, or fails them with
L{NotReady} after a timeout or when the service stops.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime


class NotReady(Exception):
    """The definitions have not been loaded yet (the store is unavailable)."""


class ReadyWaiters:
    """
    Deferreds waiting for readiness, each for at most ``timeout`` seconds.

    @param message: the L{NotReady} message of a wait that timed out.
    """

    def __init__(self, clock: IReactorTime, timeout: float, message: str) -> None:
        self._clock = clock
        self.timeout = timeout
        self._message = message
        self._waiters: List[Deferred] = []

    def __len__(self) -> int:
        return len(self._waiters)

    def wait(self) -> "Deferred[None]":
        """A Deferred that fires on L{ready}, or fails with L{NotReady} after the timeout."""
        d: Deferred = Deferred()
        self._waiters.append(d)
        timer = self._clock.callLater(self.timeout, self._expire, d)

        def cancel_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        d.addBoth(cancel_timer)
        return d

    def _expire(self, d: Deferred) -> None:
        if d in self._waiters:
            self._waiters.remove(d)
            d.errback(NotReady(self._message))

    def ready(self) -> None:
        """Let every waiter go on."""
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def fail(self, message: str) -> None:
        """Fail every waiter with L{NotReady}(``message``)."""
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(NotReady(message))
