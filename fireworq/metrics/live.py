"""
The gauges of the metrics read from live objects at scrape time (no
store query): per queue, deliveries in flight, worker slots, idle
workers, the lease, whether it is paused, and the job counts the
background count cached (L{fireworq.metrics.counts}); whether the
definitions are loaded; the build info.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fireworq import __version__

if TYPE_CHECKING:
    from fireworq.metrics import Metrics


class LiveCollector(Collector):
    """
    Gauges read from live objects at scrape time: per queue, deliveries in
    flight, worker slots, idle workers, the lease and the cached job counts;
    and whether the definitions are loaded.  Reads attributes only; never
    touches the store.
    """

    def __init__(self, metrics: "Metrics") -> None:
        self._metrics = metrics

    def _families(self) -> Dict[str, GaugeMetricFamily]:
        return {
            "jobs": GaugeMetricFamily(
                "fireworq_queue_jobs",
                "Jobs stored in the queue by state (waiting: due now; deferred: due later; "
                f"grabbed: being delivered), counted every {self._metrics.refresh_interval:g}s.",
                labels=["queue", "state"],
            ),
            "counted": GaugeMetricFamily(
                "fireworq_queue_jobs_updated_timestamp_seconds",
                "When fireworq_queue_jobs of the queue was last counted (Unix time).",
                labels=["queue"],
            ),
            "in_flight": GaugeMetricFamily(
                "fireworq_deliveries_in_flight",
                "Deliveries of the queue running now on this node.",
                labels=["queue"],
            ),
            "workers": GaugeMetricFamily(
                "fireworq_workers",
                "Concurrent deliveries the queue allows (max_workers).",
                labels=["queue"],
            ),
            "idle": GaugeMetricFamily(
                "fireworq_workers_idle",
                "Worker slots of the queue not delivering now on this node.",
                labels=["queue"],
            ),
            "lease": GaugeMetricFamily(
                "fireworq_queue_lease_held",
                "1 when this node holds the queue's lease (dispatches it), else 0.",
                labels=["queue"],
            ),
            "original": GaugeMetricFamily(
                "fireworq_queue_original_lock_held",
                "1 while an original (Go) Fireworq node holds the queue's election lock "
                "fireworq_jq(<queue>) on the same database: this node leaves the queue to it.",
                labels=["queue"],
            ),
            "paused": GaugeMetricFamily(
                "fireworq_queue_paused",
                "1 while the queue is paused (takes pushes, dispatches nothing), else 0.",
                labels=["queue"],
            ),
            "ready": GaugeMetricFamily(
                "fireworq_ready",
                "1 once the queue definitions are loaded (the node serves pushes and "
                "dispatches), else 0.",
            ),
            "info": GaugeMetricFamily(
                "fireworq_build_info",
                "Always 1; the labels name the server version and the store driver.",
                labels=["version", "driver"],
            ),
        }

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (so registering reads nothing)."""
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        """The families with one sample per defined queue."""
        metrics = self._metrics
        families = self._families()
        families["info"].add_metric([__version__, metrics.driver()], 1)
        manager = metrics.manager
        if manager is None:
            families["ready"].add_metric([], 0)
            return list(families.values())
        families["ready"].add_metric([], 1 if manager.ready else 0)
        counts = metrics.queue_counts
        for definition in manager.definitions():
            name = definition.name
            families["paused"].add_metric([name], 1 if definition.paused else 0)
            cached = counts.get(name)
            if cached is not None:
                jobs, counted_at = cached
                families["jobs"].add_metric([name, "waiting"], jobs.waiting)
                families["jobs"].add_metric([name, "deferred"], jobs.deferred)
                families["jobs"].add_metric([name, "grabbed"], jobs.grabbed)
                families["counted"].add_metric([name], counted_at)
            dispatcher = manager.dispatcher(name)
            if dispatcher is None:
                continue
            in_flight = dispatcher.in_flight
            workers = dispatcher.max_workers
            families["in_flight"].add_metric([name], in_flight)
            families["workers"].add_metric([name], workers)
            families["idle"].add_metric([name], max(0, workers - in_flight))
            families["lease"].add_metric([name], 1 if dispatcher.lease.held() else 0)
            original = getattr(dispatcher.lease, "original_holder", None)
            families["original"].add_metric([name], 0 if original is None else 1)
        return list(families.values())
