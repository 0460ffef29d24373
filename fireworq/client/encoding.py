"""
What the clients send: JSON bodies, quoted path segments, job objects
(L{JobSpec}), the query parameters of the list and event endpoints, and the
limits of a batch.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union
from urllib.parse import quote

import attr

from fireworq.client.call import Params

#: Largest number of jobs one ``POST /jobs/{category}`` may carry (B6).
MAX_BATCH = 1000

#: Default byte budget of one batch request: under the server's default
#: ``max_request_body`` (1 MiB) with room to spare.
MAX_BATCH_BYTES = 1_000_000


def encode_json(value: Any) -> bytes:
    """Compact JSON text of ``value``, as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def segment(value: Union[str, int]) -> str:
    """One path segment (a queue name, an id): every reserved character quoted."""
    text = str(value)
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def category_path(category: str) -> str:
    """A job category in a path: ``/`` kept, every other reserved character quoted."""
    return "/".join(segment(part) for part in category.split("/"))


def seconds(value: Any, name: str) -> Any:
    """A duration of the job API: whole seconds from an int or a timedelta."""
    if isinstance(value, datetime.timedelta):
        total = value.total_seconds()
        if total != int(total):
            raise ValueError(f"{name} must be whole seconds, not {total}")
        return int(total)
    return value


#: Job fields that are durations in seconds (A2, B7).
_DURATIONS = ("run_after", "retry_delay", "timeout", "retry_max_delay", "deadline")


def job_body(
    url: Optional[str] = None, payload: Any = None, options: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """
    The JSON object of one job: A2's fields and B7's options (``name``,
    ``tags``, ``headers``, ``priority``, ``retry_backoff``,
    ``retry_max_delay``, ``retry_jitter``, ``success``, ``deadline``,
    ``idempotency_key``) and any other field, passed through as given.
    Options that are None are left out (the server's defaults apply).
    """
    body: Dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if payload is not None:
        body["payload"] = payload
    for key, value in (options or {}).items():
        if value is None:
            continue
        body[key] = seconds(value, key) if key in _DURATIONS else value
    return body


def job_object(job: Any) -> Dict[str, Any]:
    """An element of a batch: a mapping (a job object of A2/B7) or a L{JobSpec}."""
    if isinstance(job, dict):
        return job_body(options=job)
    if isinstance(job, JobSpec):
        return job.to_json()
    if isinstance(job, Mapping):
        return job_body(options=job)
    raise TypeError(f"a job must be a mapping or a JobSpec, not {type(job).__name__}")


@attr.s(auto_attribs=True, frozen=True)
class JobSpec:
    """
    A job to push in a batch: ``url``, ``payload`` and the other job fields
    as keyword ``options`` (the same names as L{Endpoints.push
    <fireworq.client.calls.Endpoints.push>}).
    """

    url: str
    payload: Any = None
    options: Dict[str, Any] = attr.ib(factory=dict)

    @classmethod
    def of(cls, url: str, payload: Any = None, **options: Any) -> "JobSpec":
        """``JobSpec.of(url, payload, max_retries=3, …)``."""
        return cls(url, payload, options)

    def to_json(self) -> Dict[str, Any]:
        """The job object of the push body."""
        return job_body(self.url, self.payload, self.options)


def list_params(
    limit: Optional[int] = None,
    order: Optional[str] = None,
    cursor: Optional[str] = None,
    name: Optional[str] = None,
    tags: Optional[Union[Mapping[str, str], Iterable[str]]] = None,
) -> Params:
    """Query parameters of the list endpoints (A5, A6; ``name``/``tag`` filters of B8)."""
    params: Params = []
    if limit is not None:
        params.append(("limit", str(limit)))
    if order:
        params.append(("order", order))
    if cursor:
        params.append(("cursor", cursor))
    if name:
        params.append(("name", name))
    if tags:
        pairs = [f"{k}:{v}" for k, v in tags.items()] if isinstance(tags, Mapping) else list(tags)
        params.extend(("tag", pair) for pair in pairs)
    return params


def all_keyed(objects: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every job of a batch has an idempotency key (so the batch may be repeated)."""
    return bool(objects) and all(obj.get("idempotency_key") for obj in objects)


def events_params(queues: Optional[Iterable[str]]) -> Params:
    """Query of ``GET /events`` (B13): ``queue=`` repeated."""
    return [("queue", q) for q in (queues or [])]
