"""
Plain value types shared by every layer: queue definitions, routings, jobs,
delivery results and failure-log entries, and the pages of the inspection
lists (the API's cursor strings for them are L{fireworq.web.cursors}; how
a failure-log entry's result is stored is L{fireworq.store.failure_log}).

Times are integers in milliseconds since the epoch; durations that come
from the job API (run_after, retry_delay, timeout) are whole seconds.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Dict, Generic, List, Optional, Sequence, Tuple, TypeVar, Union

import attr

from fireworq.joboptions.values import NO_DEFAULTS, NO_OPTIONS, JobOptions, QueueDefaults

#: The largest value a 32-bit unsigned column of the original schema holds.
UINT32_MAX = 2**32 - 1

#: Bytes a queue name or a category may take (VARCHAR(255) in a binary table).
NAME_MAX_BYTES = 255

#: A throttled queue is polled at this interval (ms), and its definition
#: says so whatever was given, as the original does.
THROTTLED_POLLING_INTERVAL = 100


class ResultStatus(str, enum.Enum):
    """
    The outcome of one delivery, as a worker reports it (A1) or as the
    dispatcher decides when the worker's answer is unusable.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    PERMANENT_FAILURE = "permanent-failure"
    INTERNAL_FAILURE = "internal-failure"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class QueueDefinition:
    """
    A queue: how often it is polled, how many deliveries may run at once and,
    when throttled, how many dispatches per second with which burst.
    """

    name: str
    polling_interval: int
    max_workers: int
    max_dispatches_per_second: float = 0.0
    max_burst_size: int = 0
    #: Job defaults of the queue (B7): used where a push leaves a field out.
    defaults: QueueDefaults = NO_DEFAULTS
    #: Paused (B9): the queue takes pushes and dispatches nothing.
    paused: bool = False

    @property
    def throttled(self) -> bool:
        """Whether dispatch is limited by a token bucket."""
        return self.max_dispatches_per_second > 0

    def to_json(self) -> dict:
        """The definition as the queue API shows it (A3)."""
        out: dict = {"name": self.name}
        if self.polling_interval:
            out["polling_interval"] = self.polling_interval
        out["max_workers"] = self.max_workers
        if self.throttled:
            out["max_dispatches_per_second"] = self.max_dispatches_per_second
            out["max_burst_size"] = self.max_burst_size
        if not self.defaults.is_empty:
            out.update(self.defaults.to_json())
        if self.paused:
            out["paused"] = True
        return out


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Routing:
    """Jobs of ``job_category`` go to the queue ``queue_name``."""

    job_category: str
    queue_name: str

    def to_json(self) -> dict:
        """The routing as the routing API shows it (A4)."""
        return {"job_category": self.job_category, "queue_name": self.queue_name}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class NewJob:
    """
    A validated job as a client pushed it, before it is stored.

    ``payload`` is the exact request body the worker will receive: a JSON
    string payload is stored as its raw text, ``null`` or absent as the empty
    string, anything else as its JSON text.
    """

    category: str
    url: str
    payload: str = ""
    run_after: int = 0
    max_retries: int = 0
    retry_delay: int = 0
    timeout: int = 0
    #: The job options (B7); empty for a Part A job.
    options: JobOptions = NO_OPTIONS

    def stored(self, job_id: int, now: int, grabber_id: Optional[int] = None) -> "Job":
        """
        The job as a store holds it once pushed at ``now`` (ms) with the id
        ``job_id``: claimed and due after ``run_after`` -- or grabbed by
        ``grabber_id`` when given, its first attempt counted -- with all its
        retries left.
        """
        return Job(
            id=job_id,
            category=self.category,
            url=self.url,
            payload=self.payload,
            status=(JobStatus.CLAIMED if grabber_id is None else JobStatus.GRABBED).value,
            created_at=now,
            next_try=now + self.run_after * 1000,
            timeout=self.timeout,
            fail_count=0,
            retry_count=self.max_retries,
            retry_delay=self.retry_delay,
            grabber_id=grabber_id,
            attempts=0 if grabber_id is None else 1,
            options=self.options,
        )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PushEntry:
    """
    One job to store in the queue ``queue_name``.

    With a ``grabber_id`` the job is stored already grabbed by it: the node
    pushing it holds the queue's lease and delivers it at once, without
    polling for it (immediate dispatch, B4).
    """

    queue_name: str
    job: NewJob
    grabber_id: Optional[int] = None
    #: For a job with an idempotency key (B7): its push answer as JSON text
    #: without ``"id"`` and ``"queue_name"``, kept with the key so that a
    #: later push of the key is answered as the first one was.
    answer: Optional[str] = None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Replay:
    """
    What a store answers, in place of a stored L{Job}, for a pushed job
    whose idempotency key was used within its window (B7): the id of the
    job the key's first push stored, and that push's answer (JSON text
    without ``"id"`` and ``"queue_name"``).
    """

    job_id: int
    answer: str


