"""
``GET /events``: this node's job events as Server-Sent Events (the
L{fireworq.jobevents.stream.EventHub} of the server, set by the service tree).
"""

from __future__ import annotations

from typing import Any, List, Optional

from fireworq.auth.access import sees, token_of
from fireworq.names import InvalidName, check_queue_name
from fireworq.web.errors import ApiError, bad_request
from fireworq.web.routes import app


def queue_filter(request: Any) -> Optional[List[str]]:
    """The ``queue=`` parameters (repeatable; none: every queue); 400 for a malformed name."""
    names: List[str] = []
    for raw in request.args.get(b"queue", []):
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("query parameter queue must be valid UTF-8")
        try:
            check_queue_name(name)
        except InvalidName as e:
            raise bad_request(f"query parameter queue: {e}")
        names.append(name)
    return names or None


class EventRoutes:
    """The live events route; ``event_hub`` is None where the server streams no events."""

    event_hub: Any = None

    @app.route("/events", methods=["GET"])
    def events(self, request: Any) -> Any:
        """Stream job events, per-queue stats and heartbeats (text/event-stream)."""
        queues = queue_filter(request)
        if self.event_hub is None:
            raise ApiError(503, "live events are not available on this server")
        last = request.getHeader(b"last-event-id")
        token = token_of(request)
        registry = getattr(self, "auth", None)
        valid = (lambda: registry.valid(token.id)) if token is not None and registry is not None else (lambda: True)
        stream = self.event_hub.open(
            request,
            queues=queues,
            sees=lambda queue: sees(request, queue),
            last_event_id=last.decode("ascii", "replace") if last else None,
            valid=valid,
        )
        # Klein finishes the request when this fires (unless the connection is gone).
        return stream.done
