"""
The ``/metrics`` route (B5): the process's L{fireworq.metrics.Metrics} in the
Prometheus text format (or OpenMetrics, when the scraper asks for it),
rendered on the reactor thread from memory -- a scrape never queries the
store.
"""

from __future__ import annotations

from typing import Any

from fireworq.auth.access import tenant_of
from fireworq.web.errors import write_error
from fireworq.web.routes import app


class MetricsRoutes:
    """Routes serving Prometheus metrics."""

    @app.route("/metrics", methods=["GET"])
    def prometheus_metrics(self, request: Any) -> bytes:
        """Every metric of this process, in the format the Accept header asks for."""
        metrics = getattr(self, "metrics", None)
        if metrics is None:
            return write_error(request, 404, "this server collects no metrics")
        accept = request.getHeader(b"accept")
        tenant = tenant_of(request)
        if tenant is not None:
            # A tenant token sees only the series of its own queues.
            from fireworq.auth.metrics_view import render_for

            body, content_type = render_for(metrics, accept.decode("latin-1") if accept else None, tenant.sees)
        else:
            body, content_type = metrics.render(accept.decode("latin-1") if accept else None)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return body