class JobStatus(str, enum.Enum):
    """Where a stored job stands (the ``status`` column)."""

    CLAIMED = "claimed"
    GRABBED = "grabbed"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Job:
    """
    A job as it is stored in a queue.

    ``retry_count`` is the number of retries left (the column of the same
    name); the inspection API shows ``max_retries`` = fail_count +
    retry_count, the job's original allowance.

    ``attempts`` counts the job's grabs: every grab adds one, persisted
    with the grab, so a delivery cut short by a dying node counts too
    (store columns ``attempts``).  A row written by the original Fireworq,
    which does not count, reads 0 until its next grab.
    """

    id: int
    category: str
    url: str
    payload: str
    status: str
    created_at: int
    next_try: int
    timeout: int
    fail_count: int
    retry_count: int
    retry_delay: int
    grabber_id: Optional[int] = None
    attempts: int = 0
    #: The job options (B7); empty for a Part A job.
    options: JobOptions = NO_OPTIONS

    @property
    def deadline_at(self) -> Optional[int]:
        """The job's deadline in ms since the epoch (B7), or None."""
        return self.options.deadline_at(self.created_at)

    @property
    def max_retries(self) -> int:
        """The retries the job was pushed with."""
        return self.fail_count + self.retry_count

    @property
    def attempt(self) -> int:
        """
        The number of this job's delivery (``X-Fireworq-Attempt``): 1 for
        the first, and one more for every later grab -- a retry, or a
        redelivery after the node delivering it died.  Never below
        ``fail_count + 1``.
        """
        return max(self.attempts, self.fail_count + 1)


