"""
Unit tests of the job events (fireworq/jobevents/): the recorder (nothing
made while unheard, event types and order, a failure that was an expiry),
the resume window, and the per-client bound of the live stream with a fake
transport that applies flow control like a TCP transport.
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq.jobevents.model import JobEvent
from fireworq.jobevents.recorder import EventRecorder
from fireworq.jobevents.ring import EventRing
from fireworq.jobevents.stream import EventHub, EventStream, StreamMetrics, event_frame
from fireworq.model import Completion, CompletionKind, Job, Result


def job(job_id: int = 1, **fields: Any) -> Job:
    values = dict(
        id=job_id, category="c", url="http://w/", payload='{"n":1}', status="grabbed",
        created_at=1_000, next_try=1_000, timeout=0, fail_count=0, retry_count=2, retry_delay=1,
    )
    values.update(fields)
    return Job(**values)


class Collect:
    """A listener that keeps what it is told."""

    def __init__(self) -> None:
        self.events: List[JobEvent] = []

    def job_event(self, event: JobEvent) -> None:
        self.events.append(event)


class RecorderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.recorder = EventRecorder(self.clock, boot="b")

    def test_nothing_made_while_unheard(self) -> None:
        """No listener: no event is built (the sequence does not move) and no call is scheduled."""
        self.recorder.pushed("q", [job()])
        self.recorder.finished("q", Completion(job(), CompletionKind.FAIL, Result("failure", 500)), 0.1)
        self.recorder.expired("q", [job()])
        self.assertEqual(self.recorder.seq, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lifecycle_types_and_bodies(self) -> None:
        heard = Collect()
        self.recorder.add_listener(heard)
        self.recorder.pushed("q", [job(status="claimed")])
        self.recorder.finished("q", Completion(job(), CompletionKind.RETRY, Result("failure", 500, "no")), 0.25)
        self.recorder.finished("q", Completion(job(), CompletionKind.SUCCESS, Result("success", 200, "ok")), 0.5)
        self.recorder.canceled("q", [job(2, status="claimed")])
        self.assertEqual(
            [(e.type, e.id, e.job_id) for e in heard.events],
            [("job.pushed", "b-1", 1), ("job.retried", "b-2", 1), ("job.completed", "b-3", 1), ("job.canceled", "b-4", 2)],
        )
        retried = heard.events[1].job
        self.assertEqual((retried["fail_count"], retried["status"], retried["result"]["status"]), (1, "claimed", "failure"))
        self.assertEqual(retried["result"]["elapsed"], 250)
        done = heard.events[2].job
        self.assertEqual((done["state"], done["result"]["code"], done["result"]["elapsed"]), ("completed", 200, 500))
        self.assertEqual(heard.events[3].job["state"], "canceled")
        body = heard.events[0].body()
        self.assertEqual(sorted(body), ["id", "job", "queue", "time", "type"])
        self.assertEqual(body["job"]["payload"], {"n": 1})

    def test_failure_then_expiry_is_one_expired_event(self) -> None:
        heard = Collect()
        self.recorder.add_listener(heard)
        self.recorder.finished("q", Completion(job(), CompletionKind.FAIL, Result("failure", 500)), 0.1)
        self.assertEqual(heard.events, [])  # held to the end of the turn
        self.recorder.expired("q", [job()])
        self.assertEqual([e.type for e in heard.events], ["job.expired"])
        self.assertEqual(heard.events[0].job["state"], "expired")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_held_failure_goes_out_at_the_end_of_the_turn_and_before_the_next_event(self) -> None:
        heard = Collect()
        self.recorder.add_listener(heard)
        self.recorder.finished("q", Completion(job(1), CompletionKind.FAIL, Result("failure", 500)), 0.1)
        self.recorder.pushed("q", [job(2)])
        self.assertEqual([(e.type, e.job_id) for e in heard.events], [("job.failed", 1), ("job.pushed", 2)])
        self.recorder.finished("q", Completion(job(3), CompletionKind.FAIL, Result("failure", 500)), 0.1)
        self.clock.advance(0)
        self.assertEqual([e.type for e in heard.events][-1], "job.failed")
        self.assertEqual([e.seq for e in heard.events], [1, 2, 3])


def event(seq: int, queue: str = "q", size: int = 0) -> JobEvent:
    return JobEvent("job.pushed", f"b-{seq}", 0, queue, {"id": seq, "pad": "x" * size}, seq)


class RingTests(SynchronousTestCase):
    def test_resume_within_the_window(self) -> None:
        ring = EventRing("b", capacity=3)
        for seq in range(1, 6):
            ring.add(event(seq))
        self.assertEqual(len(ring), 3)
        self.assertEqual([e.seq for e, _ in ring.since("b-3")], [4, 5])
        self.assertEqual([e.seq for e, _ in ring.since("b-2")], [3, 4, 5])  # right before the window
        self.assertEqual(ring.since("b-5"), [])
        self.assertIsNone(ring.since("b-1"))  # too old: a gap
        self.assertIsNone(ring.since("b-9"))  # not yet made
        self.assertIsNone(ring.since("other-4"))  # another run or node
        self.assertIsNone(ring.since("nonsense"))

    def test_bounded_by_bytes(self) -> None:
        ring = EventRing("b", capacity=1000, max_bytes=10_000)
        for seq in range(1, 101):
            ring.add(event(seq, size=1000))
        self.assertLessEqual(ring.size, 10_000)
        self.assertLess(len(ring), 11)
        self.assertEqual(ring.size, sum(len(f) for _, f in ring.since(f"b-{100 - len(ring)}")))


class FakeTransport:
    """Buffers what is written; past ``limit`` bytes it pauses its producer, like a TCP transport."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.buffer = b""
        self.producer: Any = None
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > self.limit and self.producer is not None:
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        data, self.buffer = self.buffer, b""
        if self.producer is not None:
            self.producer.resumeProducing()
        return data

    def abortConnection(self) -> None:
        self.aborted = True


