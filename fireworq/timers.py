"""
The one idiom for periodic work: L{Periodic}, a service that calls a
function every ``interval`` seconds.

It is Twisted's L{LoopingCall} run as a service, in the manner of
L{twisted.application.internet.TimerService}, with what every periodic
component of the server needs on top:

  - stopping waits for a call in progress (a Deferred the function
    returned) before the stop fires, so a parent service that stops its
    children in order never closes a store under a running refresh;
  - a failing call is logged and the loop goes on (TimerService and a bare
    LoopingCall stop for good on the first error);
  - L{Periodic.kick} runs the function now instead of at the next tick
    (after the running call, when one is in progress), e.g. on a push to an
    idle queue or a definition change;
  - calls never overlap: LoopingCall waits for a returned Deferred before
    it schedules the next call.

Usage::

    refresher = Periodic(5.0, self.refresh, clock=reactor, name="queue-counts")
    refresher.setServiceParent(parent)   # starts with the parent
    refresher.kick()                     # refresh now
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure


class Periodic(Service):
    """
    Call ``f`` every ``interval`` seconds while the service runs.

    @param now: whether the first call happens when the service starts
        (otherwise one interval later).
    @param clock: the reactor (a L{task.Clock} in tests).
    """

    _log = Logger()

    def __init__(
        self,
        interval: float,
        f: Callable[[], Any],
        clock: Optional[IReactorTime] = None,
        now: bool = True,
        name: Optional[str] = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.interval = interval
        self._f = f
        self._clock = clock
        self._now = now
        if name is not None:
            self.setName(name)
        self._loop: Optional[LoopingCall] = None
        self._done: "Deferred[Any]" = succeed(None)
        self._calling = False
        self._kicked = False

    @property
    def calling(self) -> bool:
        """Whether a call is in progress."""
        return self._calling

    def startService(self) -> None:
        super().startService()
        self._start(self._now)

    def _start(self, now: bool) -> None:
        loop = LoopingCall(self._call)
        loop.clock = self._clock
        self._loop = loop
        self._done = loop.start(self.interval, now=now).addCallback(lambda _: None)

    def _call(self) -> "Deferred[None]":
        self._calling = True
        self._kicked = False
        d = maybeDeferred(self._f)
        d.addErrback(self._failed)
        d.addBoth(self._called)
        return d

    def _failed(self, failure: Failure) -> None:
        self._log.failure(
            "Periodic work {name} failed; it runs again in {interval}s",
            failure,
            name=self.name or repr(self._f),
            interval=self.interval,
        )

    def _called(self, _: object) -> "Optional[Deferred[None]]":
        self._calling = False
        if self._kicked and self.running:
            return self._call()  # kicked during the call: once more, at once
        return None

    def kick(self) -> None:
        """
        Call the function now and restart the interval from here (after
        the call in progress, if any).  Does nothing while stopped.
        """
        if not self.running or self._loop is None:
            return
        if self._calling:
            self._kicked = True
            return
        self._loop.stop()
        self._start(now=True)

    def stopService(self) -> "Deferred[Any]":
        """Stop calling; fires once the call in progress (if any) has finished."""
        super().stopService()
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        return self._done
