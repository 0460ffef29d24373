"""
The HTTP API: every route module's routes on one Klein application, and the
error handlers that turn every failure into a JSON answer with a clear
message (never a traceback).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from fireworq.config import Config
from fireworq.manager import NotReady, QueueConflict, QueueManager, UndefinedQueue, UnknownCategory
from fireworq.store.interface import StoreUnavailable
from fireworq.web.errors import ApiError, write_error
from fireworq.web.console import ConsoleRoutes
from fireworq.web.inspect import InspectRoutes
from fireworq.web.jobs import JobRoutes
from fireworq.web.metrics import MetricsRoutes
from fireworq.web.openapi import OpenAPIRoutes
from fireworq.web.ops import OpsRoutes
from fireworq.web.queues import QueueRoutes
from fireworq.web.routes import app
from fireworq.web.routings import RoutingRoutes


class FireworqAPI(
    JobRoutes,
    QueueRoutes,
    RoutingRoutes,
    InspectRoutes,
    OpsRoutes,
    MetricsRoutes,
    ConsoleRoutes,
    OpenAPIRoutes,
):
    """
    The API of one server process over its L{QueueManager}.

    Use C{FireworqAPI(manager, config).app.resource()} as the site's root.
    ``metrics`` is the process's L{fireworq.metrics.Metrics}, when there is one.
    """

    app = app
    _log = Logger()

    def __init__(self, manager: QueueManager, config: Config, metrics: Any = None) -> None:
        self.manager = manager
        self.config = config
        self.metrics = metrics

    def read_body(self, request: Any) -> bytes:
        """The whole request body."""
        request.content.seek(0)
        return request.content.read()

    @app.handle_errors(ApiError)
    def _api_error(self, request: Any, failure: Failure) -> bytes:
        return write_error(request, failure.value.code, failure.value.message)

    @app.handle_errors(UnknownCategory, UndefinedQueue)
    def _not_found(self, request: Any, failure: Failure) -> bytes:
        return write_error(request, 404, str(failure.value))

    @app.handle_errors(QueueConflict)
    def _conflict(self, request: Any, failure: Failure) -> bytes:
        return write_error(request, 400, str(failure.value))

    @app.handle_errors(NotReady)
    def _not_ready(self, request: Any, failure: Failure) -> bytes:
        request.setHeader(b"Retry-After", b"1")
        return write_error(request, 503, str(failure.value))

    @app.handle_errors(StoreUnavailable)
    def _unavailable(self, request: Any, failure: Failure) -> bytes:
        request.setHeader(b"Retry-After", b"1")
        return write_error(
            request,
            503,
            f"the job store is unavailable, nothing was changed; retry later "
            f"({failure.getErrorMessage()})",
        )

    @app.handle_errors(MethodNotAllowed)
    def _method_not_allowed(self, request: Any, failure: Failure) -> bytes:
        allowed = sorted(failure.value.valid_methods or [])
        if allowed:
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
        method = request.method.decode("ascii", "replace")
        return write_error(
            request,
            405,
            f"method {method} is not allowed here; allowed: {', '.join(allowed)}",
        )

    @app.handle_errors(NotFound)
    def _no_route(self, request: Any, failure: Failure) -> bytes:
        path = request.path.decode("utf-8", "replace")
        return write_error(request, 404, f"no such endpoint: {path}")

    @app.handle_errors(HTTPException)
    def _http_exception(self, request: Any, failure: Failure) -> bytes:
        code = failure.value.code or 400
        return write_error(request, code, failure.value.description or "bad request")

    @app.handle_errors(CancelledError)
    def _cancelled(self, request: Any, failure: Failure) -> bytes:
        return write_error(request, 503, "the request was cancelled")

    @app.handle_errors(Exception)
    def _internal(self, request: Any, failure: Failure) -> bytes:
        self._log.failure(
            "Internal error handling {method} {uri}",
            failure,
            method=request.method,
            uri=request.uri,
        )
        return write_error(
            request, 500, "internal server error; the server's error log has the details"
        )
