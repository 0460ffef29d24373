"""
L{TooManyConnections}: what a connection over the site's C{max_connections}
cap gets instead of a channel (L{fireworq.web.site.FireworqSite.buildProtocol}
decides; the site counts open connections).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet.protocol import Protocol

from fireworq.web.access_log import RefusedRequest
from fireworq.web.errors import error_body
from fireworq.web.refusals import raw_answer


class TooManyConnections(Protocol):
    """
    A connection over the site's cap: answered 503 with ``Retry-After: 1`` at
    once, without reading the request, then closed (the client's request
    is read and dropped for up to a second so that it sees the answer, not
    a reset).
    """

    def __init__(
        self, limit: int, callLater: Callable[..., Any], log: Optional[Callable[[Any], None]] = None
    ) -> None:
        """
        @param log: called with the L{RefusedRequest} of the answer (for the
            access log).
        """
        self._limit = limit
        self._callLater = callLater
        self._log = log
        self._abort: Any = None

    def connectionMade(self) -> None:
        body = error_body(
            503,
            f"the server has {self._limit} connections open, its limit (setting "
            "max_connections); retry later",
        )
        self.transport.write(raw_answer(503, body, ((b"Retry-After", b"1"),)))
        if self._log is not None:
            self._log(RefusedRequest(b"", b"", b"", 503, len(body), None, self.transport.getPeer()))
        # Half-close: the client reads the answer, then closes its side.
        getattr(self.transport, "loseWriteConnection", self.transport.loseConnection)()
        self._abort = self._callLater(1.0, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        """The request is not read."""

    def connectionLost(self, reason: Any) -> None:
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
