"""
The job options of protocol B7: optional fields of a pushed job (name, tags,
headers, priority, retry backoff, success rule, deadline, idempotency key),
the job defaults a queue definition may carry, how the two are merged, and
how a job answer shows them.

Everything here is pure: it reads decoded JSON (L{fireworq.web.body}
numbers included) and returns frozen values, raising L{ApiError} 400s whose
messages name the field in the words Part A's validators use
(L{fireworq.web.jobs.parse_job}, L{fireworq.web.body.unsigned}).

An option that the push leaves out is C{None} in L{JobOptions}: a job
answer shows exactly the options that are not C{None} (the push gave them,
or a queue default filled them in, L{apply_queue_defaults}), so a push that
uses none of them is answered in the Part A shape.  The effective value of
an absent option is its built-in default (the C{effective_*} properties),
which reproduces the original server's behaviour.
"""

from __future__ import annotations

import json
import re
from typing import AbstractSet, Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

import attr

from fireworq.model import UINT32_MAX, NewJob
from fireworq.web.body import JsonNumber, _exact, json_type, shown, unsigned
from fireworq.web.errors import bad_request

#: Characters a job's name may take.
NAME_MAX = 255
#: Pairs a job's tags may hold, and the characters of a key and of a value.
TAGS_MAX = 16
TAG_KEY_MAX = 64
TAG_VALUE_MAX = 255
#: Headers a job may carry, and the bytes (UTF-8) of all names and values.
HEADERS_MAX = 32
HEADERS_MAX_BYTES = 8 * 1024
#: The range of a priority; the default.
PRIORITY_MIN = -100
PRIORITY_MAX = 100
DEFAULT_PRIORITY = 0
#: The range of a retry backoff factor; the default (a fixed delay).
BACKOFF_MIN = 1
BACKOFF_MAX = 10
DEFAULT_BACKOFF = 1.0
#: Characters an idempotency key may take.
IDEMPOTENCY_KEY_MAX = 255
#: The request header that may carry a single push's idempotency key.
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: The two success rules: the worker's JSON status decides (A1), or any
#: 2xx answer completes the job.
SUCCESS_STATUS = "status"
SUCCESS_2XX = "2xx"
SUCCESS_RULES = (SUCCESS_STATUS, SUCCESS_2XX)

#: Hop-by-hop headers (RFC 9110 section 7.6.1, plus the ones RFC 2616 listed):
#: they concern one connection, not the job.
HOP_BY_HOP_HEADERS = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)
#: Headers the delivery itself sets from the job and the connection.
DELIVERY_HEADERS = frozenset(("host", "content-length", "content-type"))
#: Prefixes of the headers Fireworq and Standard Webhooks signing (B3, B11) own.
RESERVED_PREFIXES = ("x-fireworq-", "webhook-")

