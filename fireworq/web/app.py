"""
The HTTP API: every route module's routes on one Klein application, and the
error handlers that turn every failure into a JSON answer with a clear
message (never a traceback).
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import CancelledError, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from fireworq.config import Config
from fireworq.inspection import IInspection
from fireworq.logging import log_failure
from fireworq.manager import NotReady, QueueConflict, QueueManager, UndefinedQueue, UnknownCategory
from fireworq.store.interface import CommitOutcomeUnknown, JobTooLarge, StoreUnavailable
from fireworq.web.errors import ApiError, write_error
from fireworq.web.console import ConsoleRoutes
from fireworq.web.hooks import HookRoutes
from fireworq.web.events import EventRoutes
from fireworq.web.inspect import InspectRoutes
from fireworq.web.jobs import JobRoutes
from fireworq.web.metrics import MetricsRoutes
from fireworq.web.openapi import OpenAPIRoutes
from fireworq.web.ops import OpsRoutes
from fireworq.web.queues import QueueRoutes, encoded_slash_problem
from fireworq.web.routes import app
from fireworq.web.routings import RoutingRoutes
from fireworq.web.schedules import ScheduleRoutes
from fireworq.web.signing import SigningRoutes
from fireworq.web.tokens import TokenRoutes


class FireworqAPI(
    JobRoutes,
    QueueRoutes,
    RoutingRoutes,
    InspectRoutes,
    OpsRoutes,
    MetricsRoutes,
    ConsoleRoutes,
    OpenAPIRoutes,
    TokenRoutes,
    ScheduleRoutes,
    SigningRoutes,
    HookRoutes,
    EventRoutes,
):
    """
    The API of one server process: changes go to its L{QueueManager},
    look-ups to its L{IInspection}; the API never holds a store.

    Use C{FireworqAPI(manager, inspection, config).resource()} as the site's
    root.  ``metrics`` is the process's L{fireworq.metrics.Metrics}, when
    there is one.
    """

    app = app
    _log = Logger()

    def __init__(
        self,
        manager: QueueManager,
        inspection: Optional[IInspection],
        config: Config,
        metrics: Any = None,
    ) -> None:
        """
        @param inspection: None only for a site that serves no stored data
            (the console's tests).
        """
        self.manager = manager
        self.inspection = inspection
        self.config = config
        self.metrics = metrics

    def read_body(self, request: Any) -> bytes:
        """The whole request body."""
        request.content.seek(0)
        return request.content.read()

    def resource(self) -> Any:
        """
        The root resource of the site: the Klein application, with the
        hottest route (single-job push) answered without Klein's routing.
        """
        return PushFastPath(self, self.app.resource())

    @app.handle_errors(Exception)
    def _failed(self, request: Any, failure: Failure) -> bytes:
        return self.render_failure(request, failure)

    def render_failure(self, request: Any, failure: Failure) -> bytes:
        """The JSON error answer for ``failure``; a traceback only goes to the log."""
        error = failure.value
        if isinstance(error, ApiError):
            return write_error(request, error.code, error.message)
        if isinstance(error, (UnknownCategory, UndefinedQueue)):
            return write_error(request, 404, str(error))
        if isinstance(error, QueueConflict):
            return write_error(request, 400, str(error))
        if isinstance(error, NotReady):
            request.setHeader(b"Retry-After", b"1")
            return write_error(request, 503, str(error))
        if isinstance(error, JobTooLarge):
            return write_error(request, 413, str(error))
        if isinstance(error, StoreUnavailable):
            request.setHeader(b"Retry-After", b"1")
            if isinstance(error, CommitOutcomeUnknown):
                what = "the job store lost its connection while committing: the change may or may not have been applied"
            else:
                what = "the job store is unavailable, nothing was changed; retry later"
            return write_error(request, 503, f"{what} ({failure.getErrorMessage()})")
        if isinstance(error, MethodNotAllowed):
            allowed = sorted(error.valid_methods or [])
            if allowed:
                request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            method = request.method.decode("ascii", "replace")
            return write_error(
                request, 405, f"method {method} is not allowed here; allowed: {', '.join(allowed)}"
            )
        if isinstance(error, NotFound):
            slash = encoded_slash_problem(request.path)
            if slash is not None:
                return write_error(request, 400, slash)
            path = request.path.decode("utf-8", "replace")
            return write_error(request, 404, f"no such endpoint: {path}")
        if isinstance(error, HTTPException):
            return write_error(request, error.code or 400, error.description or "bad request")
        if isinstance(error, CancelledError):
            return write_error(request, 503, "the request was cancelled")
        self._log.failure(
            "Internal error handling {method} {uri}",
            failure,
            method=request.method,
            uri=request.uri,
        )
        return write_error(
            request, 500, "internal server error; the server's error log has the details"
        )


class PushFastPath(Resource):
    """
    The site's root: ``POST /job/{category}`` goes straight to
    L{JobRoutes.push_job} (the same code Klein's route runs), every other
    request to the Klein application.  Pushes are the hottest path of the
    server, and through Klein's URL matching, binding and rendering
    machinery the benchmark's push rate drops by a third or more
    (docs/performance.md).
    """

    isLeaf = True

    def __init__(self, api: FireworqAPI, klein_resource: Any) -> None:
        super().__init__()
        self._api = api
        self._klein = klein_resource

    def render(self, request: Any) -> Any:
        category = self._push_category(request)
        if category is None:
            return self._klein.render(request)
        try:
            d = maybeDeferred(self._api.push_job, request, category)
        except Exception:  # pragma: no cover - maybeDeferred catches
            d = fail()
        d.addErrback(lambda failure: self._api.render_failure(request, failure))
        d.addCallback(self._write, request)
        d.addErrback(log_failure(self._api._log, "Cannot answer a push"))
        return NOT_DONE_YET

    @staticmethod
    def _push_category(request: Any) -> Optional[str]:
        """The category of a push Klein would route to push_job, or None."""
        if request.method != b"POST" or not request.path.startswith(b"/job/"):
            return None
        raw = request.path[5:]
        if not raw or raw.startswith(b"/"):
            return None
        try:
            return unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None

    @staticmethod
    def _write(body: bytes, request: Any) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.write(body)
        request.finish()
