"""Routing management routes (A4)."""

from __future__ import annotations

from typing import Any, Optional

from fireworq.model import Routing
from fireworq.names import InvalidName, check_category, check_queue_name
from fireworq.web.body import json_object, json_type
from fireworq.web.errors import bad_request, not_found
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


class RoutingRoutes:
    """Routes that map job categories to queues."""

    @app.route("/routings", methods=["GET"])
    def list_routings(self, request: Any) -> Any:
        d = self.inspection.list_routings()
        d.addCallback(lambda routings: json_response(request, [r.to_json() for r in routings]))
        return d

    @app.route("/routing/<category:category>", methods=["GET"])
    def get_routing(self, request: Any, category: str) -> Any:
        d = self.inspection.find_routing(category)
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
        d = self.manager.put_routing(category, queue_name)
        d.addCallback(lambda r: json_response(request, r.to_json()))
        return d

    @app.route("/routing/<category:category>", methods=["DELETE"])
    def delete_routing(self, request: Any, category: str) -> Any:
        d = self.manager.delete_routing(category)
        d.addCallback(lambda r: json_response(request, _found(r, category).to_json()))
        return d