def stored_object(text: Any) -> Dict[str, Any]:
    """
    The JSON object a store kept as text: C{{}} when it is empty, not JSON
    or not an object (a store is trusted, but never to crash a reader).
    """
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def stored_int(value: Any) -> int:
    """A stored object's integer field; 0 when it is missing or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def stored_str(value: Any) -> str:
    """A stored object's text field; C{""} when it is missing or not text."""
    return value if isinstance(value, str) else ""


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Result:
    """A delivery's outcome, kept in logs and in the failure log (A1)."""

    status: str
    code: int = 0
    message: str = ""
    #: What happens to the job when it differs from ``status`` (a
    #: ``ResultStatus`` value): under the success rule ``"2xx"`` (B7) a 2xx
    #: answer completes the job whatever status its body states.
    outcome: Optional[str] = None
    #: Seconds the answer's ``Retry-After`` header asked to wait (B7), or None.
    retry_after: Optional[float] = None
    #: The answer's body as text, its first 65,536 bytes (B8): captured
    #: only for a queue that keeps finished jobs, else None.
    output: Optional[str] = None
    #: Whether ``output`` was cut (B8).
    output_truncated: bool = False

    @property
    def is_success(self) -> bool:
        """The job is done (the worker reported success, or its rule says so)."""
        return (self.outcome or self.status) == ResultStatus.SUCCESS.value

    @property
    def is_permanent_failure(self) -> bool:
        """The job must not be retried (the worker said so)."""
        return (self.outcome or self.status) == ResultStatus.PERMANENT_FAILURE.value

    def to_json(self) -> dict:
        """The ``result`` object of a failure-log entry."""
        return {"status": self.status, "code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, text: str) -> "Result":
        """Read a result stored as JSON; tolerate missing or odd fields."""
        value = stored_object(text)
        return cls(
            status=stored_str(value.get("status")),
            code=stored_int(value.get("code")),
            message=stored_str(value.get("message")),
        )


class CompletionKind(str, enum.Enum):
    """What a finished delivery does to its job."""

    #: The job is done: delete it.
    SUCCESS = "success"
    #: Try again later: back to claimed, retry_count - 1, fail_count + 1.
    RETRY = "retry"
    #: Give up: write the failure log entry, then delete the job.
    FAIL = "fail"
    #: Canceled while grabbed (B9): delete the job, no failure-log entry.
    CANCEL = "cancel"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Completion:
    """The store-side effect of one delivery of ``job``."""

    job: Job
    kind: CompletionKind
    result: Result
    #: For RETRY: milliseconds until the next try, when the job's retry
    #: policy or the answer's ``Retry-After`` decided (B7); None: the job's
    #: ``retry_delay`` seconds, as in A1.
    retry_wait_ms: Optional[int] = None
    #: Keep the finished job this many ms (B8, the queue's retention);
    #: 0: not kept (Part A).  Ignored for RETRY.
    keep_ms: int = 0
    #: When the last attempt started and finished (B8; with ``keep_ms``).
    attempt: Optional["AttemptTimes"] = None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class AttemptTimes:
    """When a delivery started and ended, in ms since the epoch (B8)."""

    started_at: int
    finished_at: int
    #: Attempts started (B8); None: the job's own count.
    attempts: Optional[int] = None

    @property
    def elapsed(self) -> int:
        """The attempt's duration in ms."""
        return max(0, self.finished_at - self.started_at)


def completion_for(job: Job, result: Result) -> Completion:
    """
    Apply the retry rule of A1: success deletes; a permanent failure or a
    failure with no retries left goes to the failure log; any other failure
    is retried.
    """
    if result.is_success:
        kind = CompletionKind.SUCCESS
    elif result.is_permanent_failure or job.retry_count <= 0:
        kind = CompletionKind.FAIL
    else:
        kind = CompletionKind.RETRY
    return Completion(job=job, kind=kind, result=result)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class FailedJob:
    """
    An entry of a queue's failure log (A6).

    ``max_retries``, ``retry_delay`` and ``timeout`` are the job's own
    settings, kept so that the entry can be pushed again; entries written by
    the original server do not have them and read as 0.
    """

    id: int
    job_id: int
    category: str
    url: str
    payload: str
    result: Result
    fail_count: int
    failed_at: int
    created_at: int
    max_retries: int = 0
    retry_delay: int = 0
    timeout: int = 0
    #: The job's options (B7), kept in the ``result`` JSON under ``"job"``.
    options: JobOptions = NO_OPTIONS

    def as_new_job(self) -> NewJob:
        """The failed job pushed again (L{pushed_again})."""
        return pushed_again(self)


def pushed_again(job: Union[Job, FailedJob]) -> NewJob:
    """
    A job (a failed one, or a kept finished one) pushed again: as it was
    first pushed, due now; its options kept, but not its idempotency key
    (the key names the first push only).
    """
    options = job.options
    if options.idempotency_key is not None:
        options = attr.evolve(options, idempotency_key=None)
    return NewJob(
        category=job.category,
        url=job.url,
        payload=job.payload,
        max_retries=job.max_retries,
        retry_delay=job.retry_delay,
        timeout=job.timeout,
        options=options,
    )


class JobState(str, enum.Enum):
    """The three job lists of the inspection API (A5)."""

    GRABBED = "grabbed"
    WAITING = "waiting"
    DEFERRED = "deferred"


class FailureOrder(str, enum.Enum):
    """The two orders of the failure-log list (A6)."""

    #: Most recent failure first (by failure id).
    FAILED = "failed"
    #: Most recently pushed first (by created_at, then failure id).
    CREATED = "created"


#: A position in a list: (time in ms, id).  The page starting at a key
#: includes the item with that key.
PageKey = Tuple[int, int]

T = TypeVar("T")


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Page(Generic[T]):
    """One page of a list and the key of the first item of the next page."""

    items: List[T]
    next_key: Optional[PageKey] = None


@attr.s(frozen=True, slots=True, auto_attribs=True)
class JobCounts:
    """How many jobs of a queue are in each state."""

    waiting: int = 0
    deferred: int = 0
    grabbed: int = 0


def sort_key(job: Job) -> PageKey:
    """The order of the inspection lists: next_try, then id."""
    return (job.next_try, job.id)


def job_ids(jobs: Sequence[Job]) -> List[int]:
    """The ids of ``jobs``, in order."""
    return [job.id for job in jobs]
