"""
Validating the B7 job options of a pushed job and the job defaults of a
queue definition (protocol B7) from decoded JSON (L{fireworq.web.body}
numbers included) into the values of L{fireworq.joboptions.values}.

Every refusal is a 400 L{ApiError} whose message names the field in the
words Part A's validators use (L{fireworq.web.jobs.parse_job},
L{fireworq.web.body.unsigned}), prefixed by ``where`` (C{"job [3]: "} in a
batch).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Sequence

import attr

from fireworq.joboptions.values import (
    BUILT_IN_DEFAULTS,
    NO_OPTIONS,
    BACKOFF_MAX,
    BACKOFF_MIN,
    DELIVERY_HEADERS,
    HEADERS_MAX,
    HEADERS_MAX_BYTES,
    HOP_BY_HOP_HEADERS,
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_MAX,
    NAME_MAX,
    OPTION_FIELDS,
    PRIORITY_MAX,
    PRIORITY_MIN,
    RESERVED_PREFIXES,
    SUCCESS_RULES,
    TAG_KEY_MAX,
    TAG_VALUE_MAX,
    TAGS_MAX,
    JobOptions,
    Pairs,
    QueueDefaults,
)
from fireworq.web.body import JsonNumber, _exact, json_type, shown, unsigned
from fireworq.web.errors import bad_request

#: An HTTP field name: a token (RFC 9110 section 5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a header value must not hold: it would end or corrupt the header.
_BREAKS_HEADER = re.compile(r"[\r\n\x00]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The option fields, for the fast test of a Part A push.
_OPTION_NAMES = frozenset(OPTION_FIELDS)

# -- reading values ----------------------------------------------------------


def _text(
    value: Any,
    what: str,
    maximum: int,
    allow_empty: bool = False,
) -> str:
    """
    ``value`` as a string of at most ``maximum`` characters, without
    control characters (they would end up in logs and in headers); ``what``
    (say C{"field name"}) starts the message of the 400 otherwise.
    """
    if not isinstance(value, str):
        raise bad_request(f"{what} must be a string, not {json_type(value)}")
    if not value and not allow_empty:
        raise bad_request(f"{what} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{what} is not valid Unicode text")
    if len(value) > maximum:
        raise bad_request(f"{what} must be at most {maximum} characters long, got {len(value)}")
    if _CONTROL.search(value):
        raise bad_request(f"{what} must not contain control characters")
    return value


def _whole(body: Mapping[str, Any], field: str, minimum: int, maximum: int, where: str) -> Optional[int]:
    """
    Field ``field`` as a whole number from ``minimum`` to ``maximum`` (which
    may be negative, unlike L{unsigned}); None when absent or null.  Like
    L{unsigned}, C{2.0} or C{2e0} counts as 2.
    """
    value = body.get(field)
    if value is None:
        return None
    if type(value) is int and minimum <= value <= maximum:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, JsonNumber)):
        raise bad_request(f"{where}field {field} must be a whole number, not {json_type(value)}")
    exact = _exact(value)
    if exact != exact.to_integral_value():
        raise bad_request(f"{where}field {field} must be a whole number, got {shown(value)}")
    if exact < minimum:
        raise bad_request(f"{where}field {field} must be at least {minimum}, got {shown(value)}")
    if exact > maximum:
        raise bad_request(f"{where}field {field} must be at most {maximum}, got {shown(value)}")
    return int(exact)


def _factor(body: Mapping[str, Any], field: str, where: str) -> Optional[float]:
    """Field ``field`` as a number from L{BACKOFF_MIN} to L{BACKOFF_MAX}; None when absent."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, JsonNumber)):
        raise bad_request(f"{where}field {field} must be a number, not {json_type(value)}")
    exact = _exact(value)
    if exact < BACKOFF_MIN:
        raise bad_request(f"{where}field {field} must be at least {BACKOFF_MIN}, got {shown(value)}")
    if exact > BACKOFF_MAX:
        raise bad_request(f"{where}field {field} must be at most {BACKOFF_MAX}, got {shown(value)}")
    return float(exact)


