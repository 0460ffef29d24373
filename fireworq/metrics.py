"""
Prometheus metrics (B5).  Placeholder: filled in by the operations work.
"""

from __future__ import annotations

from typing import Any, Sequence

from zope.interface import implementer

from fireworq.events import IQueueEvents
from fireworq.model import Completion, Job


@implementer(IQueueEvents)
class Metrics:
    """Collects job events into Prometheus metrics."""

    def __init__(self, service: Any = None) -> None:
        self.service = service

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        pass

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        pass

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        pass
