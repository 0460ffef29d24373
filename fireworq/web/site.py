"""
L{FireworqSite}, the HTTP server side of the API: it makes a
L{fireworq.web.channel.FireworqChannel} (limits, framing checks, deadlines)
for each connection and a L{fireworq.web.request.FireworqRequest} (body
limit, keep-alive, URL checks, cross-origin guard) for each request, caps
open connections (one more gets
L{fireworq.web.connection_cap.TooManyConnections}) and writes the access
log.

The API speaks HTTP/1.1 only: on a TLS bind, ALPN offers ``http/1.1`` and
never ``h2`` (see L{FireworqSite.acceptableProtocols}).
"""

from __future__ import annotations

from typing import Any, List, Optional

from twisted.logger import Logger
from twisted.web.server import Site

from fireworq.logging import AccessLog
from fireworq.web.channel import FireworqChannel
from fireworq.web.connection_cap import TooManyConnections
from fireworq.web.request import FireworqRequest


class FireworqSite(Site):
    """
    The API site: JSON access log, body limit, keep-alive setting, request
    deadlines and a cap on open connections.
    """

    requestFactory = FireworqRequest
    noisy = False
    _log = Logger()
    #: Whether connections are being refused (logged once per episode).
    _at_cap = False

    def __init__(
        self,
        resource: Any,
        access_log: Optional[AccessLog],
        max_request_body: int,
        keep_alive: bool,
        header_timeout: Optional[float] = 10,
        body_timeout: Optional[float] = 60,
        max_connections: int = 1000,
        **kwargs: Any,
    ) -> None:
        """
        @param header_timeout: seconds a request's line and headers may take
            to arrive from its first byte (408 beyond); None or 0: no limit.
        @param body_timeout: seconds a request's body may take to arrive
            after its headers (408 beyond); None or 0: no limit.
        @param max_connections: connections open at once; one more is
            answered 503 and closed.  0: no limit.
        """
        # The API takes JSON only: never parse bodies as HTML form submissions
        # (which also spares parsing Content-Type on every push).
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(resource, **kwargs)
        self.access_log = access_log
        self.max_request_body = max_request_body
        self.keep_alive = keep_alive
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.open_connections = 0

    def protocol(self) -> FireworqChannel:  # type: ignore[override]
        """
        A channel for one connection.  (Twisted's default wraps an
        L{HTTPChannel} in a proxy that can switch to HTTP/2 after TLS
        negotiation; the API speaks HTTP/1.1 only.)
        """
        return FireworqChannel()

    def acceptableProtocols(self) -> List[bytes]:
        """
        The protocols a TLS bind offers over ALPN: ``http/1.1`` only.
        Twisted's L{Site} also offers ``h2`` whenever the ``h2`` package can
        be imported, but L{protocol} makes an HTTP/1.1 channel for every
        connection, so a client that took ``h2`` would get an answer it
        cannot read; Twisted's HTTP/2 connection would not have this
        channel's limits, deadlines, JSON errors or connection count either.
        """
        return [b"http/1.1"]

    def buildProtocol(self, addr: Any) -> Any:
        if self.max_connections and self.open_connections >= self.max_connections:
            if not self._at_cap:
                self._at_cap = True
                self._log.warn(
                    "{open} API connections are open, the max_connections limit: new connections "
                    "are answered 503 until some close",
                    open=self.open_connections,
                )
            return TooManyConnections(self.max_connections, self.reactor.callLater, self.log)
        return super().buildProtocol(addr)

    def connection_opened(self) -> None:
        """A channel of this site connected."""
        self.open_connections += 1

    def connection_closed(self) -> None:
        """A channel of this site disconnected."""
        self.open_connections -= 1
        if self._at_cap and self.open_connections < self.max_connections:
            self._at_cap = False
            self._log.info("API connections are below the max_connections limit again")

    def log(self, request: Any) -> None:
        if self.access_log is not None:
            self.access_log.request(request)
