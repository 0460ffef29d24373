"""
The events stream without I/O: L{event_of} turns httpx-sse's events into
the client's L{Event}; L{Resume} is one ``events()`` iteration's state
across reconnections, so both clients only open streams and wait.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

import httpx
from httpx_sse import SSEError

from fireworq.client.base import decode, transport_error
from fireworq.client.call import Call
from fireworq.client.errors import APIError, TransportError, api_error
from fireworq.client.models import Event
from fireworq.client.retry import RetryPolicy

#: The call a broken stream's transport error names.
EVENTS_CALL = Call("GET", "/events", lambda r: r)


def event_of(sse: Any) -> Event:
    """An L{Event} from an ``httpx_sse.ServerSentEvent``: data decoded from JSON when it is JSON."""
    try:
        data: Any = json.loads(sse.data) if sse.data else None
    except ValueError:
        data = sse.data
    return Event(sse.event, sse.id, data, sse.retry)


class Resume:
    """
    What one ``events()`` iteration keeps across streams: the last event
    id (sent again as ``Last-Event-ID``) and the failures in a row, and
    whether, and after how long, to open the stream again.
    """

    def __init__(self, url: str, retry: RetryPolicy, last_event_id: Optional[str], reconnect: bool) -> None:
        self.url = url
        self.retry = retry
        self.last = last_event_id
        self.reconnect = reconnect
        self.failures = 0

    def headers(self) -> Dict[str, str]:
        """The headers of the next stream's request."""
        return {"Last-Event-ID": self.last} if self.last else {}

    def refusal(self, response: httpx.Response) -> APIError:
        """The error of a stream the server refused (its body already read)."""
        return api_error(response.status_code, decode(response), response.headers, "GET", "/events")

    def event(self, sse: Any) -> Optional[Event]:
        """The L{Event} of a frame, or None for a frame with no data (only ``retry:``)."""
        self.failures = 0
        if sse.id:
            self.last = sse.id
        if not sse.data:
            return None
        return event_of(sse)

    def broken(self, error: BaseException) -> BaseException:
        """
        The error a stream broke with (an httpx transport error, an
        L{APIError}, an ``SSEError``) as the one to reconnect after; raises
        what ends the iteration at once (a refusal other than 503, a
        malformed stream).
        """
        if isinstance(error, httpx.TransportError):
            return transport_error(EVENTS_CALL, error, self.url)
        if isinstance(error, SSEError):
            raise TransportError(f"GET {self.url}/events: {error}") from error
        if isinstance(error, APIError) and error.status == 503:
            return error
        raise error

    def wait(self, error: Optional[BaseException]) -> Optional[float]:
        """
        Seconds to wait before opening the stream again after it ended
        (with ``error``, or cleanly); None when the iteration ends; raises
        the error when no reconnection is left.
        """
        if not self.reconnect:
            if error is not None:
                raise error
            return None
        self.failures += 1
        if not self.retry.may_retry(self.failures):
            raise error if error is not None else TransportError(f"GET {self.url}/events: the stream keeps ending")
        return self.retry.delay(self.failures)
