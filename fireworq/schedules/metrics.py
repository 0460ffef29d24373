"""The schedule counters (B10), in the server's own Prometheus registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ScheduleMetrics:
    """``fireworq_schedule_fired_total{schedule}`` and ``fireworq_schedule_missed_total{schedule}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fired_total = Counter(
            "fireworq_schedule_fired_total",
            "Scheduled times whose job this node pushed.",
            ["schedule"],
            registry=registry,
        )
        self.missed_total = Counter(
            "fireworq_schedule_missed_total",
            "Scheduled times skipped by this node because they were missed (catch_up).",
            ["schedule"],
            registry=registry,
        )

    def fired(self, schedule: str) -> None:
        self.fired_total.labels(schedule=schedule).inc()

    def missed(self, schedule: str, count: int = 1) -> None:
        self.missed_total.labels(schedule=schedule).inc(count)