def _seconds(body: Mapping[str, Any], field: str, where: str) -> Optional[int]:
    """Field ``field`` as whole seconds (L{unsigned}); None when absent or null."""
    if body.get(field) is None:
        return None
    return unsigned(body, field, where=where, unit="seconds")


def _flag(body: Mapping[str, Any], field: str, where: str) -> Optional[bool]:
    value = body.get(field)
    if value is None or isinstance(value, bool):
        return value
    raise bad_request(f"{where}field {field} must be true or false, not {json_type(value)}")


def _success(body: Mapping[str, Any], where: str) -> Optional[str]:
    value = body.get("success")
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f'{where}field success must be "status" or "2xx", not {json_type(value)}')
    if value not in SUCCESS_RULES:
        raise bad_request(f'{where}field success must be "status" or "2xx", got {value[:40]!r}')
    return value


def _object(body: Mapping[str, Any], field: str, where: str) -> Optional[Dict[str, Any]]:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{where}field {field} must be an object, not {json_type(value)}")
    return value


def _tags(body: Mapping[str, Any], where: str) -> Optional[Pairs]:
    value = _object(body, "tags", where)
    if value is None:
        return None
    if len(value) > TAGS_MAX:
        raise bad_request(f"{where}field tags may hold at most {TAGS_MAX} tags, got {len(value)}")
    pairs = []
    for key, item in value.items():
        key = _text(key, f"{where}field tags: a key", TAG_KEY_MAX)
        if ":" in key:
            # A list filter is tag=key:value, split at the first colon.
            raise bad_request(f"{where}field tags: key {key!r} must not contain ':'")
        pairs.append((key, _text(item, f"{where}field tags: the value of {key!r}", TAG_VALUE_MAX, allow_empty=True)))
    return tuple(pairs)


def header_refusal(name: str) -> Optional[str]:
    """
    Why a job may not carry the header ``name`` (a token), or None when it
    may: hop-by-hop headers, the headers a delivery sets, and the
    C{X-Fireworq-} and C{webhook-} families are refused (B7).
    """
    lower = name.lower()
    if lower in HOP_BY_HOP_HEADERS:
        return "is a hop-by-hop header"
    if lower in DELIVERY_HEADERS:
        return "is set by the delivery"
    for prefix in RESERVED_PREFIXES:
        if lower.startswith(prefix):
            return "is reserved (names starting with X-Fireworq- or webhook- are Fireworq's)"
    return None


def _headers(body: Mapping[str, Any], where: str) -> Optional[Pairs]:
    value = _object(body, "headers", where)
    if value is None:
        return None
    if len(value) > HEADERS_MAX:
        raise bad_request(f"{where}field headers may hold at most {HEADERS_MAX} headers, got {len(value)}")
    seen: Dict[str, str] = {}
    size = 0
    pairs = []
    for name, item in value.items():
        if not _TOKEN.fullmatch(name):
            raise bad_request(f"{where}field headers: {name[:40]!r} is not a valid HTTP header name")
        refusal = header_refusal(name)
        if refusal:
            raise bad_request(f"{where}field headers: {name} {refusal} and cannot be given")
        if name.lower() in seen:
            raise bad_request(f"{where}field headers: {seen[name.lower()]} and {name} name the same header")
        seen[name.lower()] = name
        if not isinstance(item, str):
            raise bad_request(f"{where}field headers: the value of {name} must be a string, not {json_type(item)}")
        if _BREAKS_HEADER.search(item):
            raise bad_request(f"{where}field headers: the value of {name} must not contain CR, LF or NUL")
        try:
            size += len(name) + len(item.encode("utf-8"))
        except UnicodeEncodeError:
            raise bad_request(f"{where}field headers: the value of {name} is not valid Unicode text")
        pairs.append((name, item))
    if size > HEADERS_MAX_BYTES:
        raise bad_request(
            f"{where}field headers take {size} bytes of names and values; at most {HEADERS_MAX_BYTES} are allowed"
        )
    return tuple(pairs)


