"""
What happens to jobs, told to whoever keeps score: the per-queue statistics
(A3), the queue log (A8) and the Prometheus metrics (B5) all observe the same
events through L{IQueueEvents}.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from fireworq.model import Completion, Job


class IQueueEvents(Interface):
    """Observer of job events of every queue."""

    def pushed(queue_name: str, jobs: Sequence[Job]) -> None:
        """``jobs`` were committed to ``queue_name``."""

    def popped(queue_name: str, jobs: Sequence[Job]) -> None:
        """``jobs`` were grabbed for delivery."""

    def finished(queue_name: str, completion: Completion, duration: float) -> None:
        """
        A delivery ended (``duration`` seconds after it started) and
        ``completion`` says what happens to the job.
        """


@implementer(IQueueEvents)
class EventFanout:
    """
    Tells every registered observer about each event.

    An observer that raises does not keep the event from the others, nor
    from whoever reported it (a push is answered and its jobs are handed to
    the dispatcher whatever the observers do): its failure is logged with
    the traceback, then at most once every L{report_interval} seconds per
    observer, with the number of failures not logged in between.
    """

    #: Seconds between two logged failures of the same observer.
    report_interval = 60.0

    _log = Logger()

    def __init__(
        self,
        observers: Sequence[IQueueEvents] = (),
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.observers: List[IQueueEvents] = list(observers)
        self._now = now
        #: Per observer (by id): when its next failure may be logged, and
        #: how many failures were not logged since the last one.
        self._quiet: Dict[int, Tuple[float, int]] = {}

    def add(self, observer: IQueueEvents) -> None:
        """Register one more observer."""
        self.observers.append(observer)

    def _failed(self, observer: IQueueEvents, event: str, queue_name: str) -> None:
        now = self._now()
        next_report, suppressed = self._quiet.get(id(observer), (0.0, 0))
        if now < next_report:
            self._quiet[id(observer)] = (next_report, suppressed + 1)
            return
        self._quiet[id(observer)] = (now + self.report_interval, 0)
        text = "Event observer {observer} failed on {event} of queue {queue}"
        if suppressed:
            text += " ({suppressed} more failures of it since the last report were not logged)"
        self._log.failure(
            text,
            Failure(),
            observer=type(observer).__name__,
            event=event,
            queue=queue_name,
            suppressed=suppressed,
        )

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        for observer in self.observers:
            try:
                observer.pushed(queue_name, jobs)
            except Exception:
                self._failed(observer, "pushed", queue_name)

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        for observer in self.observers:
            try:
                observer.popped(queue_name, jobs)
            except Exception:
                self._failed(observer, "popped", queue_name)

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        for observer in self.observers:
            try:
                observer.finished(queue_name, completion, duration)
            except Exception:
                self._failed(observer, "finished", queue_name)

    def expired(self, queue_name: str, jobs: Sequence[Job]) -> None:
        """
        ``jobs`` went to the failure log because their deadline passed
        (B7); told to the observers that have an C{expired} method (the
        metrics count them).
        """
        for observer in self.observers:
            expired = getattr(observer, "expired", None)
            if expired is None:
                continue
            try:
                expired(queue_name, jobs)
            except Exception:
                self._failed(observer, "expired", queue_name)

    def canceled(self, queue_name: str, jobs: Sequence[Job]) -> None:
        """
        ``jobs`` were canceled (B9: deleted while waiting, or their delivery
        aborted); told to the observers that have a C{canceled} method (the
        live events).
        """
        self._optional("canceled", queue_name, jobs)

    def kept(self, queue_name: str, state: str) -> None:
        """
        A finished job of the queue is kept in ``state`` (B8, job history);
        told to the observers that have a C{kept} method (the metrics).
        """
        self._optional("kept", queue_name, state)

    def history_deleted(self, queue_name: str, count: int) -> None:
        """
        ``count`` kept jobs of the queue were deleted past their retention
        (B8); told to the observers that have a C{history_deleted} method.
        """
        self._optional("history_deleted", queue_name, count)

    def _optional(self, method: str, queue_name: str, *args: Any) -> None:
        for observer in self.observers:
            call = getattr(observer, method, None)
            if call is None:
                continue
            try:
                call(queue_name, *args)
            except Exception:
                self._failed(observer, method, queue_name)
