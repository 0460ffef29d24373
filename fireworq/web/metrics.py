"""The ``/metrics`` route (B5).  Placeholder: filled in by the operations work."""


class MetricsRoutes:
    """Routes serving Prometheus metrics."""
