"""
Waiting in tests without sleeping: poll a condition on the reactor until it
holds or a deadline passes.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Union

from twisted.internet import reactor as default_reactor
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.task import deferLater


class Timeout(AssertionError):
    """The condition did not hold before the deadline."""


def pause(seconds: float, reactor: Any = default_reactor) -> Deferred:
    """A Deferred that fires after ``seconds`` (for integration-test polling only)."""
    return deferLater(reactor, seconds, lambda: None)


@inlineCallbacks
def wait_until(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: Union[str, Callable[[], str]] = "condition",
    reactor: Any = default_reactor,
):
    """
    Call ``condition`` (which may return a Deferred) until its result is
    truthy; fire with that result.  Fails with L{Timeout} after ``timeout``
    seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while True:
        try:
            result = yield maybeDeferred(condition)
            if result:
                return result
        except Exception as e:  # keep polling; report the last error on timeout
            last_error = e
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            if last_error is not None:
                text += f" (last error: {last_error!r})"
            raise Timeout(f"timed out after {timeout}s waiting for {text}")
        yield pause(interval, reactor)