class FakeChannel:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport


class FakeRequest:
    """The parts of a Twisted request the hub uses."""

    def __init__(self, transport: Optional[FakeTransport] = None) -> None:
        self.transport = transport or FakeTransport()
        self.channel = FakeChannel(self.transport)
        self.headers: dict = {}
        self.finished: Deferred = Deferred()

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.transport.producer = producer

    def unregisterProducer(self) -> None:
        self.transport.producer = None

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def notifyFinish(self) -> Deferred:
        return self.finished


class StreamBoundTests(SynchronousTestCase):
    def test_paused_stream_queues_and_resumes(self) -> None:
        transport = FakeTransport(limit=10)
        request = FakeRequest(transport)
        closed: List[bool] = []
        stream = EventStream(request, None, lambda q: True, lambda s, dropped: closed.append(dropped), 5, 10_000)
        request.registerProducer(stream, True)
        stream.send(b"a" * 20)  # over the transport's limit: it pauses us
        self.assertTrue(stream.paused)
        for _ in range(3):
            stream.send(b"b")
        self.assertEqual(stream.behind, 3)
        self.assertEqual(transport.drain(), b"a" * 20)
        self.assertEqual(transport.buffer, b"bbb")
        self.assertEqual(stream.behind, 0)
        self.assertEqual(closed, [])

    def test_dropped_past_the_event_bound(self) -> None:
        transport = FakeTransport(limit=0)
        request = FakeRequest(transport)
        closed: List[bool] = []
        stream = EventStream(request, None, lambda q: True, lambda s, dropped: closed.append(dropped), 5, 10_000)
        request.registerProducer(stream, True)
        for _ in range(6):
            stream.send(b"x")
        self.assertFalse(transport.aborted)
        stream.send(b"x")  # the sixth behind
        self.assertTrue(transport.aborted)
        self.assertEqual(closed, [True])
        self.assertEqual(stream.behind, 0)  # its queue freed
        stream.send(b"more")
        self.assertEqual(stream.behind, 0)

    def test_dropped_past_the_byte_bound(self) -> None:
        transport = FakeTransport(limit=0)
        request = FakeRequest(transport)
        stream = EventStream(request, None, lambda q: True, lambda s, d: None, 1000, 100)
        request.registerProducer(stream, True)
        stream.send(b"x")
        stream.send(b"y" * 60)
        self.assertFalse(transport.aborted)
        stream.send(b"z" * 60)
        self.assertTrue(transport.aborted)
        self.assertTrue(stream.dropped)


class HubTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.recorder = EventRecorder(self.clock, boot="b")
        self.stats = {"q": {"total_pushes": 0}, "other": {"total_pushes": 0}}
        self.metrics = StreamMetrics(None)
        self.hub = EventHub(self.recorder, self.clock, lambda: self.stats, self.metrics, max_behind=3, linger=60)

    def test_listens_only_while_clients_are_there(self) -> None:
        self.assertFalse(self.recorder.listening)
        request = FakeRequest(FakeTransport(limit=10**9))
        stream = self.hub.open(request, queues=["q"])
        self.assertTrue(self.recorder.listening)
        self.assertEqual(request.headers[b"content-type"], b"text/event-stream; charset=utf-8")
        self.recorder.pushed("q", [job(1)])
        self.recorder.pushed("other", [job(2)])
        data = request.transport.buffer
        self.assertIn(b"event: stats\ndata: {\"queue\":\"q\"", data)
        self.assertNotIn(b'"queue":"other"', data)
        self.assertIn(b"event: job.pushed\nid: b-1\n", data)
        self.assertNotIn(b"id: b-2", data)
        self.clock.advance(2)
        self.assertEqual(request.transport.buffer.count(b"event: stats"), 2)
        self.clock.advance(13)
        self.assertIn(b": keep-alive\n\n", request.transport.buffer)
        request.finished.callback(None)  # the client left
        self.assertTrue(stream.done.called)
        self.assertTrue(self.recorder.listening)  # lingers for a reconnect
        self.clock.advance(60)
        self.assertFalse(self.recorder.listening)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resume_and_slow_client_dropped(self) -> None:
        first = FakeRequest(FakeTransport(limit=10**9))
        self.hub.open(first)
        self.recorder.pushed("q", [job(1), job(2), job(3)])
        second = FakeRequest(FakeTransport(limit=10**9))
        self.hub.open(second, last_event_id="b-1")
        self.assertIn(b"id: b-2\n", second.transport.buffer)
        self.assertIn(b"id: b-3\n", second.transport.buffer)
        self.assertNotIn(b"id: b-1\n", second.transport.buffer)
        # A client whose transport stops taking data: dropped past 3 frames behind.
        stalled = FakeRequest(FakeTransport(limit=0))
        self.hub.open(stalled)
        self.assertEqual(self.metrics.clients._value.get(), 3)
        self.recorder.pushed("q", [job(n) for n in range(10, 14)])
        self.assertTrue(stalled.transport.aborted)
        self.assertEqual(self.hub.dropped, 1)
        self.assertEqual(self.metrics.dropped_total._value.get(), 1)
        self.assertEqual(self.metrics.clients._value.get(), 2)
        self.assertIn(b"id: b-7\n", first.transport.buffer)

    def test_stream_ends_when_no_longer_valid(self) -> None:
        """A stream whose token was revoked ends at the next stats round."""
        allowed = [True]
        request = FakeRequest(FakeTransport(limit=10**9))
        stream = self.hub.open(request, valid=lambda: allowed[0])
        self.clock.advance(2)
        self.assertFalse(stream.done.called)
        allowed[0] = False
        self.clock.advance(2)
        self.assertTrue(stream.done.called)
        self.assertIn(b": the token of this stream is no longer valid\n\n", request.transport.buffer)
        self.assertEqual(self.hub.clients, [])
        self.assertEqual(self.hub.dropped, 0)

    def test_frame_format(self) -> None:
        frame = event_frame(event(7))
        self.assertTrue(frame.startswith(b"event: job.pushed\nid: b-7\ndata: {"))
        self.assertTrue(frame.endswith(b"}\n\n"))
        self.assertEqual(frame.count(b"\n"), 4)
