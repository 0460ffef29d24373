"""
Value types of the client: what the server answers, as attrs classes with
typed fields for the documented keys.  Every object keeps the JSON it was
made from in ``raw`` (so fields a newer server adds are never lost:
``extra`` lists them, ``raw`` has them all).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Generic, List, Mapping, Optional, TypeVar

import attr

T = TypeVar("T")


def parse_time(value: Any) -> Optional[datetime.datetime]:
    """An RFC 3339 time of the API (``…T00:51:54.537+09:00`` or ``…Z``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


class _FromJson:
    """Shared by the value types: build from a JSON object, keep the rest."""

    raw: Dict[str, Any]

    @classmethod
    def _known(cls) -> List[str]:
        return [a.name for a in attr.fields(cls) if a.name not in ("raw", "replayed")]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        """Build from the server's JSON object."""
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object, not {type(value).__name__}")
        kwargs: Dict[str, Any] = {}
        for a in attr.fields(cls):
            if a.name == "raw" or a.name not in value:
                continue
            converter = a.metadata.get("parse")
            kwargs[a.name] = converter(value[a.name]) if converter else value[a.name]
        return cls(raw=dict(value), **kwargs)

    @property
    def extra(self) -> Dict[str, Any]:
        """The keys of the answer this version of the client has no field for."""
        known = set(self._known())
        return {k: v for k, v in self.raw.items() if k not in known}

    def to_json(self) -> Dict[str, Any]:
        """The JSON object as the server sent it."""
        return dict(self.raw)


def _time() -> Any:
    return attr.ib(default=None, metadata={"parse": parse_time})


@attr.s(auto_attribs=True, frozen=True, slots=False)
class PushedJob(_FromJson):
    """
    The answer of a push (A2): the job as accepted, its ``id`` and the
    ``queue_name`` that took it.  Job options of a newer server (B7) are in
    ``extra``.  ``replayed`` is true when the server answered an earlier
    push with the same idempotency key (header ``Idempotent-Replayed``).
    """

    id: int = 0
    queue_name: str = ""
    category: str = ""
    url: str = ""
    payload: Any = None
    run_after: int = 0
    max_retries: int = 0
    retry_delay: int = 0
    timeout: int = 0
    replayed: bool = False
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)


@attr.s(auto_attribs=True, frozen=True, slots=False)
class Job(_FromJson):
    """
    A job in a queue (A5).  ``status`` is ``claimed`` or ``grabbed``; a
    server with job history (B8) adds ``state``, ``attempts`` and
    ``result`` (see L{state}, L{attempts}, L{result}).
    """

    id: int = 0
    category: str = ""
    url: str = ""
    payload: Any = None
    status: str = ""
    created_at: Optional[datetime.datetime] = _time()
    next_try: Optional[datetime.datetime] = _time()
    timeout: int = 0
    fail_count: int = 0
    max_retries: int = 0
    retry_delay: int = 0
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)

    @property
    def state(self) -> Optional[str]:
        """B8: ``waiting``, ``deferred``, ``grabbed``, ``completed``, ``failed``, … (None on older servers)."""
        return self.raw.get("state")

    @property
    def attempts(self) -> Optional[int]:
        """B8: attempts started so far (None on older servers)."""
        return self.raw.get("attempts")

    @property
    def result(self) -> Optional[Dict[str, Any]]:
        """B8: the result of the last attempt of a finished job (None otherwise)."""
        return self.raw.get("result")

    @property
    def canceling(self) -> bool:
        """Whether the job was being delivered when it was deleted: the server cancels that delivery (its 202 answer)."""
        return bool(self.raw.get("canceling", False))


@attr.s(auto_attribs=True, frozen=True, slots=False)
class FailureResult(_FromJson):
    """The outcome recorded in a failure-log entry: ``status``, ``code``, ``message``."""

    status: str = ""
    code: int = 0
    message: str = ""
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)


