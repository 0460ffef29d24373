"""
A hook definition (protocol B12): its fields, their validation, how the API
shows it, and the internal queue its deliveries go through.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import attr

from fireworq.joboptions.values import SUCCESS_2XX, QueueDefaults
from fireworq.names import InvalidName, check_worker_url
from fireworq.signing.keys import decode_secret, new_secret

#: The internal queue whose jobs are hook deliveries.
HOOKS_QUEUE = "_hooks"

#: The event types a hook may ask for, in the order the docs list them.
EVENT_TYPES = (
    "job.pushed",
    "job.completed",
    "job.retried",
    "job.failed",
    "job.expired",
    "job.canceled",
)

#: The ``_hooks`` queue's job defaults when the server creates it.
HOOKS_DEFAULTS = QueueDefaults(
    max_retries=15, retry_delay=5, retry_backoff=2.0, retry_max_delay=3600, success=SUCCESS_2XX
)
#: Its polling interval (ms) and workers when the server creates it.
HOOKS_POLLING_INTERVAL = 200
HOOKS_MAX_WORKERS = 20

#: A hook's name: like a queue's, without ``/`` (it is a path segment).
NAME_MAX = 255
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
GLOB_MAX = 255


class BadHook(ValueError):
    """A hook definition that cannot be accepted; the message names the field."""


@attr.s(frozen=True, slots=True, auto_attribs=True, repr=False)
class HookDefinition:
    """
    One hook: POST each event of ``events`` about a queue matching
    ``queues`` (a glob; None = every queue but ``_hooks``) to ``url``,
    signed with ``secret``.
    """

    name: str
    url: str
    events: Tuple[str, ...]
    secret: str
    queues: Optional[str] = None

    def __repr__(self) -> str:
        # Never the secret: a repr may end up in a log line.
        return f"<HookDefinition {self.name!r} -> {self.url!r} {list(self.events)}>"

    def wants(self, event_type: str, queue_name: str) -> bool:
        """Whether an event of ``event_type`` about ``queue_name`` goes to this hook."""
        if event_type not in self.events or queue_name == HOOKS_QUEUE:
            return False
        return self.queues is None or fnmatch.fnmatchcase(queue_name, self.queues)

    def to_json(self, show_secret: bool = False) -> Dict[str, Any]:
        """The API's answer (the secret only when ``show_secret``: in the PUT that made it)."""
        out: Dict[str, Any] = {"name": self.name, "url": self.url, "events": list(self.events)}
        if self.queues is not None:
            out["queues"] = self.queues
        if show_secret:
            out["secret"] = self.secret
        return out


def check_hook_name(name: str) -> None:
    """Raise L{BadHook} unless ``name`` is a valid hook name."""
    if not name:
        raise BadHook("hook name must not be empty")
    if len(name.encode("utf-8")) > NAME_MAX:
        raise BadHook(f"hook name is longer than {NAME_MAX} bytes")
    if not _NAME.fullmatch(name):
        raise BadHook("hook name may contain only letters, digits and _ . : -")
    if name in (".", ".."):
        # Clients resolve /hook/. and /hook/.. as dot-segments: never reachable.
        raise BadHook(f"hook name must not be {name!r}: clients resolve it as a path segment")


def parse_hook(name: str, body: Any, existing: Optional[HookDefinition] = None) -> Tuple[HookDefinition, bool]:
    """
    The definition a ``PUT /hook/{name}`` body asks for, and whether its
    secret was made now (then the answer shows it).  A body without
    ``secret`` keeps the secret of the ``existing`` hook, or gets a new one.

    @raise BadHook: naming the first bad field.
    """
    check_hook_name(name)
    if not isinstance(body, Mapping):
        raise BadHook("the body must be a JSON object")
    unknown = sorted(set(body) - {"url", "events", "queues", "secret", "name"})
    if unknown:
        raise BadHook(f"unknown field {unknown[0]!r} (a hook has url, events, queues and secret)")
    if "name" in body and body["name"] != name:
        raise BadHook("field name differs from the name in the path")
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise BadHook("field url is required and must be a string")
    try:
        check_worker_url(url)  # the same rule as a job's url
    except InvalidName as e:
        raise BadHook(f"field {e}") from None
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise BadHook("field events is required and must be a non-empty list of event types")
    for event in events:
        if event not in EVENT_TYPES:
            raise BadHook(f"field events: unknown event type {event!r} (one of {', '.join(EVENT_TYPES)})")
    ordered = tuple(dict.fromkeys(events))  # as given, repeats dropped: the answer echoes the request
    queues = body.get("queues")
    if queues is not None:
        if not isinstance(queues, str) or not queues:
            raise BadHook("field queues must be a non-empty glob string")
        if len(queues) > GLOB_MAX:
            raise BadHook(f"field queues is longer than {GLOB_MAX} characters")
    secret = body.get("secret")
    made = False
    if secret is None:
        if existing is not None:
            secret = existing.secret
        else:
            secret, made = new_secret(), True
    else:
        if not isinstance(secret, str):
            raise BadHook("field secret must be a whsec_ string")
        try:
            decode_secret(secret)
        except ValueError as e:
            raise BadHook(f"field secret: {e}") from None
    return HookDefinition(name=name, url=url, events=ordered, secret=secret, queues=queues), made


def encode_events(events: Tuple[str, ...]) -> str:
    """The events as the stores keep them: comma-separated."""
    return ",".join(events)


def decode_events(text: str) -> Tuple[str, ...]:
    """Stored events back; unknown ones (a newer server's) are skipped."""
    return tuple(t for t in text.split(",") if t in EVENT_TYPES)
