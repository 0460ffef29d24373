"""
What happens to jobs, told to whoever keeps score: the per-queue statistics
(A3), the queue log (A8) and the Prometheus metrics (B5) all observe the same
events through L{IQueueEvents}.
"""

from __future__ import annotations

from typing import List, Sequence

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
    """Tells every registered observer about each event."""

    def __init__(self, observers: Sequence[IQueueEvents] = ()) -> None:
        self.observers: List[IQueueEvents] = list(observers)

    def add(self, observer: IQueueEvents) -> None:
        """Register one more observer."""
        self.observers.append(observer)

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        for observer in self.observers:
            observer.pushed(queue_name, jobs)

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        for observer in self.observers:
            observer.popped(queue_name, jobs)

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        for observer in self.observers:
            observer.finished(queue_name, completion, duration)