#: An HTTP field name: a token (RFC 9110 section 5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a header value must not hold: it would end or corrupt the header.
_BREAKS_HEADER = re.compile(r"[\r\n\x00]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The Part A fields a queue default may fill in (B7, last paragraph).
DEFAULTABLE_PART_A = ("max_retries", "retry_delay", "timeout")

#: A frozen JSON object of strings: its pairs in the order given.
Pairs = Tuple[Tuple[str, str], ...]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JobOptions:
    """
    The B7 options of one job; C{None} for an option the job does not have
    (the answer leaves it out and the built-in default applies).

    ``deadline`` is in seconds after the push, as pushed; ``tags`` and
    ``headers`` keep their pairs in the order given.
    """

    name: Optional[str] = None
    tags: Optional[Pairs] = None
    headers: Optional[Pairs] = None
    priority: Optional[int] = None
    retry_backoff: Optional[float] = None
    retry_max_delay: Optional[int] = None
    retry_jitter: Optional[bool] = None
    success: Optional[str] = None
    deadline: Optional[int] = None
    idempotency_key: Optional[str] = None

    @property
    def is_empty(self) -> bool:
        """Whether the job has no option at all (a Part A job)."""
        return self == _NO_OPTIONS

    @property
    def effective_priority(self) -> int:
        """The priority that orders the job (0 when not given)."""
        return DEFAULT_PRIORITY if self.priority is None else self.priority

    @property
    def effective_backoff(self) -> float:
        """The retry backoff factor (1: the original's fixed delay)."""
        return DEFAULT_BACKOFF if self.retry_backoff is None else self.retry_backoff

    @property
    def effective_jitter(self) -> bool:
        """Whether retry waits are spread at random."""
        return bool(self.retry_jitter)

    @property
    def effective_success(self) -> str:
        """The success rule: L{SUCCESS_STATUS} (A1) unless the job says L{SUCCESS_2XX}."""
        return SUCCESS_STATUS if self.success is None else self.success

    def deadline_at(self, pushed_at: int) -> Optional[int]:
        """The deadline in ms since the epoch for a job pushed at ``pushed_at`` (ms)."""
        return None if self.deadline is None else pushed_at + self.deadline * 1000

    def delivery_headers(self) -> Dict[bytes, list]:
        """
        The job's extra delivery headers as C{twisted.web} raw headers
        (names and values encoded in UTF-8), to merge into the headers of
        L{fireworq.dispatch.delivery.HTTPDeliverer.headers}.  Validation
        guarantees none of them collides with a header the delivery sets.
        """
        if not self.headers:
            return {}
        return {name.encode("ascii"): [value.encode("utf-8")] for name, value in self.headers}


_NO_OPTIONS = JobOptions()


# -- reading values ----------------------------------------------------------


def _text(
    value: Any,
    what: str,
    maximum: int,
    allow_control: bool = False,
    allow_empty: bool = False,
) -> str:
    """
    ``value`` as a string of at most ``maximum`` characters; ``what`` (say
    C{"field name"}) starts the message of the 400 otherwise.
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
    if not allow_control and _CONTROL.search(value):
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
    if not any(field in body for field in OPTION_FIELDS):
        # A Part A job: the fast path of the push.
        return _NO_OPTIONS
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


# -- queue defaults ----------------------------------------------------------


@attr.s(frozen=True, slots=True, auto_attribs=True)
class QueueDefaults:
    """
    The job defaults of a queue definition (B7, last paragraph): used where
    a push leaves the field out.  C{None} for a field without a default of
    the queue (the built-in default applies); a default equal to the
    built-in one is kept as C{None}, so it is neither shown nor stored.
    """

    max_retries: Optional[int] = None
    retry_delay: Optional[int] = None
    retry_backoff: Optional[float] = None
    retry_max_delay: Optional[int] = None
    retry_jitter: Optional[bool] = None
    timeout: Optional[int] = None
    priority: Optional[int] = None
    success: Optional[str] = None

    @property
    def is_empty(self) -> bool:
        """Whether the queue has no job default."""
        return self == _NO_DEFAULTS

    def to_json(self) -> Dict[str, Any]:
        """The defaults a queue answer shows: those that are set, in field order."""
        return {field: _json_number(value) for field, value in attr.asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, value: Any) -> "QueueDefaults":
        """
        Read defaults that a store kept as L{to_json} wrote them, skipping
        what is not valid now (a store is trusted, but never to crash a node).
        """
        if not isinstance(value, dict):
            return _NO_DEFAULTS
        read: Dict[str, Any] = {}
        for field in attr.fields_dict(cls):
            if field in value:
                try:
                    read[field] = getattr(parse_queue_defaults({field: value[field]}), field)
                except Exception:
                    continue
        return cls(**read)


_NO_DEFAULTS = QueueDefaults()

#: The built-in defaults: a queue default equal to one of these is no default.
_BUILT_IN: Dict[str, Any] = {
    "max_retries": 0,
    "retry_delay": 0,
    "retry_backoff": DEFAULT_BACKOFF,
    "retry_jitter": False,
    "timeout": 0,
    "priority": DEFAULT_PRIORITY,
    "success": SUCCESS_STATUS,
}


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
    }
    for field, value in list(values.items()):
        if field in _BUILT_IN and value == _BUILT_IN[field]:
            values[field] = None
    return QueueDefaults(**values)


def given_fields(body: Mapping[str, Any]) -> FrozenSet[str]:
    """The Part A fields that a queue default may fill in and that ``body`` gives (not null)."""
    return frozenset(field for field in DEFAULTABLE_PART_A if body.get(field) is not None)


def apply_queue_defaults(
    job: NewJob, options: JobOptions, defaults: QueueDefaults, given: AbstractSet[str]
) -> Tuple[NewJob, JobOptions]:
    """
    Merge a pushed job with its queue's defaults: a value the push gave wins
    over the queue's default, which wins over the built-in default.
    ``given`` names the Part A fields the push gave (L{given_fields}); the
    options say themselves which they have (not C{None}).
    """
    if defaults.is_empty:
        return job, options
    changes: Dict[str, Any] = {}
    for field in DEFAULTABLE_PART_A:
        value = getattr(defaults, field)
        if value is not None and field not in given:
            changes[field] = value
    if changes:
        job = attr.evolve(job, **changes)
    filled: Dict[str, Any] = {}
    for field in ("retry_backoff", "retry_max_delay", "retry_jitter", "priority", "success"):
        value = getattr(defaults, field)
        if value is not None and getattr(options, field) is None:
            filled[field] = value
    if filled:
        options = attr.evolve(options, **filled)
    return job, options


# -- answers and storage -----------------------------------------------------

#: The option fields, in the order an answer shows them.
OPTION_FIELDS = (
    "name",
    "tags",
    "headers",
    "priority",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "success",
    "deadline",
    "idempotency_key",
)


def _json_number(value: Any) -> Any:
    """A whole float as an integer (C{2}, not C{2.0}), as the queue API writes rates."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def options_json(options: JobOptions) -> Dict[str, Any]:
    """The options a job has, as a job answer shows them (empty for a Part A job)."""
    out: Dict[str, Any] = {}
    if options.is_empty:
        return out
    for field in OPTION_FIELDS:
        value = getattr(options, field)
        if value is None:
            continue
        if field in ("tags", "headers"):
            value = dict(value)
        out[field] = _json_number(value)
    return out


def add_option_fields(answer: Dict[str, Any], options: JobOptions) -> Dict[str, Any]:
    """
    Add to a job answer (push answer, inspected job, failure-log entry) the
    options the job has, after its Part A fields; returns ``answer``.  A
    job without options keeps exactly the Part A shape.
    """
    if not options.is_empty:
        answer.update(options_json(options))
    return answer


def encode_options(options: JobOptions) -> Optional[str]:
    """
    The options as the stores keep them: compact JSON text of
    L{options_json}, or C{None} (SQL NULL) for a job without options.
    """
    if options.is_empty:
        return None
    return json.dumps(options_json(options), ensure_ascii=False, separators=(",", ":"))


def decode_options(text: Optional[str]) -> JobOptions:
    """
    Read options kept by L{encode_options}; NULL, unreadable text or a
    field that is no longer valid reads as no option (never an error: a
    stored job must always be deliverable).
    """
    if not text:
        return _NO_OPTIONS
    try:
        value = json.loads(text)
    except ValueError:
        return _NO_OPTIONS
    if not isinstance(value, dict):
        return _NO_OPTIONS
    read: Dict[str, Any] = {}
    for field in OPTION_FIELDS:
        if field not in value:
            continue
        try:
            # Each field alone, so one bad field loses only itself; a
            # deadline is checked against run_after at push time only.
            parsed = parse_job_options({field: value[field]}, run_after=-1)
        except Exception:
            continue
        read[field] = getattr(parsed, field)
    return JobOptions(**read)

