"""
The asyncio client: L{AsyncClient}, over one ``httpx.AsyncClient``.  Every
API method of L{fireworq.client.calls.Endpoints} returns a coroutine here.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, Optional, Set

import httpx
from httpx_sse import SSEError, aconnect_sse

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
from fireworq.client.sync import Progress


class AsyncClient(ClientBase):
    """
    An asyncio client of a Fireworq server; the same methods and arguments
    as L{fireworq.client.Client}, awaited.  Use it as an async context
    manager, or await L{aclose}.
    """

    def __init__(
        self, url: Optional[str] = None, *, transport: Optional[httpx.AsyncBaseTransport] = None, **kwargs: Any
    ) -> None:
        super().__init__(url, **kwargs)
        if transport is None and self.uds:
            transport = httpx.AsyncHTTPTransport(uds=self.uds, limits=self._http_args["limits"])
        self._http = httpx.AsyncClient(transport=transport, **self._http_args)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:  # type: ignore[override]
        attempt = 1
        args = request_args(call)
        while True:
            try:
                response = await self._http.request(call.method, call.path, **args)
            except httpx.TransportError as e:
                if retryable_error(call, e) and self.retry.may_retry(attempt):
                    await asyncio.sleep(self._retry_wait(call, attempt, e, None))
                    attempt += 1
                    continue
                raise transport_error(call, e, self.url) from e
            if retryable_answer(call, response) and self.retry.may_retry(attempt):
                error = api_error(response.status_code, decode(response), response.headers, call.method, call.path)
                await asyncio.sleep(self._retry_wait(call, attempt, error, response))
                attempt += 1
                continue
            return finish(call, response)

    # -- iterators over cursor pages -------------------------------------------

    async def _walk(self, fetch: Callable[[Optional[str]], Awaitable[Page]]) -> AsyncIterator[Any]:
        cursor: Optional[str] = None
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def iter_jobs(self, queue: str, state: str = "waiting", *, page_size: int = 100, **filters: Any) -> AsyncIterator[Job]:
        """Every L{Job} of ``queue`` in ``state`` (``async for``)."""
        return self._walk(lambda c: self.list_jobs(queue, state, limit=page_size, cursor=c, **filters))

    def iter_failed(self, queue: str, *, page_size: int = 100, **filters: Any) -> AsyncIterator[FailedJob]:
        """Every L{FailedJob} of ``queue`` (``async for``)."""
        return self._walk(lambda c: self.list_failed(queue, limit=page_size, cursor=c, **filters))

    def iter_completed(self, queue: str, *, page_size: int = 100, **filters: Any) -> AsyncIterator[Job]:
        """(B8) Every kept completed L{Job} of ``queue`` (``async for``)."""
        return self._walk(lambda c: self.list_completed(queue, limit=page_size, cursor=c, **filters))

    # -- batch push ---------------------------------------------------------------

    async def _push_chunk(self, category: str, chunk: Chunk, isolate: bool, keep: bool = True) -> Settled:
        out = Settled()
        pending = [chunk]
        while pending:
            current = pending.pop(0)
            try:
                answer: Any = await self._send(self._batch_call(category, current.body(), current.keyed, keep))
            except FireworqError as e:
                answer = e
            settled = settle(current, answer, isolate)
            out.stored.extend(settled.stored)
            out.failures.extend(settled.failures)
            pending.extend(settled.again)
        return out

    async def push_many(
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
        """As L{fireworq.client.Client.push_many}, with ``concurrency`` requests in flight as tasks."""
        if not 1 <= chunk_size <= MAX_BATCH:
            raise ValueError(f"chunk_size must be 1 to {MAX_BATCH}")
        tally = Tally(keep_jobs)
        total = 0
        limit = max(1, concurrency)
        running: Set["asyncio.Task[Settled]"] = set()

        def record(settled: Settled) -> None:
            stored, failed = tally.add(settled)
            if on_progress is not None:
                on_progress(stored, failed)

        try:
            for chunk in chunks(jobs, chunk_size, max_bytes):
                total = chunk.start + len(chunk.items)
                if len(running) >= limit:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        record(task.result())
                running.add(asyncio.ensure_future(self._push_chunk(category, chunk, isolate, keep_jobs)))
            for task in running:
                record(await task)
        finally:
            for task in running:
                task.cancel()
        return tally.finish(total)

    # -- live events ------------------------------------------------------------

    async def events(
        self,
        queues: Optional[Iterable[str]] = None,
        *,
        last_event_id: Optional[str] = None,
        reconnect: bool = True,
        read_timeout: float = EVENTS_READ_TIMEOUT,
    ) -> AsyncIterator[Event]:
        """(B13) As L{fireworq.client.Client.events}, with ``async for``."""
        params = events_params(queues)
        last = last_event_id
        failures = 0
        timeout = httpx.Timeout(self.timeout.connect, read=read_timeout, write=self.timeout.write, pool=self.timeout.pool)
        while True:
            headers: Dict[str, str] = {"Last-Event-ID": last} if last else {}
            error: Optional[BaseException] = None
            try:
                async with aconnect_sse(self._http, "GET", "/events", params=params, headers=headers, timeout=timeout) as source:
                    response = source.response
                    if not response.is_success:
                        await response.aread()
                        raise api_error(response.status_code, decode(response), response.headers, "GET", "/events")
                    async for sse in source.aiter_sse():
                        failures = 0
                        if sse.id:
                            last = sse.id
                        if not sse.data:
                            continue  # a frame with only "retry:" (no data) is not an event
                        yield event_of(sse)
            except httpx.TransportError as e:
                error = transport_error(Call("GET", "/events", lambda r: r), e, self.url)
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
            await asyncio.sleep(self.retry.delay(failures))
