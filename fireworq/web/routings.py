"""Routing management routes (A4)."""

from __future__ import annotations

from typing import Any, Optional

from fireworq.auth.access import check_queue, sees, tenant_of, visible
from fireworq.model import Routing
from fireworq.names import InvalidName, check_category, check_queue_name
from fireworq.web.body import json_object, json_type
from fireworq.web.errors import ApiError, bad_request, not_found
from fireworq.web.routes import app, json_response


def _category(category: str) -> str:
    try:
        check_category(category)
    except InvalidName as e:
        raise bad_request(str(e))
    return category


def _found(routing: Optional[Routing], category: str) -> Routing:
    if routing is None:
        raise not_found(f"no routing exists for job category {category!r}")
    return routing


def _seen(routing: Optional[Routing], request: Any) -> Optional[Routing]:
    """The routing, or None when it points to a queue the request's token may not see."""
    if routing is not None and not sees(request, routing.queue_name):
        return None
    return routing


def _not_taken(routing: Optional[Routing], request: Any, category: str) -> None:
    if routing is not None and not sees(request, routing.queue_name):
        raise ApiError(403, f"job category {category!r} is routed to a queue outside this token's queues")


class RoutingRoutes:
    """Routes that map job categories to queues."""

    @app.route("/routings", methods=["GET"])
    def list_routings(self, request: Any) -> Any:
        d = self.inspection.list_routings()
        d.addCallback(lambda routings: visible(request, routings, lambda r: r.queue_name))
        d.addCallback(lambda routings: json_response(request, [r.to_json() for r in routings]))
        return d

    @app.route("/routing/<category:category>", methods=["GET"])
    def get_routing(self, request: Any, category: str) -> Any:
        d = self.inspection.find_routing(category)
        d.addCallback(_seen, request)
        d.addCallback(lambda r: json_response(request, _found(r, category).to_json()))
        return d

    @app.route("/routing/<category:category>", methods=["PUT"])
    def put_routing(self, request: Any, category: str) -> Any:
        category = _category(category)
        body = json_object(self.read_body(request))
        queue_name = body.get("queue_name")
        if queue_name is None or queue_name == "":
            raise bad_request("field queue_name is required")
        if not isinstance(queue_name, str):
            raise bad_request(f"field queue_name must be a string, not {json_type(queue_name)}")
        try:
            check_queue_name(queue_name)
        except InvalidName as e:
            raise bad_request(f"field queue_name: {e}")
        check_queue(request, queue_name)
        if tenant_of(request) is not None:
            # A tenant must not take over a category routed to another tenant's queue.
            d = self.inspection.find_routing(category)
            d.addCallback(_not_taken, request, category)
            d.addCallback(lambda _: self.manager.put_routing(category, queue_name))
            d.addCallback(lambda r: json_response(request, r.to_json()))
            return d
        d = self.manager.put_routing(category, queue_name)
        d.addCallback(lambda r: json_response(request, r.to_json()))
        return d

    @app.route("/routing/<category:category>", methods=["DELETE"])
    def delete_routing(self, request: Any, category: str) -> Any:
        if tenant_of(request) is not None:
            d = self.inspection.find_routing(category)
            d.addCallback(_seen, request)
            d.addCallback(lambda r: _found(r, category))
            d.addCallback(lambda _: self.manager.delete_routing(category))
        else:
            d = self.manager.delete_routing(category)
        d.addCallback(lambda r: json_response(request, _found(r, category).to_json()))
        return d
