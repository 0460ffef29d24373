"""
The asyncio client: L{AsyncClient}, over one ``httpx.AsyncClient``.  Every
API method of L{fireworq.client.calls.Endpoints} returns a coroutine here.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Optional, Set

import httpx
from httpx_sse import SSEError, aconnect_sse

from fireworq.client.base import EVENTS_READ_TIMEOUT, ClientBase, finish, request_args
from fireworq.client.batch import Chunk, Progress, Resends, Settled, Tally, check_chunk_size, chunks
from fireworq.client.call import Call
from fireworq.client.encoding import MAX_BATCH, MAX_BATCH_BYTES, events_params
from fireworq.client.errors import APIError, FireworqError
from fireworq.client.models import BatchResult, Event, FailedJob, Job, Page
from fireworq.client.sse import Resume


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
                delay = self._wait_after_error(call, attempt, e)
            else:
                delay = self._wait_after_answer(call, attempt, response)
                if delay is None:
                    return finish(call, response)
            await asyncio.sleep(delay)
            attempt += 1

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
        sends = Resends(chunk, isolate)
        for current in sends:
            try:
                answer: Any = await self._send(self._batch_call(category, current.body(), current.keyed, keep))
            except FireworqError as e:
                answer = e
            sends.answer(current, answer)
        return sends.settled

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
        check_chunk_size(chunk_size)
        tally = Tally(keep_jobs, on_progress)
        total = 0
        limit = max(1, concurrency)
        running: Set["asyncio.Task[Settled]"] = set()

        try:
            for chunk in chunks(jobs, chunk_size, max_bytes):
                total = chunk.start + len(chunk.items)
                if len(running) >= limit:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        tally.record(task.result())
                running.add(asyncio.ensure_future(self._push_chunk(category, chunk, isolate, keep_jobs)))
            for task in running:
                tally.record(await task)
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
        resume = Resume(self.url, self.retry, last_event_id, reconnect)
        timeout = self._events_timeout(read_timeout)
        while True:
            error: Optional[BaseException] = None
            try:
                async with aconnect_sse(self._http, "GET", "/events", params=params, headers=resume.headers(), timeout=timeout) as source:
                    response = source.response
                    if not response.is_success:
                        await response.aread()
                        raise resume.refusal(response)
                    async for sse in source.aiter_sse():
                        event = resume.event(sse)
                        if event is not None:
                            yield event
            except (httpx.TransportError, APIError, SSEError) as e:
                error = resume.broken(e)
            delay = resume.wait(error)
            if delay is None:
                return
            await asyncio.sleep(delay)
