"""Queue management routes: defining, showing and deleting queues (see docs/api.md, Queues)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import attr

from fireworq.auth.access import tenant_of, visible
from fireworq.joboptions.parse import parse_queue_defaults
from fireworq.model import THROTTLED_POLLING_INTERVAL, QueueDefinition
from fireworq.names import InvalidName, check_queue_name
from fireworq.queue_errors import QueueConflict
from fireworq.web.body import json_object, json_type, number, unsigned
from fireworq.web.errors import bad_request, not_found
from fireworq.web.routes import app, json_response
from fireworq.web.signing import parse_signing

#: Bounds of the numbers of a queue definition.
MAX_POLLING_INTERVAL = 86_400_000
MAX_WORKERS = 100_000
MAX_DISPATCHES_PER_SECOND = 1_000_000.0
#: The smallest non-zero rate: MySQL keeps the rate in a FLOAT column, where
#: a tiny rate would read back as 0 (no throttle at all) on the other nodes.
#: (The bounds are well inside the range of a FLOAT.)
MIN_DISPATCHES_PER_SECOND = 0.001
MAX_BURST_SIZE = 1_000_000


def queue_name(name: str) -> str:
    """``name`` if it is a valid queue name (400 otherwise)."""
    try:
        check_queue_name(name)
    except InvalidName as e:
        raise bad_request(str(e))
    return name


def encoded_slash_problem(path: bytes) -> Optional[str]:
    """
    Why a ``/queue/...`` path that matched no route was refused, when its
    queue name holds an encoded ``/`` (``%2F``): the router decodes it into
    a path separator, but a queue name may not contain ``/`` (400, as for
    any other refused name, rather than a 404 for an unknown endpoint).
    """
    if not path.startswith(b"/queue/"):
        return None
    segment = path[len(b"/queue/"):].split(b"/", 1)[0].split(b"?", 1)[0]
    if b"%2f" in segment.lower():
        return "queue name must not contain '/' (written %2F in the path)"
    return None


def parse_definition(
    name: str, body: Dict[str, Any], default_polling_interval: int, default_max_workers: int
) -> QueueDefinition:
    """
    Validate a ``PUT /queue/{name}`` body.  Omitted (or 0) polling_interval
    and max_workers take the configured defaults; a throttle needs both
    max_dispatches_per_second and max_burst_size.  A throttled queue is
    polled every L{THROTTLED_POLLING_INTERVAL} ms, and its definition says
    so whatever polling_interval was given: the original stores and answers
    that fixed interval (its service sets it before storing the definition).
    """
    polling_interval = unsigned(
        body, "polling_interval", maximum=MAX_POLLING_INTERVAL, unit="milliseconds"
    )
    max_workers = unsigned(body, "max_workers", maximum=MAX_WORKERS)
    rate = number(
        body, "max_dispatches_per_second", MAX_DISPATCHES_PER_SECOND, MIN_DISPATCHES_PER_SECOND
    )
    burst = unsigned(body, "max_burst_size", maximum=MAX_BURST_SIZE)
    if rate > 0 and burst == 0:
        raise bad_request("field max_burst_size is required (and positive) with max_dispatches_per_second")
    if burst > 0 and rate == 0:
        raise bad_request("field max_burst_size cannot be set without max_dispatches_per_second")
    if rate > 0:
        polling_interval = THROTTLED_POLLING_INTERVAL
    paused = body.get("paused")
    if paused is not None and not isinstance(paused, bool):
        raise bad_request(f"field paused must be true or false, not {json_type(paused)}")
    return QueueDefinition(
        name=name,
        polling_interval=polling_interval or default_polling_interval,
        max_workers=max_workers or default_max_workers,
        max_dispatches_per_second=rate,
        max_burst_size=burst,
        defaults=parse_queue_defaults(body),
        paused=bool(paused),
    )


def definition_json(definition: QueueDefinition, signed: bool = False) -> Dict[str, Any]:
    """
    A definition as the queue API shows it (A3), a whole rate without
    ".0" (C{3}, not C{3.0}), as the original server writes it;
    ``"signing": true`` when the queue signs its deliveries (B11).
    """
    out = definition.to_json()
    rate = out.get("max_dispatches_per_second")
    if isinstance(rate, float) and rate.is_integer():
        out["max_dispatches_per_second"] = int(rate)
    if signed:
        out["signing"] = True
    return out


def _hide_conflict(failure: Any, name: str) -> None:
    """A tenant's name clash, without the name of the other queue (it may be another tenant's)."""
    failure.trap(QueueConflict)
    raise bad_request(f"queue name {name!r} would share job storage with another queue; choose another name")


class QueueRoutes:
    """Routes that define queues and show their state."""

    @app.route("/queues", methods=["GET"])
    def list_queues(self, request: Any) -> Any:
        d = self.inspection.list_queues()
        d.addCallback(lambda queues: visible(request, queues, lambda q: q.name))

        def answer(queues: Any) -> Any:
            signed = self.signed_queues()
            signed.addCallback(lambda names: json_response(
                request, [definition_json(q, q.name in names) for q in queues]
            ))
            return signed

        d.addCallback(answer)
        return d

    @app.route("/queues/stats", methods=["GET"])
    def queues_stats(self, request: Any) -> Any:
        return json_response(
            request,
            {
                q.name: self.manager.queue_stats(q.name)
                for q in visible(request, self.manager.definitions(), lambda q: q.name)
            },
        )

    @app.route("/queue/<name>", methods=["GET"])
    def get_queue(self, request: Any, name: str) -> Any:
        d = self.inspection.find_queue(name)

        def answer(q: Optional[QueueDefinition]) -> Any:
            signed = self.signed(_found(q, name).name)
            signed.addCallback(lambda on: json_response(request, definition_json(q, on)))  # type: ignore[arg-type]
            return signed

        d.addCallback(answer)
        return d

    @app.route("/queue/<name>", methods=["PUT"])
    def put_queue(self, request: Any, name: str) -> Any:
        body = json_object(self.read_body(request))
        definition = parse_definition(
            queue_name(name),
            body,
            self.config.queue_default_polling_interval,
            self.config.queue_default_max_workers,
        )
        if definition.defaults.retention == self.config.job_lifetime:
            # The server's default retention (B8) is no retention of the queue's own.
            definition = attr.evolve(definition, defaults=attr.evolve(definition.defaults, retention=None))
        signing = parse_signing(body)
        # Signing first, so that a new signed queue never sends an unsigned job.
        d = self.set_signing(definition.name, signing)

        def put(signed: Optional[bool]) -> Any:
            # A body without "paused" leaves a paused queue paused (and one
            # without "signing" leaves its signing as it was).
            stored = self.manager.put_queue(definition, keep_paused=body.get("paused") is None)
            stored.addCallback(lambda q: self.signed(q.name, signed).addCallback(
                lambda on: json_response(request, definition_json(q, on))
            ))
            return stored

        d.addCallback(put)
        if tenant_of(request) is not None:
            d.addErrback(_hide_conflict, definition.name)
        return d

    @app.route("/queue/<name>/pause", methods=["POST"])
    def pause_queue(self, request: Any, name: str) -> Any:
        """Pause the queue: it takes pushes and dispatches nothing (answers the definition)."""
        return self._set_paused(request, name, True)

    @app.route("/queue/<name>/resume", methods=["POST"])
    def resume_queue(self, request: Any, name: str) -> Any:
        """Resume a paused queue (answers the definition)."""
        return self._set_paused(request, name, False)

    def _set_paused(self, request: Any, name: str, paused: bool) -> Any:
        d = self.manager.set_paused(queue_name(name), paused)
        d.addCallback(lambda q: self.signed(q.name).addCallback(
            lambda on: json_response(request, definition_json(q, on))
        ))
        return d

    @app.route("/queue/<name>/purge", methods=["POST"])
    def purge_queue(self, request: Any, name: str) -> Any:
        """Delete the queue's waiting and deferred jobs: ``{"purged": n}``."""
        d = self.manager.purge_queue(queue_name(name))
        d.addCallback(lambda purged: json_response(request, {"purged": purged}))
        return d

    @app.route("/queue/<name>", methods=["DELETE"])
    def delete_queue(self, request: Any, name: str) -> Any:
        d = self.manager.delete_queue(name)
        d.addCallback(self.forget_signing)
        d.addCallback(lambda q: json_response(request, definition_json(_found(q, name))))
        return d

    @app.route("/queue/<name>/node", methods=["GET"])
    def queue_node(self, request: Any, name: str) -> Any:
        d = self.manager.ensure_queue(name)
        d.addCallback(lambda _: self.manager.node(name))

        def answer(node: Any) -> bytes:
            if node is None:
                raise not_found(f"no node is active for queue {name!r}")
            return json_response(request, node.to_json())

        d.addCallback(answer)
        return d

    @app.route("/queue/<name>/stats", methods=["GET"])
    def queue_stats(self, request: Any, name: str) -> Any:
        d = self.manager.ensure_queue(name)
        d.addCallback(lambda _: json_response(request, self.manager.queue_stats(name)))
        return d


def _found(definition: Optional[QueueDefinition], name: str) -> QueueDefinition:
    if definition is None:
        raise not_found(f"queue {name!r} is not defined")
    return definition
