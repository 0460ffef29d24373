"""
``/metrics`` for a tenant token: the process's metrics with every series
labelled with a queue outside the token's ``queues`` left out (series
without a ``queue`` label, such as process metrics, stay).  Built only for
such a request; other scrapes render the registry as it is.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Tuple

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric


class FilteredRegistry:
    """A view of a registry whose samples pass ``sees`` on their ``queue`` label."""

    def __init__(self, registry: Any, sees: Callable[[str], bool]) -> None:
        self._registry = registry
        self._sees = sees

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            samples = [s for s in metric.samples if "queue" not in s.labels or self._sees(s.labels["queue"])]
            if len(samples) != len(metric.samples):
                copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                copy.samples = samples
                metric = copy
            yield metric


def render_for(metrics: Any, accept: Optional[str], sees: Callable[[str], bool]) -> Tuple[bytes, str]:
    """Like L{fireworq.metrics.Metrics.render}, showing only the queues ``sees`` accepts."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(FilteredRegistry(metrics.registry, sees)), content_type