def _result(value: Any) -> Any:
    return FailureResult.from_json(value) if isinstance(value, dict) else value


@attr.s(auto_attribs=True, frozen=True, slots=False)
class FailedJob(_FromJson):
    """A failure-log entry (A6): ``id`` is the entry's id, ``job_id`` the job's."""

    id: int = 0
    job_id: int = 0
    category: str = ""
    url: str = ""
    payload: Any = None
    result: Optional[FailureResult] = attr.ib(default=None, metadata={"parse": _result})
    fail_count: int = 0
    failed_at: Optional[datetime.datetime] = _time()
    created_at: Optional[datetime.datetime] = _time()
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)


@attr.s(auto_attribs=True, frozen=True, slots=False)
class Queue(_FromJson):
    """
    A queue definition (A3).  The throttle fields are None for an
    unthrottled queue; newer servers add job defaults, ``retention``,
    ``signing`` and ``paused`` (B7–B11), found in ``extra``.
    """

    name: str = ""
    polling_interval: Optional[int] = None
    max_workers: Optional[int] = None
    max_dispatches_per_second: Optional[float] = None
    max_burst_size: Optional[int] = None
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)

    @property
    def paused(self) -> bool:
        """B9: whether the queue is paused (False on servers without queue control)."""
        return bool(self.raw.get("paused", False))

    @property
    def signing(self) -> bool:
        """Whether the queue signs its deliveries (False on servers without signing)."""
        return bool(self.raw.get("signing", False))


@attr.s(auto_attribs=True, frozen=True, slots=False)
class Routing(_FromJson):
    """A routing (A4): jobs of ``job_category`` go to ``queue_name``."""

    job_category: str = ""
    queue_name: str = ""
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)


@attr.s(auto_attribs=True, frozen=True, slots=False)
class Node(_FromJson):
    """The node active for a queue: ``id`` and ``host``."""

    id: str = ""
    host: str = ""
    raw: Dict[str, Any] = attr.ib(factory=dict, repr=False, eq=False)


@attr.s(auto_attribs=True, frozen=True)
class Page(Generic[T]):
    """One page of a list: its ``items`` and the ``next_cursor`` ("" on the last page)."""

    items: List[T]
    next_cursor: str = ""


@attr.s(auto_attribs=True, frozen=True)
class Event:
    """
    One Server-Sent Event of ``GET /events`` (B13): ``type`` (``job.pushed``,
    ``stats``, …), ``id``, and ``data`` decoded from JSON (the text when it
    is not JSON).
    """

    type: str
    id: str
    data: Any
    retry: Optional[int] = None


@attr.s(auto_attribs=True, frozen=True)
class BatchFailure:
    """
    Jobs of a batch push that were not stored: ``index`` is the position of
    the first of them in the caller's input, ``count`` how many from there
    (1 for one rejected element), ``error`` the exception.
    """

    index: int
    count: int
    error: BaseException


@attr.s(auto_attribs=True)
class BatchResult:
    """
    The outcome of L{push_many<fireworq.client.Client.push_many>}: how many
    jobs were given (``total``) and stored (``pushed``), which were not and
    why (``failures``, by input position) and, unless the call was told not
    to keep them, ``jobs``: in input order the L{PushedJob} of every job,
    None for those not stored.
    """

    total: int = 0
    pushed: int = 0
    failures: List[BatchFailure] = attr.ib(factory=list)
    jobs: Optional[List[Optional[PushedJob]]] = None

    @property
    def failed(self) -> int:
        """How many jobs were not stored."""
        return sum(f.count for f in self.failures)

    @property
    def ok(self) -> bool:
        """True when every job was stored."""
        return not self.failures

    def raise_for_errors(self) -> "BatchResult":
        """Raise L{BatchError} unless every job was stored; return self."""
        if self.failures:
            from fireworq.client.errors import BatchError

            raise BatchError(self)
        return self
