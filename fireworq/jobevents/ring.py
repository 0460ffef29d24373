"""The window of recent events that a live-events client resumes from (``Last-Event-ID``)."""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque, List, Optional, Tuple

from fireworq.jobevents.model import JobEvent

#: Events kept for resuming.
RING_SIZE = 1000
#: Bytes of encoded events kept for resuming (fewer events are kept when
#: they are large, so a window of big payloads cannot take much memory).
RING_BYTES = 4 << 20


class EventRing:
    """
    The last L{capacity} events of this node (at most L{max_bytes} of them,
    counted by their encoded size), oldest first, each with its encoded
    frame: memory stays flat however many events pass.
    """

    def __init__(
        self,
        boot: str,
        capacity: int = RING_SIZE,
        max_bytes: int = RING_BYTES,
        encode: Callable[[JobEvent], bytes] = lambda event: event.json().encode("utf-8"),
    ) -> None:
        self.boot = boot
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.encode = encode
        self.size = 0
        self._events: Deque[Tuple[JobEvent, bytes]] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: JobEvent, frame: Optional[bytes] = None) -> bytes:
        """Keep ``event`` (the oldest drop out past the bounds); return its frame."""
        if frame is None:
            frame = self.encode(event)
        self._events.append((event, frame))
        self.size += len(frame)
        while len(self._events) > self.capacity or (self.size > self.max_bytes and len(self._events) > 1):
            _, old = self._events.popleft()
            self.size -= len(old)
        return frame

    def since(self, last_id: str) -> Optional[List[Tuple[JobEvent, bytes]]]:
        """
        The events (with their frames) after the one with id ``last_id``,
        oldest first; None when that id is not within the window (unknown,
        of another run or node, or too old), so the client cannot resume
        without a gap.
        """
        boot, _, number = last_id.strip().rpartition("-")
        if boot != self.boot or not number.isdigit():
            return None
        seq = int(number)
        if not self._events:
            return None
        first, last = self._events[0][0].seq, self._events[-1][0].seq
        if seq > last or seq < first - 1:
            return None
        # Sequence numbers in the window are consecutive.
        start = seq - first + 1
        return [self._events[i] for i in range(start, len(self._events))]
