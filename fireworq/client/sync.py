"""The synchronous client: L{Client}, over one ``httpx.Client`` (connections reused)."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Set

import httpx
from httpx_sse import SSEError, connect_sse

from fireworq.client.base import (
    EVENTS_READ_TIMEOUT,
    ClientBase,
    decode,
    finish,
    request_args,
    retryable_answer,
    retryable_error,
    transport_error,
)
from fireworq.client.batch import Chunk, Settled, Tally, chunks, settle
from fireworq.client.call import Call
from fireworq.client.encoding import MAX_BATCH, MAX_BATCH_BYTES, events_params
from fireworq.client.errors import APIError, FireworqError, TransportError, api_error
from fireworq.client.models import BatchResult, Event, FailedJob, Job, Page
from fireworq.client.sse import event_of

#: Called after each batch request of L{Client.push_many} with (jobs stored, jobs failed).
Progress = Callable[[int, int], None]


class Client(ClientBase):
    """
    A synchronous client of a Fireworq server.

    ``Client(url=None, token=None, timeout=10.0, retry=RetryPolicy(), …)``:
    ``url`` defaults to ``FIREWORQ_URL`` (else ``http://127.0.0.1:8080``),
    ``token`` to ``FIREWORQ_TOKEN``.  Use it as a context manager, or call
    L{close}.  It is safe to share between threads.  Every API method is
    documented on L{fireworq.client.calls.Endpoints}.
    """

    def __init__(self, url: Optional[str] = None, *, transport: Optional[httpx.BaseTransport] = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        if transport is None and self.uds:
            transport = httpx.HTTPTransport(uds=self.uds, limits=self._http_args["limits"])
        self._http = httpx.Client(transport=transport, **self._http_args)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _send(self, call: Call) -> Any:
        attempt = 1
        args = request_args(call)
        while True:
            try:
                response = self._http.request(call.method, call.path, **args)
            except httpx.TransportError as e:
                if retryable_error(call, e) and self.retry.may_retry(attempt):
                    time.sleep(self._retry_wait(call, attempt, e, None))
                    attempt += 1
                    continue
                raise transport_error(call, e, self.url) from e
            if retryable_answer(call, response) and self.retry.may_retry(attempt):
                error = api_error(response.status_code, decode(response), response.headers, call.method, call.path)
                time.sleep(self._retry_wait(call, attempt, error, response))
                attempt += 1
                continue
            return finish(call, response)

    # -- iterators over cursor pages -------------------------------------------

    def _walk(self, fetch: Callable[[Optional[str]], Page]) -> Iterator[Any]:
        cursor: Optional[str] = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def iter_jobs(self, queue: str, state: str = "waiting", *, page_size: int = 100, **filters: Any) -> Iterator[Job]:
        """Every L{Job} of ``queue`` in ``state``, page after page (``order``, ``name``, ``tags`` as L{list_jobs})."""
        return self._walk(lambda c: self.list_jobs(queue, state, limit=page_size, cursor=c, **filters))

    def iter_failed(self, queue: str, *, page_size: int = 100, **filters: Any) -> Iterator[FailedJob]:
        """Every L{FailedJob} of ``queue``, page after page (``order``, … as L{list_failed})."""
        return self._walk(lambda c: self.list_failed(queue, limit=page_size, cursor=c, **filters))

    def iter_completed(self, queue: str, *, page_size: int = 100, **filters: Any) -> Iterator[Job]:
        """(B8) Every kept completed L{Job} of ``queue``, newest first."""
        return self._walk(lambda c: self.list_completed(queue, limit=page_size, cursor=c, **filters))

    # -- batch push ---------------------------------------------------------------

    def _push_chunk(self, category: str, chunk: Chunk, isolate: bool, keep: bool = True) -> Settled:
        out = Settled()
        pending = [chunk]
        while pending:
            current = pending.pop(0)
            try:
                answer: Any = self._send(self._batch_call(category, current.body(), current.keyed, keep))
            except FireworqError as e:
                answer = e
            settled = settle(current, answer, isolate)
            out.stored.extend(settled.stored)
            out.failures.extend(settled.failures)
            pending.extend(settled.again)
        return out

    def push_many(
        self,
        category: str,
        jobs: Iterable[Any],
        *,
        chunk_size: int = MAX_BATCH,
        max_bytes: int = MAX_BATCH_BYTES,
        concurrency: int = 4,
        isolate: bool = True,
        keep_jobs: bool = True,
        on_progress: Optional[Progress] = None,
    ) -> BatchResult:
        """
        Push any number of ``jobs`` (mappings of A2/B7 job fields,
        L{JobSpec}s, or the JSON text of job objects as ``bytes``) of one
        category in batch pushes of ``chunk_size``
        (at most the server's 1000) and ``max_bytes``, ``concurrency``
        requests at a time.  ``jobs`` is read lazily, so it may be a
        generator over a large file.

        Never raises for jobs the server refuses: the L{BatchResult} says
        how many were stored and which were not, by input position (call
        ``raise_for_errors()`` to raise).  With ``isolate`` a batch refused
        for one element is sent again without it.  ``keep_jobs=False``
        keeps only counts (for very large inputs).  ``on_progress(stored,
        failed)`` is called in this thread after each request.
        """
        if not 1 <= chunk_size <= MAX_BATCH:
            raise ValueError(f"chunk_size must be 1 to {MAX_BATCH}")
        tally = Tally(keep_jobs)
        total = 0

        def record(settled: Settled) -> None:
            stored, failed = tally.add(settled)
            if on_progress is not None:
                on_progress(stored, failed)

        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fireworq-push") as pool:
            running: Set[Future] = set()
            for chunk in chunks(jobs, chunk_size, max_bytes):
                total = chunk.start + len(chunk.items)
                if len(running) >= max(1, concurrency):
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        record(future.result())
                running.add(pool.submit(self._push_chunk, category, chunk, isolate, keep_jobs))
            for future in running:
                record(future.result())
        return tally.finish(total)

    # -- live events ------------------------------------------------------------

    def events(
        self,
        queues: Optional[Iterable[str]] = None,
        *,
        last_event_id: Optional[str] = None,
        reconnect: bool = True,
        read_timeout: float = EVENTS_READ_TIMEOUT,
    ) -> Iterator[Event]:
        """
        (B13) ``GET /events``: iterate over the live L{Event}s of this node
        (of ``queues`` only, when given).  With ``reconnect`` a stream that
        breaks is opened again with ``Last-Event-ID``, so no event of the
        last 1,000 is missed; after ``retry.attempts`` failures in a row
        the error is raised.  Stop by leaving the loop.
        """
        params = events_params(queues)
        last = last_event_id
        failures = 0
        timeout = httpx.Timeout(self.timeout.connect, read=read_timeout, write=self.timeout.write, pool=self.timeout.pool)
        while True:
            headers: Dict[str, str] = {"Last-Event-ID": last} if last else {}
            error: Optional[BaseException] = None
            try:
                with connect_sse(self._http, "GET", "/events", params=params, headers=headers, timeout=timeout) as source:
                    response = source.response
                    if not response.is_success:
                        response.read()
                        raise api_error(response.status_code, decode(response), response.headers, "GET", "/events")
                    for sse in source.iter_sse():
                        failures = 0
                        if sse.id:
                            last = sse.id
                        if not sse.data:
                            continue  # a frame with only "retry:" (no data) is not an event
                        yield event_of(sse)
            except httpx.TransportError as e:
                error = transport_error(Call("GET", "/events", lambda r: r), e, self.url)
                error.__cause__ = e
            except APIError as e:
                if e.status != 503:
                    raise
                error = e
            except SSEError as e:
                raise TransportError(f"GET {self.url}/events: {e}") from e
            if not reconnect:
                if error is not None:
                    raise error
                return
            failures += 1
            if not self.retry.may_retry(failures):
                raise error if error is not None else TransportError(f"GET {self.url}/events: the stream keeps ending")
            time.sleep(self.retry.delay(failures))
