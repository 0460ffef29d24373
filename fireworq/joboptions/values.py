"""
The job options of protocol B7 as values: what a job may carry beyond
Part A (name, tags, headers, priority, retry backoff, success rule,
deadline, idempotency key), the job defaults a queue definition may carry,
how the two merge, how a job answer shows them and how stores keep them.

An option that the push leaves out is C{None} in L{JobOptions}: a job
answer shows exactly the options that are not C{None} (the push gave them,
or a queue default filled them in, L{apply_queue_defaults}), so a push that
uses none of them is answered in the Part A shape.  The effective value of
an absent option is its built-in default (the C{effective_*} properties),
which reproduces the original server's behaviour.

This module imports nothing of the server but L{attr}, so that
L{fireworq.model} may use its types; validation of client input is in
L{fireworq.joboptions.parse}.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, AbstractSet, Any, Dict, FrozenSet, Mapping, Optional, Tuple

import attr

if TYPE_CHECKING:
    from fireworq.model import NewJob

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
        # NO_OPTIONS itself first: a Part A job's options are that one value
        # (the parser and the stores give it), and comparing every field of
        # it costs a push path about a microsecond per call.
        return self is NO_OPTIONS or self == NO_OPTIONS

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


NO_OPTIONS = JobOptions()


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
    #: Seconds a finished job of the queue is kept (B8); None: the server's
    #: ``job_lifetime``.  Kept with the defaults (stored in their JSON).
    retention: Optional[int] = None

    @property
    def is_empty(self) -> bool:
        """Whether the queue has no job default."""
        return self is NO_DEFAULTS or self == NO_DEFAULTS

    def to_json(self) -> Dict[str, Any]:
        """The defaults a queue answer shows: those that are set, in field order."""
        return {field: _json_number(value) for field, value in attr.asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, value: Any) -> "QueueDefaults":
        """
        Read defaults that a store kept as L{to_json} wrote them, skipping
        what is not valid now (a store is trusted, but never to crash a node).
        """
        from fireworq.joboptions.parse import parse_queue_defaults

        if not isinstance(value, dict):
            return NO_DEFAULTS
        read: Dict[str, Any] = {}
        for field in attr.fields_dict(cls):
            if field in value:
                try:
                    read[field] = getattr(parse_queue_defaults({field: value[field]}), field)
                except Exception:
                    continue
        return cls(**read)


NO_DEFAULTS = QueueDefaults()

#: The built-in defaults: a queue default equal to one of these is no default.
BUILT_IN_DEFAULTS: Dict[str, Any] = {
    "max_retries": 0,
    "retry_delay": 0,
    "retry_backoff": DEFAULT_BACKOFF,
    "retry_jitter": False,
    "timeout": 0,
    "priority": DEFAULT_PRIORITY,
    "success": SUCCESS_STATUS,
}


def given_fields(body: Mapping[str, Any]) -> FrozenSet[str]:
    """The Part A fields that a queue default may fill in and that ``body`` gives (not null)."""
    return frozenset(field for field in DEFAULTABLE_PART_A if body.get(field) is not None)


def apply_queue_defaults(
    job: "NewJob", options: JobOptions, defaults: QueueDefaults, given: AbstractSet[str]
) -> Tuple["NewJob", JobOptions]:
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
    from fireworq.joboptions.parse import parse_job_options

    if not text:
        return NO_OPTIONS
    try:
        value = json.loads(text)
    except ValueError:
        return NO_OPTIONS
    if not isinstance(value, dict):
        return NO_OPTIONS
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

