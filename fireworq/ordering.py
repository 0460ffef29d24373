"""
Two small MultiService variants the service tree is made of.

  - L{OrderedServices} starts its children in the order they were added
    (as L{MultiService} does) and stops them in reverse order one after the
    other, each stop waited for, under one overall deadline.
    (MultiService stops all children at once.)
  - L{StartAfter} starts its children only once a condition holds (the
    store has opened), and stops them in reverse order like
    L{OrderedServices}.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application.service import IService, MultiService
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.error import TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure


class OrderedServices(MultiService):
    """
    A MultiService that stops its children in reverse order, sequentially.

    @param clock: the reactor, for L{stop_timeout}.
    @param stop_timeout: seconds the whole stop may take; a child whose stop
        has not fired when the time is up is given up on (logged) and the
        next one is stopped.  None: no limit.
    """

    _log = Logger()

    def __init__(self, clock: Optional[IReactorTime] = None, stop_timeout: Optional[float] = None) -> None:
        super().__init__()
        self._clock = clock
        self.stop_timeout = stop_timeout

    def stopService(self) -> "Deferred[None]":
        """Stop the running children, last first, each after the previous one."""
        super(MultiService, self).stopService()  # Service: running = 0
        return stop_in_reverse(self, self._clock, self.stop_timeout, self._log)


def stop_in_reverse(
    parent: MultiService, clock: Optional[IReactorTime], timeout: Optional[float], log: Logger
) -> "Deferred[None]":
    """Stop the running children of ``parent`` last first, sequentially, within ``timeout``."""
    children = [child for child in reversed(list(parent)) if child.running]
    deadline = clock.seconds() + timeout if clock is not None and timeout is not None else None
    d: Deferred = succeed(None)
    for child in children:
        d.addCallback(lambda _, c=child: _stop_one(c, clock, deadline, log))
    return d


def _stop_one(child: IService, clock: Optional[IReactorTime], deadline: Optional[float], log: Logger) -> Deferred:
    d = maybeDeferred(child.stopService)
    if deadline is not None and clock is not None:
        d.addTimeout(max(deadline - clock.seconds(), 0.0), clock)

    def failed(failure: Failure) -> None:
        if failure.check(CancelledError, TimeoutError):
            log.warn(
                "{service} did not stop within the shutdown timeout; going on",
                service=child.name or repr(child),
            )
            return
        log.failure("Error while stopping {service}", failure, service=child.name or repr(child))

    d.addErrback(failed)
    return d


class StartAfter(MultiService):
    """
    Children that start once ``condition()`` fires (they stay stopped if
    this service stops first), and stop in reverse order, sequentially.
    Add the children before this service starts.

    @param condition: returns a Deferred that fires when the children may start.
    @param started: called after the children have started.
    """

    _log = Logger()

    def __init__(
        self, condition: Callable[[], Deferred], started: Optional[Callable[[], Any]] = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__()
        self._condition = condition
        self._started = started
        self._waiting: Optional[Deferred] = None
        self.children_started = False
        if name is not None:
            self.setName(name)

    def startService(self) -> None:
        super(MultiService, self).startService()  # not the children yet
        d = self._waiting = self._condition()
        d.addCallback(self._start_children)

    def _start_children(self, _: object) -> None:
        self._waiting = None
        if not self.running:
            return
        self.children_started = True
        for child in self:
            child.startService()
        if self._started is not None:
            self._started()

    def stopService(self) -> "Deferred[None]":
        super(MultiService, self).stopService()
        self.children_started = False
        return stop_in_reverse(self, None, None, self._log)
