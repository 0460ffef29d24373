"""
The client's live events against a real server:
``events()`` over the real ``GET /events`` stream (sync and asyncio):
    the job events of a job pushed while listening, the ``stats`` events,
    a resume after an event id (``Last-Event-ID``), and a bad queue filter
    refused with 400.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from fireworq.client import AsyncClient, BadRequest, Client
from tests.support.client_cases import ClientServerCase, in_thread
from tests.support.polling import wait_until


class Listener:
    """Reads ``client.events(...)`` in a thread into ``events`` until ``stop`` or a deadline."""

    def __init__(self, client: Client, deadline: float = 60.0, **kwargs: Any) -> None:
        self.events: List[Any] = []
        self.stop = threading.Event()
        self.client = client
        self.kwargs = kwargs
        self.deadline = time.monotonic() + deadline

    def run(self) -> List[Any]:
        for event in self.client.events(**self.kwargs):
            self.events.append(event)
            if self.stop.is_set() or time.monotonic() > self.deadline:
                break
        return self.events

    def of_job(self, job_id: int) -> List[str]:
        return [e.type for e in self.events if e.type.startswith("job.") and e.data["job"]["id"] == job_id]


class EventTests(ClientServerCase):
    """``events()`` over the server's real stream."""

    @inlineCallbacks
    def test_job_events_and_resume(self) -> Any:
        listener = Listener(self.client, queues=["default"])
        self.addCleanup(listener.stop.set)
        reading = in_thread(listener.run)
        # The stream starts with the stats of each queue: then it listens.
        yield wait_until(lambda: any(e.type == "stats" for e in listener.events), 30, 0.05, "the first stats event")
        stats = next(e for e in listener.events if e.type == "stats")
        self.assertEqual(stats.data["queue"], "default")
        self.assertIn("total_pushes", stats.data)
        job = yield in_thread(self.client.push, "watched", self.worker.url("/success"), {"n": 1})
        yield wait_until(lambda: "job.completed" in listener.of_job(job.id), 30, 0.05,
                         lambda: f"job.completed of {job.id}: {listener.of_job(job.id)}")
        listener.stop.set()
        yield reading
        self.assertEqual(listener.of_job(job.id), ["job.pushed", "job.completed"])
        self.assertEqual({e.type for e in listener.events} - {"stats", "job.pushed", "job.completed"}, set(),
                         "the stream's retry: frame is not an event")
        pushed = next(e for e in listener.events if e.type == "job.pushed")
        self.assertEqual((pushed.data["queue"], pushed.data["job"]["category"]), ("default", "watched"))
        self.assertEqual(pushed.data["id"], pushed.id)

        # Resuming after the push event gives the events that followed it first.
        def resumed() -> Any:
            for event in self.client.events(last_event_id=pushed.id, reconnect=False):
                if event.type.startswith("job."):
                    return event

        after = yield in_thread(resumed)
        self.assertEqual((after.type, after.data["job"]["id"]), ("job.completed", job.id))

        error = yield self.assertFailure(in_thread(lambda: next(iter(self.client.events(queues=["a/b"])))), BadRequest)
        self.assertIn("queue", error.message)

    @inlineCallbacks
    def test_async_events(self) -> Any:
        base, url = self.server.url(""), self.worker.url("/success")

        async def scenario() -> Any:
            async with AsyncClient(base) as client:
                types: List[str] = []
                job = None
                async for event in client.events():
                    if event.type == "stats" and job is None:
                        job = await client.push("async", url)
                    elif event.type.startswith("job.") and job is not None and event.data["job"]["id"] == job.id:
                        types.append(event.type)
                        if event.type == "job.completed":
                            return types

        types = yield in_thread(lambda: asyncio.run(asyncio.wait_for(scenario(), 60)))
        self.assertEqual(types, ["job.pushed", "job.completed"])
