"""
Splitting any number of jobs into batch pushes (B6) and reading their
outcome, without I/O: both clients feed L{chunks} to the server and hand
each answer or error to L{settle}, which says what was stored, what failed,
and which smaller chunks to send again.

A batch is stored all or none.  When the server refuses one because of one
element (``400 job [i]: …``) that element is reported as failed and, with
``isolate``, the others are sent again without it, so one bad line of a
large input costs only itself.  A batch the server finds too large (413, or
a 400 "at most N jobs") is split and sent again.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

import attr

from fireworq.client.encoding import MAX_BATCH, MAX_BATCH_BYTES, encode_json, job_object
from fireworq.client.replies import BATCH_INDEX, BATCH_LIMIT
from fireworq.client.errors import BadRequest, PayloadTooLarge
from fireworq.client.models import BatchFailure, BatchResult, PushedJob


@attr.s(auto_attribs=True)
class Chunk:
    """Consecutive jobs of the input, from position ``start``, each already encoded."""

    start: int
    items: List[bytes]
    keyed: bool = False

    def body(self) -> bytes:
        """The request body: a JSON array of the items."""
        return b"[" + b",".join(self.items) + b"]"

    def part(self, begin: int, end: int) -> "Chunk":
        """Items ``begin`` to ``end`` (exclusive) as a chunk of their own."""
        return Chunk(self.start + begin, self.items[begin:end], self.keyed)


def chunks(
    jobs: Iterable[Any], max_count: int = MAX_BATCH, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[Chunk]:
    """
    Read ``jobs`` lazily and yield chunks of at most ``max_count`` jobs
    and (unless one job alone is larger) ``max_bytes`` of body.  A job is a
    mapping, a L{JobSpec}, or ``bytes``: the JSON text of a job object,
    sent unchanged.
    """
    items: List[bytes] = []
    size = 2
    start = 0
    keyed = True
    position = 0
    for job in jobs:
        if isinstance(job, bytes):
            # A job object's JSON text, sent as is (the CLI's lines); never
            # taken as keyed, so such a batch is not repeated.
            encoded, key = job, False
        else:
            obj = job_object(job)
            encoded, key = encode_json(obj), bool(obj.get("idempotency_key"))
        if items and size + len(encoded) + 1 > max_bytes:
            yield Chunk(start, items, keyed)
            items, size, start, keyed = [], 2, position, True
        items.append(encoded)
        size += len(encoded) + 1
        keyed = keyed and key
        position += 1
        if len(items) >= max_count:
            # Full: send it now rather than after reading one job more.
            yield Chunk(start, items, keyed)
            items, size, start, keyed = [], 2, position, True
    if items:
        yield Chunk(start, items, keyed)


@attr.s(auto_attribs=True)
class Settled:
    """What one answer to a chunk decided."""

    stored: List[Tuple[int, PushedJob]] = attr.ib(factory=list)
    failures: List[BatchFailure] = attr.ib(factory=list)
    again: List[Chunk] = attr.ib(factory=list)


def settle(chunk: Chunk, answer: Any, isolate: bool = True) -> Settled:
    """
    The outcome of sending ``chunk``: ``answer`` is the list of
    L{PushedJob} or the exception the call raised.
    """
    out = Settled()
    if not isinstance(answer, BaseException):
        out.stored = [(chunk.start + i, job) for i, job in enumerate(answer)]
        return out
    count = len(chunk.items)
    if isinstance(answer, BadRequest):
        found = BATCH_INDEX.match(answer.message)
        if found and int(found.group(1)) < count:
            if isolate:
                bad = int(found.group(1))
                out.failures.append(BatchFailure(chunk.start + bad, 1, answer))
                out.again = [c for c in (chunk.part(0, bad), chunk.part(bad + 1, count)) if c.items]
                return out
        limit = BATCH_LIMIT.search(answer.message)
        if limit and 0 < int(limit.group(1)) < count:
            size = int(limit.group(1))
            out.again = [chunk.part(i, min(i + size, count)) for i in range(0, count, size)]
            return out
    if isinstance(answer, PayloadTooLarge) and count > 1:
        half = count // 2
        out.again = [chunk.part(0, half), chunk.part(half, count)]
        return out
    out.failures.append(BatchFailure(chunk.start, count, answer))
    return out


class Resends:
    """
    The sends of one chunk: iterate to get the chunk, then each smaller
    chunk an answer asks for; hand each answer (or the exception the call
    raised) to L{answer}; L{settled} is the outcome of them all.
    """

    def __init__(self, chunk: Chunk, isolate: bool) -> None:
        self.isolate = isolate
        self.settled = Settled()
        self._pending = [chunk]

    def __iter__(self) -> Iterator[Chunk]:
        while self._pending:
            yield self._pending.pop(0)

    def answer(self, chunk: Chunk, answer: Any) -> None:
        """Record the answer to ``chunk``."""
        settled = settle(chunk, answer, self.isolate)
        self.settled.stored.extend(settled.stored)
        self.settled.failures.extend(settled.failures)
        self._pending.extend(settled.again)


def check_chunk_size(chunk_size: int) -> None:
    """Refuse a ``push_many`` chunk size the server would refuse."""
    if not 1 <= chunk_size <= MAX_BATCH:
        raise ValueError(f"chunk_size must be 1 to {MAX_BATCH}")


#: Called after each batch request of ``push_many`` with (jobs stored, jobs failed).
Progress = Callable[[int, int], None]


class Tally:
    """Collects the outcome of every chunk into a L{BatchResult}."""

    def __init__(self, keep_jobs: bool, on_progress: Optional[Progress] = None) -> None:
        self.result = BatchResult(jobs=[] if keep_jobs else None)
        self._stored: List[Tuple[int, PushedJob]] = []
        self._on_progress = on_progress

    def add(self, settled: Settled) -> Tuple[int, int]:
        """Record an outcome; return (jobs stored, jobs failed) by it."""
        self.result.pushed += len(settled.stored)
        self.result.failures.extend(settled.failures)
        if self.result.jobs is not None:
            self._stored.extend(settled.stored)
        return len(settled.stored), sum(f.count for f in settled.failures)

    def record(self, settled: Settled) -> None:
        """L{add} an outcome and tell ``on_progress``, if given."""
        stored, failed = self.add(settled)
        if self._on_progress is not None:
            self._on_progress(stored, failed)

    def finish(self, total: int) -> BatchResult:
        """The result, with ``total`` jobs given."""
        result = self.result
        result.total = total
        result.failures.sort(key=lambda f: f.index)
        if result.jobs is not None:
            jobs: List[Optional[PushedJob]] = [None] * total
            for position, job in self._stored:
                jobs[position] = job
            result.jobs = jobs
        return result

