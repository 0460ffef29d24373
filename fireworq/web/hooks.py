"""
Hook routes (B12): ``PUT/GET/DELETE /hook/{name}`` and ``GET /hooks`` (see
docs/api.md, Event hooks).  Definitions go to the node's
L{fireworq.hooks.registry.HookRegistry}; a hook's secret is shown only in
the answer of the ``PUT`` that made it.
"""

from __future__ import annotations

from typing import Any, Optional

from fireworq.auth.access import glob_inside
from fireworq.hooks.model import BadHook, HookDefinition, check_hook_name, parse_hook
from fireworq.web.body import json_object
from fireworq.web.errors import ApiError, bad_request, not_found
from fireworq.web.routes import app, json_response


def hook_name(name: str) -> str:
    """``name`` if it is a valid hook name (400 otherwise)."""
    try:
        check_hook_name(name)
    except BadHook as e:
        raise bad_request(str(e))
    return name


class HookRoutes:
    """Routes that define, show and delete event hooks."""

    #: Set by the server tree: the L{HookRegistry} (None: hooks unavailable).
    hooks: Any = None

    def _hooks(self) -> Any:
        if self.hooks is None:
            raise ApiError(503, "event hooks are not available on this server")
        return self.hooks

    @staticmethod
    def _hook_found(hook: Optional[HookDefinition], name: str) -> HookDefinition:
        if hook is None:
            raise not_found(f"hook {name!r} is not defined")
        return hook

    @staticmethod
    def _seen(hook: Optional[HookDefinition], request: Any) -> Optional[HookDefinition]:
        """The hook, or None when it may carry events of queues the request's token may not see."""
        return hook if hook is not None and glob_inside(request, hook.queues) else None

    @app.route("/hooks", methods=["GET"])
    def list_hooks(self, request: Any) -> Any:
        d = self._hooks().hooks()
        d.addCallback(lambda hooks: json_response(
            request, [h.to_json() for h in hooks if self._seen(h, request) is not None]
        ))
        return d

    @app.route("/hook/<name>", methods=["GET"])
    def get_hook(self, request: Any, name: str) -> Any:
        d = self._hooks().find(hook_name(name))
        d.addCallback(lambda hook: json_response(request, self._hook_found(self._seen(hook, request), name).to_json()))
        return d

    @app.route("/hook/<name>", methods=["PUT"])
    def put_hook(self, request: Any, name: str) -> Any:
        registry = self._hooks()
        body = json_object(self.read_body(request))
        hook_name(name)
        d = registry.find(name)

        def parsed(existing: Optional[HookDefinition]) -> Any:
            try:
                hook, made = parse_hook(name, body, existing)
            except BadHook as e:
                raise bad_request(str(e))
            stored = registry.put(hook)
            stored.addCallback(lambda _: json_response(request, hook.to_json(show_secret=made)))
            return stored

        d.addCallback(parsed)
        return d

    @app.route("/hook/<name>", methods=["DELETE"])
    def delete_hook(self, request: Any, name: str) -> Any:
        d = self._hooks().delete(hook_name(name))
        d.addCallback(lambda hook: json_response(request, self._hook_found(hook, name).to_json()))
        return d
