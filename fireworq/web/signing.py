"""
Signed deliveries in the API (see docs/api.md, Signed deliveries): the
``signing`` field of a queue definition, and the queue's signing secrets
(``GET /queue/{q}/signing-key``, ``POST /queue/{q}/signing-key/rotate``).

The routes ask the node's L{SigningService <fireworq.signing.service.SigningService>}
(C{self.signing}), never a store.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Set

from twisted.internet.defer import Deferred, succeed

from fireworq.model import QueueDefinition
from fireworq.web.body import json_type
from fireworq.web.errors import bad_request, not_found
from fireworq.web.routes import app, json_response, timestamp


def parse_signing(body: Dict[str, Any]) -> Optional[bool]:
    """The ``signing`` field of a queue definition: True, False, or None when absent."""
    value = body.get("signing")
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"field signing must be true or false, not {json_type(value)}")
    return value


def keys_json(keys: Any) -> Dict[str, Any]:
    """A queue's signing secrets as the API shows them."""
    expires = keys.previous_expires_at
    return {
        "current": keys.current,
        "previous": keys.previous,
        "previous_expires_at": timestamp(expires) if expires is not None else None,
    }


class SigningRoutes:
    """The signing secrets of queues, and the ``signing`` flag of definitions."""

    #: The node's L{SigningService <fireworq.signing.service.SigningService>}
    #: (set by the service tree); None: no signing (then ``signing: true`` is refused).
    signing: Any = None

    # -- the flag in queue definitions (used by QueueRoutes) -------------------------

    def set_signing(self, name: str, wanted: Optional[bool]) -> "Deferred[Optional[bool]]":
        """
        Turn the signing of queue ``name`` on or off as a definition asks
        (``wanted`` None: left as it is); fire with whether it is on, or
        None when unknown (left as it is).
        """
        if wanted is None:
            return succeed(None)
        if self.signing is None:
            if wanted:
                raise bad_request("field signing: this server cannot sign deliveries")
            return succeed(False)
        return self.signing.set_signing(name, wanted)

    def signed(self, name: str, known: Optional[bool] = None) -> "Deferred[bool]":
        """Whether queue ``name`` signs its deliveries (``known``: already known)."""
        if known is not None:
            return succeed(known)
        if self.signing is None:
            return succeed(False)
        d = self.signing.keys(name)
        d.addCallback(lambda keys: keys is not None)
        return d

    def signed_queues(self) -> "Deferred[Set[str]]":
        """The names of the queues that sign their deliveries."""
        if self.signing is None:
            return succeed(set())
        return self.signing.signed_queues()

    def forget_signing(self, definition: Optional[QueueDefinition]) -> Any:
        """After a queue was deleted: delete its secrets; fire with ``definition``."""
        if definition is None or self.signing is None:
            return definition
        d = self.signing.forget(definition.name)
        d.addCallback(lambda _: definition)
        return d

    # -- the secrets -------------------------------------------------------------------

    def _signing_keys_of(self, name: str, action: Any) -> Deferred:
        """Run ``action(name)`` once queue ``name`` is known to be defined; 404 otherwise."""
        from fireworq.web.queues import queue_name

        queue_name(name)
        d = self.inspection.find_queue(name)  # type: ignore[attr-defined]

        def defined(definition: Optional[QueueDefinition]) -> Any:
            if definition is None:
                raise not_found(f"queue {name!r} is not defined")
            if self.signing is None:
                return None
            return action(name)

        def found(keys: Any) -> Any:
            if keys is None:
                raise not_found(f"queue {name!r} does not sign its deliveries (see its field signing)")
            return keys

        d.addCallback(defined)
        d.addCallback(found)
        return d

    @app.route("/queue/<name>/signing-key", methods=["GET"])
    def signing_key(self, request: Any, name: str) -> Any:
        """The queue's signing secrets: current, previous (during the overlap) and when that ends."""
        d = self._signing_keys_of(name, lambda q: self.signing.keys(q))
        d.addCallback(lambda keys: json_response(request, keys_json(keys)))
        return d

    @app.route("/queue/<name>/signing-key/rotate", methods=["POST"])
    def rotate_signing_key(self, request: Any, name: str) -> Any:
        """A new current secret; the old one signs too until ``previous_expires_at``."""
        d = self._signing_keys_of(name, lambda q: self.signing.rotate(q))
        d.addCallback(lambda keys: json_response(request, keys_json(keys)))
        return d
