"""
Per-queue counters of the stats API (A3), counted by this node since it
started.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from fireworq.events import IQueueEvents
from fireworq.model import Completion, CompletionKind, Job


class RateCounter:
    """Events in the last second, kept in ten 100 ms buckets."""

    buckets = 10
    width = 0.1

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._counts: List[int] = [0] * self.buckets
        self._slot = self._current()

    def _current(self) -> int:
        return int(self._clock.seconds() / self.width)

    def _advance(self) -> None:
        now = self._current()
        gap = now - self._slot
        if gap <= 0:
            return
        for step in range(1, min(gap, self.buckets) + 1):
            self._counts[(self._slot + step) % self.buckets] = 0
        self._slot = now

    def add(self, count: int = 1) -> None:
        """Count ``count`` events now."""
        self._advance()
        self._counts[self._slot % self.buckets] += count

    def rate(self) -> int:
        """Events counted during the last second."""
        self._advance()
        return sum(self._counts)


class QueueCounters:
    """The counters of one queue."""

    def __init__(self, clock: IReactorTime) -> None:
        self.total_pushes = 0
        self.total_pops = 0
        self.total_successes = 0
        self.total_failures = 0
        self.total_permanent_failures = 0
        self.total_completes = 0
        self.total_elapsed = 0
        self.pushes = RateCounter(clock)
        self.pops = RateCounter(clock)

    def to_json(self) -> Dict[str, int]:
        """The counters part of the stats object."""
        return {
            "total_pushes": self.total_pushes,
            "total_pops": self.total_pops,
            "total_successes": self.total_successes,
            "total_failures": self.total_failures,
            "total_permanent_failures": self.total_permanent_failures,
            "total_completes": self.total_completes,
            "total_elapsed": self.total_elapsed,
            "pushes_per_second": self.pushes.rate(),
            "pops_per_second": self.pops.rate(),
        }


@implementer(IQueueEvents)
class QueueStats:
    """Counters of every queue, fed by job events."""

    def __init__(self, clock: IReactorTime, now_ms: Callable[[], int]) -> None:
        self._clock = clock
        self._now_ms = now_ms
        self._queues: Dict[str, QueueCounters] = {}

    def counters(self, queue_name: str) -> QueueCounters:
        """The counters of ``queue_name``, zero if nothing happened yet."""
        counters = self._queues.get(queue_name)
        if counters is None:
            counters = self._queues[queue_name] = QueueCounters(self._clock)
        return counters

    def pushed(self, queue_name: str, jobs: Sequence[Job]) -> None:
        counters = self.counters(queue_name)
        counters.total_pushes += len(jobs)
        counters.pushes.add(len(jobs))

    def popped(self, queue_name: str, jobs: Sequence[Job]) -> None:
        counters = self.counters(queue_name)
        counters.total_pops += len(jobs)
        counters.pops.add(len(jobs))

    def finished(self, queue_name: str, completion: Completion, duration: float) -> None:
        counters = self.counters(queue_name)
        if completion.kind is CompletionKind.SUCCESS:
            counters.total_successes += 1
        else:
            counters.total_failures += 1
        if completion.kind is not CompletionKind.RETRY:
            if completion.kind is CompletionKind.FAIL:
                counters.total_permanent_failures += 1
            counters.total_completes += 1
            counters.total_elapsed += max(0, self._now_ms() - completion.job.created_at)
