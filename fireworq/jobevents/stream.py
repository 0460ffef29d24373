"""
Live events over Server-Sent Events: the L{EventHub} of this node and one
L{EventStream} per connected client.

Memory is bounded per client: a stream writes to its connection while the
connection takes data; once the transport says it has too much buffered
(it calls L{EventStream.pauseProducing}, Twisted's producer/consumer flow
control), the stream queues frames, and a client more than L{MAX_BEHIND}
frames or L{MAX_BEHIND_BYTES} bytes behind is disconnected (its connection
aborted, so the transport's own buffer goes too) and counted.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Set

from prometheus_client import CollectorRegistry, Counter, Gauge
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from fireworq.jobevents.model import IJobEventListener, JobEvent
from fireworq.jobevents.recorder import EventRecorder
from fireworq.jobevents.ring import RING_BYTES, RING_SIZE, EventRing
from fireworq.timers import Periodic

#: Frames a client may be behind before it is disconnected.
MAX_BEHIND = 1000
#: Bytes a client may be behind before it is disconnected.
MAX_BEHIND_BYTES = 1 << 20
#: Seconds between two ``stats`` events.
STATS_INTERVAL = 2.0
#: Seconds between two comment lines that keep an idle stream alive.
HEARTBEAT_INTERVAL = 15.0
#: Seconds the hub keeps recording after its last client left, so that a
#: client reconnecting within them resumes without a gap.
LINGER = 60.0
#: Milliseconds an EventSource waits before it reconnects (sent at start).
RETRY_MS = 3000

HEARTBEAT = b": keep-alive\n\n"


def event_frame(event: JobEvent) -> bytes:
    """One job event as a Server-Sent Events frame."""
    return b"event: %s\nid: %s\ndata: %s\n\n" % (
        event.type.encode("ascii"),
        event.id.encode("ascii"),
        event.json().encode("utf-8"),
    )


def stats_frame(queue: str, stats: Dict[str, Any]) -> bytes:
    """The ``stats`` frame of one queue: C{{"queue", ...the queue's stats fields}}."""
    data = {"queue": queue}
    data.update(stats)
    return b"event: stats\ndata: %s\n\n" % json.dumps(data, separators=(",", ":")).encode("utf-8")


def comment_frame(text: str) -> bytes:
    """A comment line (ignored by clients)."""
    return b": %s\n\n" % text.replace("\n", " ").encode("utf-8")


class StreamMetrics:
    """
    ``fireworq_events_clients`` (connected live-event clients) and
    ``fireworq_events_clients_dropped_total`` (clients disconnected for
    falling behind), in the server's registry.
    """

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        self.clients = Gauge("fireworq_events_clients", "Clients connected to GET /events on this node.", registry=registry)
        self.dropped_total = Counter(
            "fireworq_events_clients_dropped",
            "Clients of GET /events disconnected because they fell more than 1,000 events or 1 MiB behind.",
            registry=registry,
        )


@implementer(IPushProducer)
class EventStream:
    """
    One client's stream: frames are written at once while its connection
    takes them, queued while the transport has paused us, and the client is
    dropped when the queue passes either bound.

    @ivar request: the C{text/event-stream} request (C{write}, C{finish},
        C{transport}).
    @ivar queues: the queue names asked for (None: every queue).
    @ivar sees: whether the client's token may see a queue.
    """

    _log = Logger()

    def __init__(
        self,
        request: Any,
        queues: Optional[Set[str]],
        sees: Callable[[str], bool],
        on_close: Callable[["EventStream", bool], None],
        max_behind: int = MAX_BEHIND,
        max_behind_bytes: int = MAX_BEHIND_BYTES,
        valid: Callable[[], bool] = lambda: True,
    ) -> None:
        self.request = request
        #: Whether the client may still stream (its token not revoked).
        self.valid = valid
        self.queues = queues
        self.sees = sees
        self._on_close = on_close
        self.max_behind = max_behind
        self.max_behind_bytes = max_behind_bytes
        self.paused = False
        self.closed = False
        self.dropped = False
        self._queued: Deque[bytes] = deque()
        self.queued_bytes = 0
        #: Fires (with None) once the stream has ended.
        self.done: Deferred = Deferred()

    @property
    def behind(self) -> int:
        """Frames queued and not yet written."""
        return len(self._queued)

    def wants(self, queue: str) -> bool:
        """Whether the client is to see events of ``queue``."""
        return (self.queues is None or queue in self.queues) and self.sees(queue)

    def send(self, frame: bytes) -> None:
        """Write ``frame`` now, or queue it while paused (dropping the client past the bounds)."""
        if self.closed:
            return
        if self.paused or self._queued:
            self._queued.append(frame)
            self.queued_bytes += len(frame)
            if len(self._queued) > self.max_behind or self.queued_bytes > self.max_behind_bytes:
                self.drop()
            return
        self.request.write(frame)

    def drop(self) -> None:
        """Disconnect a client that fell too far behind (its buffers freed at once)."""
        if self.closed:
            return
        self.dropped = True
        self._log.info(
            "Live events: a client fell {frames} events / {size} bytes behind and is disconnected",
            frames=len(self._queued),
            size=self.queued_bytes,
        )
        self._clear()
        self._close(dropped=True)
        transport = getattr(getattr(self.request, "channel", None), "transport", None) or getattr(
            self.request, "transport", None
        )
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        elif transport is not None:
            transport.loseConnection()

    def _clear(self) -> None:
        self._queued.clear()
        self.queued_bytes = 0

    def _close(self, dropped: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._on_close(self, dropped)
        self.done.callback(None)

    def lost(self) -> None:
        """The connection closed (the client left, or we dropped it)."""
        self._clear()
        self._close()

    # -- IPushProducer -------------------------------------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self._queued and not self.paused and not self.closed:
            frame = self._queued.popleft()
            self.queued_bytes -= len(frame)
            self.request.write(frame)

    def stopProducing(self) -> None:
        self.lost()


@implementer(IJobEventListener)
class EventHub:
    """
    This node's live events: subscribes to the L{EventRecorder} while it has
    clients (and L{LINGER} seconds after the last left), keeps the last
    L{RING_SIZE} events (at most L{RING_BYTES}) for C{Last-Event-ID}, and sends every client the
    events of its queues, a C{stats} event per queue every
    L{STATS_INTERVAL} seconds and a comment every L{HEARTBEAT_INTERVAL}.

    @ivar stats: the stats of every defined queue (name -> the fields of
        C{/queues/stats}).
    """

    _log = Logger()

    def __init__(
        self,
        recorder: EventRecorder,
        clock: IReactorTime,
        stats: Callable[[], Dict[str, Dict[str, Any]]],
        metrics: Optional[StreamMetrics] = None,
        ring_size: int = RING_SIZE,
        ring_bytes: int = RING_BYTES,
        max_behind: int = MAX_BEHIND,
        max_behind_bytes: int = MAX_BEHIND_BYTES,
        stats_interval: float = STATS_INTERVAL,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        linger: float = LINGER,
    ) -> None:
        self.recorder = recorder
        self.clock = clock
        self.stats = stats
        self.metrics = metrics
        self.ring = EventRing(recorder.boot, ring_size, ring_bytes, event_frame)
        self.max_behind = max_behind
        self.max_behind_bytes = max_behind_bytes
        self.stats_interval = stats_interval
        self.heartbeat_interval = heartbeat_interval
        self.linger = linger
        self.clients: List[EventStream] = []
        self.dropped = 0
        self._subscribed = False
        self._unsubscribe_call: Optional[IDelayedCall] = None
        self._stats_loop: Optional[Periodic] = None
        self._heartbeat_loop: Optional[Periodic] = None

    # -- clients -------------------------------------------------------------------

    def open(
        self,
        request: Any,
        queues: Optional[Iterable[str]] = None,
        sees: Callable[[str], bool] = lambda queue: True,
        last_event_id: Optional[str] = None,
        valid: Callable[[], bool] = lambda: True,
    ) -> EventStream:
        """
        Start streaming to ``request`` (its headers are set here): the
        events after ``last_event_id`` when still in the window, then live
        events and stats.  ``valid`` is asked before every stats round: once
        it says no (the client's token was revoked), the stream ends.
        """
        wanted = set(queues) if queues else None
        stream = EventStream(request, wanted, sees, self._closed, self.max_behind, self.max_behind_bytes, valid)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache, no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.registerProducer(stream, True)
        self.clients.append(stream)
        if self.metrics is not None:
            self.metrics.clients.set(len(self.clients))
        self._subscribe()
        stream.send(b"retry: %d\n\n" % RETRY_MS)
        if last_event_id is not None:
            missed = self.ring.since(last_event_id)
            if missed is None:
                # (The id is the client's text: not echoed into the stream.)
                stream.send(comment_frame(
                    f"cannot resume after the Last-Event-ID given: it is not within the last "
                    f"{self.ring.capacity} events of this node"
                ))
            else:
                for event, frame in missed:
                    if stream.wants(event.queue):
                        stream.send(frame)
        self._send_stats([stream])
        self._start_loops()
        request.notifyFinish().addBoth(lambda _: stream.lost())
        return stream

    def _closed(self, stream: EventStream, dropped: bool) -> None:
        if stream in self.clients:
            self.clients.remove(stream)
        if dropped:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.dropped_total.inc()
        if self.metrics is not None:
            self.metrics.clients.set(len(self.clients))
        try:
            stream.request.unregisterProducer()
        except Exception:
            pass
        if not self.clients:
            self._stop_loops()
            if self._subscribed and self._unsubscribe_call is None:
                self._unsubscribe_call = self.clock.callLater(self.linger, self._unsubscribe)

    # -- the recorder ------------------------------------------------------------

    def _subscribe(self) -> None:
        if self._unsubscribe_call is not None:
            if self._unsubscribe_call.active():
                self._unsubscribe_call.cancel()
            self._unsubscribe_call = None
        if not self._subscribed:
            # Events made while nobody listened are missing: resuming from
            # before them would hide the gap.
            self.ring = EventRing(self.recorder.boot, self.ring.capacity, self.ring.max_bytes, event_frame)
            self.recorder.add_listener(self)
            self._subscribed = True

    def _unsubscribe(self) -> None:
        self._unsubscribe_call = None
        if self.clients or not self._subscribed:
            return
        self.recorder.remove_listener(self)
        self._subscribed = False

    def stop(self) -> None:
        """Close every stream and stop listening (the server stops)."""
        for stream in list(self.clients):
            # Closing unregisters the producer; then the route's answer finishes the request.
            stream.lost()
        if self._unsubscribe_call is not None and self._unsubscribe_call.active():
            self._unsubscribe_call.cancel()
        self._unsubscribe_call = None
        if self._subscribed:
            self.recorder.remove_listener(self)
            self._subscribed = False

    def job_event(self, event: JobEvent) -> None:
        """Keep ``event`` for resuming and send it to the clients that want it."""
        frame = self.ring.add(event)
        for stream in list(self.clients):
            if stream.wants(event.queue):
                stream.send(frame)

    # -- stats and heartbeats ------------------------------------------------------

    def _start_loops(self) -> None:
        if self._stats_loop is None:
            self._stats_loop = Periodic(
                self.stats_interval, self._send_stats, clock=self.clock, now=False, name="event stream stats"
            )
            self._stats_loop.startService()
        if self._heartbeat_loop is None:
            self._heartbeat_loop = Periodic(
                self.heartbeat_interval, self._heartbeat, clock=self.clock, now=False,
                name="event stream heartbeats",
            )
            self._heartbeat_loop.startService()

    def _stop_loops(self) -> None:
        for loop in (self._stats_loop, self._heartbeat_loop):
            if loop is not None and loop.running:
                loop.stopService()
        self._stats_loop = self._heartbeat_loop = None

    def _send_stats(self, streams: Optional[List[EventStream]] = None) -> None:
        targets = list(self.clients) if streams is None else streams
        for stream in list(targets):
            if not stream.valid():
                # Its token was revoked: end the response.
                targets.remove(stream)
                stream.send(comment_frame("the token of this stream is no longer valid"))
                stream.lost()
        if not targets:
            return
        try:
            every = self.stats()
        except Exception:
            self._log.failure("Live events: cannot read the queue stats")
            return
        frames = {name: stats_frame(name, value) for name, value in every.items()}
        for stream in targets:
            for name, frame in frames.items():
                if stream.wants(name):
                    stream.send(frame)

    def _heartbeat(self) -> None:
        for stream in list(self.clients):
            stream.send(HEARTBEAT)
