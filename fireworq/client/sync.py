"""The synchronous client: L{Client}, over one ``httpx.Client`` (connections reused)."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator, Optional, Set

import httpx
from httpx_sse import SSEError, connect_sse

from fireworq.client.base import EVENTS_READ_TIMEOUT, ClientBase, finish, request_args
from fireworq.client.batch import Chunk, Progress, Resends, Settled, Tally, check_chunk_size, chunks
from fireworq.client.call import Call
from fireworq.client.encoding import MAX_BATCH, MAX_BATCH_BYTES, events_params
from fireworq.client.errors import APIError, FireworqError
from fireworq.client.models import BatchResult, Event, FailedJob, Job, Page
from fireworq.client.sse import Resume


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
                delay = self._wait_after_error(call, attempt, e)
            else:
                delay = self._wait_after_answer(call, attempt, response)
                if delay is None:
                    return finish(call, response)
            time.sleep(delay)
            attempt += 1

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
        sends = Resends(chunk, isolate)
        for current in sends:
            try:
                answer: Any = self._send(self._batch_call(category, current.body(), current.keyed, keep))
            except FireworqError as e:
                answer = e
            sends.answer(current, answer)
        return sends.settled

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
        check_chunk_size(chunk_size)
        tally = Tally(keep_jobs, on_progress)
        total = 0

        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="fireworq-push") as pool:
            running: Set[Future] = set()
            for chunk in chunks(jobs, chunk_size, max_bytes):
                total = chunk.start + len(chunk.items)
                if len(running) >= max(1, concurrency):
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        tally.record(future.result())
                running.add(pool.submit(self._push_chunk, category, chunk, isolate, keep_jobs))
            for future in running:
                tally.record(future.result())
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
        resume = Resume(self.url, self.retry, last_event_id, reconnect)
        timeout = self._events_timeout(read_timeout)
        while True:
            error: Optional[BaseException] = None
            try:
                with connect_sse(self._http, "GET", "/events", params=params, headers=resume.headers(), timeout=timeout) as source:
                    response = source.response
                    if not response.is_success:
                        response.read()
                        raise resume.refusal(response)
                    for sse in source.iter_sse():
                        event = resume.event(sse)
                        if event is not None:
                            yield event
            except (httpx.TransportError, APIError, SSEError) as e:
                error = resume.broken(e)
            delay = resume.wait(error)
            if delay is None:
                return
            time.sleep(delay)