def _idempotency_key(value: Any, what: str) -> str:
    return _text(value, what, IDEMPOTENCY_KEY_MAX)


def parse_job_options(body: Mapping[str, Any], where: str = "", run_after: int = 0) -> JobOptions:
    """
    The B7 options of one pushed job (a decoded JSON object), ``run_after``
    being its already validated Part A field (the deadline must be later).
    ``where`` prefixes every message, as in L{fireworq.web.jobs.parse_job}
    (C{"job [3]: "} in a batch).

    @raise ApiError: 400 naming the first bad field.
    """
    if _OPTION_NAMES.isdisjoint(body):
        # A Part A job: the fast path of the push (about 0.1 us).
        return NO_OPTIONS
    name = body.get("name")
    key = body.get("idempotency_key")
    deadline = _seconds(body, "deadline", where)
    if deadline is not None and deadline <= run_after:
        raise bad_request(
            f"{where}field deadline must be greater than run_after ({run_after} seconds), got {deadline}"
        )
    return JobOptions(
        name=None if name is None else _text(name, f"{where}field name", NAME_MAX),
        tags=_tags(body, where),
        headers=_headers(body, where),
        priority=_whole(body, "priority", PRIORITY_MIN, PRIORITY_MAX, where),
        retry_backoff=_factor(body, "retry_backoff", where),
        retry_max_delay=_seconds(body, "retry_max_delay", where),
        retry_jitter=_flag(body, "retry_jitter", where),
        success=_success(body, where),
        deadline=deadline,
        idempotency_key=None if key is None else _idempotency_key(key, f"{where}field idempotency_key"),
    )


def with_idempotency_header(
    options: JobOptions, values: Optional[Sequence[bytes]], batch: bool = False
) -> JobOptions:
    """
    Apply the request header C{Idempotency-Key} (its raw values, as
    C{request.requestHeaders.getRawHeaders(b"Idempotency-Key")} gives them)
    to a single push's ``options``; with ``batch`` only check that it is
    absent (a batch's elements carry their own keys).

    @raise ApiError: 400 when the header is given on a batch push, more
        than once, is not a valid key, or differs from the job's
        C{idempotency_key} field.
    """
    if not values:
        return options
    header = f"header {IDEMPOTENCY_HEADER}"
    if batch:
        raise bad_request(
            f"{header} cannot be used on a batch push; give each job its own idempotency_key field"
        )
    if len(values) > 1:
        raise bad_request(f"{header} is given more than once")
    try:
        text = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"{header} is not valid UTF-8")
    key = _idempotency_key(text, header)
    if options.idempotency_key is not None and options.idempotency_key != key:
        raise bad_request(f"{header} and field idempotency_key differ; give one of them")
    return attr.evolve(options, idempotency_key=key)


def parse_queue_defaults(body: Mapping[str, Any]) -> QueueDefaults:
    """
    The job defaults of a C{PUT /queue/{name}} body (the fields of the
    definition that are not A3's).

    @raise ApiError: 400 naming the first bad field.
    """
    values = {
        "max_retries": None if body.get("max_retries") is None else unsigned(body, "max_retries"),
        "retry_delay": _seconds(body, "retry_delay", ""),
        "retry_backoff": _factor(body, "retry_backoff", ""),
        "retry_max_delay": _seconds(body, "retry_max_delay", ""),
        "retry_jitter": _flag(body, "retry_jitter", ""),
        "timeout": _seconds(body, "timeout", ""),
        "priority": _whole(body, "priority", PRIORITY_MIN, PRIORITY_MAX, ""),
        "success": _success(body, ""),
        "retention": _seconds(body, "retention", ""),
    }
    for field, value in list(values.items()):
        if field in BUILT_IN_DEFAULTS and value == BUILT_IN_DEFAULTS[field]:
            values[field] = None
    return QueueDefaults(**values)


