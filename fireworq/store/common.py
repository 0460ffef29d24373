"""
Helpers shared by the store drivers (in-memory, sqlite, MySQL), so that
every driver refuses, stores and reads back exactly the same values.

No driver imports another driver's module: what two of them share lives
here.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, List, Optional

import attr

from fireworq.joboptions.values import NO_DEFAULTS, QueueDefaults
from fireworq.model import FailedJob, Job, Page, PageKey, PushEntry, QueueDefinition, Result
from fireworq.store.failure_log import encode_failure_result

#: A clock: milliseconds since the epoch.
Clock = Callable[[], int]


def system_clock() -> int:
    """The system time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def check_storable(entry: PushEntry) -> None:
    """
    @raise ValueError: when a text field of the job cannot be stored as
        UTF-8 (a lone surrogate), which no driver can keep faithfully.
    """
    job = entry.job
    for field, text in (
        ("queue name", entry.queue_name),
        ("category", job.category),
        ("url", job.url),
        ("payload", job.payload),
    ):
        if not isinstance(text, str):
            raise ValueError(f"the {field} of a job must be text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"the {field} of a job is not valid Unicode text")


def failure_result_text(job: Job, result: Result) -> str:
    """
    The ``result`` column of a failure-log entry (L{encode_failure_result}),
    with anything that is not valid Unicode (a lone surrogate in a worker's
    message) replaced, so that the entry can always be stored.
    """
    text = encode_failure_result(job, result)
    return text.encode("utf-8", "replace").decode("utf-8")


def normalize_definition(definition: QueueDefinition) -> QueueDefinition:
    """
    The definition as a store reads it back: an unthrottled queue has
    ``max_dispatches_per_second`` 0.0 and ``max_burst_size`` 0, and the
    rate is a float.
    """
    if definition.max_dispatches_per_second > 0:
        return attr.evolve(
            definition,
            max_dispatches_per_second=float(definition.max_dispatches_per_second),
        )
    return attr.evolve(definition, max_dispatches_per_second=0.0, max_burst_size=0)


def encode_job_defaults(definition: QueueDefinition) -> Optional[str]:
    """
    The job defaults of a queue (B7) as the SQL drivers keep them: compact
    JSON of L{QueueDefaults.to_json}, or None (NULL) when the queue has none.
    """
    if definition.defaults.is_empty:
        return None
    return json.dumps(definition.defaults.to_json(), separators=(",", ":"))


def decode_job_defaults(text: Any) -> QueueDefaults:
    """Read what L{encode_job_defaults} wrote (NULL or anything unreadable: no defaults)."""
    if not text:
        return NO_DEFAULTS
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        return NO_DEFAULTS
    return QueueDefaults.from_json(value)


def attempts_at_grab(attempts: int, fail_count: int) -> int:
    """
    The ``attempts`` of a job once grabbed again: one more than the
    deliveries counted so far.  A job whose count is behind its
    ``fail_count`` (a row retried by the original Fireworq, which does not
    count attempts) counts from its failures, so the result is never below
    ``fail_count + 1``.  The SQL drivers compute the same in their UPDATE.
    """
    return max(attempts, fail_count) + 1


def job_page_key(job: Job) -> PageKey:
    """Where a page of jobs that begins with ``job`` starts: (next_try, id)."""
    return (job.next_try, job.id)


def failure_page_key(failed: FailedJob) -> PageKey:
    """Where a page of failure-log entries that begins with ``failed`` starts: (created_at, id)."""
    return (failed.created_at, failed.id)


def page_of(items: List[Any], limit: int, key: Callable[[Any], PageKey]) -> Page:
    """
    A L{Page} of at most ``limit`` of ``items``, read with a limit of
    ``limit + 1``: the one more, if read, gives the next page's key.
    """
    if len(items) > limit:
        return Page(items[:limit], key(items[limit]))
    return Page(items, None)


def count_jobs_sql(table: str, now: str) -> str:
    """
    One SELECT of a job table's waiting, deferred and grabbed counts at
    ``now`` (a literal, or a placeholder given twice).
    """
    return (
        f"SELECT (SELECT COUNT(*) FROM {table} WHERE status = 'claimed' AND next_try <= {now}), "
        f"(SELECT COUNT(*) FROM {table} WHERE status = 'claimed' AND next_try > {now}), "
        f"(SELECT COUNT(*) FROM {table} WHERE status = 'grabbed')"
    )


def driver_of(repository: Any) -> str:
    """
    The driver of a repository (the definitions; an observed one looked
    through): ``"sqlite"``, ``"mysql"`` or ``"in-memory"``, for the stores
    of a feature that live beside it (the same sqlite file, the same MySQL
    pool).
    """
    module = type(getattr(repository, "observed", repository)).__module__
    if module.startswith("fireworq.store.sqlite"):
        return "sqlite"
    if module.startswith("fireworq.store.mysql"):
        return "mysql"
    return "in-memory"
