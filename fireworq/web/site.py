"""
The HTTP server side of the API: a L{Request} that enforces the body size
limit and keep-alive setting, an L{HTTPChannel} that answers every request
it cannot parse with a JSON error and bounds how long a request may take to
arrive, and a L{Site} that caps open connections and writes the access log.

Twisted's HTTP/1.1 parser (L{HTTPChannel}) answers a malformed request with
a bare ``400`` and no body, and drops a connection whose request line or a
header line is longer than its line limit without any answer.
It also waits forever (until a deadline) for a line that a client ended
with a bare LF.  L{FireworqChannel} changes that through the parser's hooks,
and writes an access-log line for every answer it sends itself; the only
private names of Twisted it relies on are listed in L{TWISTED_PRIVATE_API}
(and are checked by the canary tests in ``tests/test_limits.py``), so a
Twisted upgrade that changes them fails those tests rather than going
unnoticed.

The API speaks HTTP/1.1 only: on a TLS bind, ALPN offers ``http/1.1`` and
never ``h2`` (see L{FireworqSite.acceptableProtocols}).
"""

from __future__ import annotations

import io
import re
import time
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

import attr
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from fireworq.logging import AccessLog
from fireworq.web.errors import error_body, phrase

#: The private parts of Twisted's L{HTTPChannel} that L{FireworqChannel}
#: relies on, all on the cold path of a request Twisted refuses: the method
#: it calls for every request it cannot parse (which writes a bare 400), its
#: counters of header bytes and fields (to tell 431 from 400), the header
#: line it is parsing and whether the request line was parsed (to say what
#: is wrong), the request line's parts (for the access log), and the bytes
#: its line parser and its chunked-body decoder hold while they wait for a
#: CR LF (to refuse a bare LF at once).  The canary tests in
#: tests/test_limits.py check each.
TWISTED_PRIVATE_API = (
    "HTTPChannel._respondToBadRequestAndDisconnect",
    "HTTPChannel._receivedHeaderSize",
    "HTTPChannel._receivedHeaderCount",
    "HTTPChannel._HTTPChannel__header",
    "HTTPChannel._command",
    "HTTPChannel._path",
    "HTTPChannel._version",
    "HTTPChannel._transferDecoder",
    "LineReceiver._buffer",
    "LineReceiver._busyReceiving",
    "_ChunkedTransferDecoder.state",
    "_ChunkedTransferDecoder._buffer",
)

#: Longest request line or header line, in bytes (414 or 431 beyond).
MAX_LINE = 16384
#: Most bytes of the request line and all header lines together (431 beyond).
MAX_HEAD_BYTES = 65536
#: Most header fields of one request (431 beyond).
MAX_HEADER_FIELDS = 500
#: Most bytes of a refused request's method and target in its access-log line.
LOGGED_TARGET = 1024


#: Methods a cross-origin page may send without changing anything.
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def _cache_host(channel: Any) -> None:
    """
    Ask the socket for the local address once per connection, not once per
    request (``Request.__init__`` calls ``channel.getHost()`` every time).
    """
    if "getHost" not in vars(channel):
        host = channel.getHost()
        channel.getHost = lambda: host


class FireworqRequest(Request):
    """
    A request that refuses bodies over the site's ``max_request_body`` with
    413 (without keeping them in memory) and closes the connection after the
    answer unless the site keeps connections alive.
    """

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        _cache_host(channel)
        super().__init__(channel, *args, **kwargs)
        self.started = time.time()
        self._received = 0
        self._too_large = False

    def _limit(self) -> int:
        site = getattr(self.channel, "site", None)
        return getattr(site, "max_request_body", 1 << 20)

    def gotLength(self, length: Optional[int]) -> None:
        self.content = io.BytesIO()
        if length is not None and length > self._limit():
            self._too_large = True

    def handleContentChunk(self, data: bytes) -> None:
        if self._too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._too_large = True
            self.content = io.BytesIO()
            return
        self.content.write(data)

    def _close_after_answer(self) -> None:
        """
        Close the connection once this answer is sent.  The header alone
        only asks the client to; the channel must also stop being persistent
        for the server to close it.
        """
        self.setHeader(b"Connection", b"close")
        if hasattr(self.channel, "persistent"):
            self.channel.persistent = False

    def _refuse(self, code: int, message: str, close: bool = False) -> None:
        """Answer ``code`` with a JSON error body without routing the request."""
        body = error_body(code, message)
        self.setResponseCode(code, phrase(code).encode("ascii"))
        self.setHeader(b"Content-Type", b"application/json")
        self.setHeader(b"Content-Length", b"%d" % len(body))
        if close:
            self._close_after_answer()
        self.write(body)
        self.finish()

    def _url_problem(self) -> Optional[str]:
        """
        Why the path or host cannot be routed, or None.  The router needs
        them as UTF-8 text (once percent-decoded); it would answer an
        HTML page otherwise.
        """
        raw = _RAW_BYTE.search(self.uri)
        if raw is not None:  # 0x7f-0xb0, which Twisted's parser lets through
            return raw_byte_problem(raw.group()[0])
        try:
            unquote_to_bytes(self.path).decode("utf-8")
        except UnicodeDecodeError as e:
            return f"the URL path is not valid UTF-8 once percent-decoded (byte {e.start})"
        try:
            self.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            return "the Host header is not valid UTF-8"
        return None

    def process(self) -> None:
        site = getattr(self.channel, "site", None)
        if site is not None and not getattr(site, "keep_alive", True):
            self._close_after_answer()
        if self._too_large:
            self._refuse(
                413, f"request body is larger than the limit of {self._limit()} bytes", close=True
            )
            return
        problem = self._url_problem()
        if problem is not None:
            self._refuse(400, problem)
            return
        if self.method not in SAFE_METHODS and not self._same_origin():
            self._refuse(
                403,
                "cross-origin request refused: the Origin header names another site than "
                "the Host header (see docs/security.md)",
            )
            return
        super().process()

    def _same_origin(self) -> bool:
        """
        Whether a browser sent this request from a page of this server (or it
        did not come from a browser at all: no Origin header).  Stops a web
        page from making its visitor's browser push jobs or change queues on
        a server it can reach (cross-site request forgery).
        """
        origin = self.getHeader(b"origin")
        if origin is None:
            return True
        host = self.getHeader(b"host") or b""
        scheme, _, rest = origin.partition(b"://")
        return bool(rest) and rest.lower() == host.lower()


def raw_error(code: int, message: str, headers: Tuple[Tuple[bytes, bytes], ...] = ()) -> bytes:
    """
    A whole HTTP/1.1 error answer with a JSON body, for answering on a
    connection that has no request object to answer through; it asks the
    client to close (the server closes the connection after it).
    """
    return raw_answer(code, error_body(code, message), headers)


def raw_answer(code: int, body: bytes, headers: Tuple[Tuple[bytes, bytes], ...] = ()) -> bytes:
    """L{raw_error} with its JSON ``body`` made already."""
    lines = [
        b"HTTP/1.1 %d %s" % (code, phrase(code).encode("ascii")),
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@attr.s(auto_attribs=True, frozen=True)
class RefusedRequest:
    """
    What the access log shows of a request the server answered without
    routing it (a request it could not parse, a deadline, the connection
    cap): the parts of L{twisted.web.server.Request} that
    L{fireworq.logging.AccessLog.request} reads.  Parts not received (or not
    understood) are empty.
    """

    method: bytes
    uri: bytes
    clientproto: bytes
    #: The status of the answer.
    code: int
    #: Bytes of the answer's body.
    sentLength: int
    #: When the request began (``time.time()``), or None if unknown.
    started: Optional[float]
    client: Any
    user_agent: Optional[bytes] = None

    def getClientAddress(self) -> Any:
        """The client's address."""
        return self.client

    def getHeader(self, name: bytes) -> Optional[bytes]:
        """The request's User-Agent header; no other header is kept."""
        return self.user_agent if name.lower() == b"user-agent" else None


def request_line_parts(data: bytes) -> Tuple[bytes, bytes, bytes]:
    """
    The method, target and version of the request line at the start of
    ``data``, as far as they arrived (the method is up to the first space,
    the version after the last one; each cut to L{LOGGED_TARGET} bytes);
    empty when they cannot be told apart.
    """
    line, newline, _ = data.partition(b"\n")
    method, space, rest = line.rstrip(b"\r").partition(b" ")
    if not space:
        return b"", b"", b""
    target, version = rest, b""
    if newline and b" " in rest:
        target, _, version = rest.rpartition(b" ")
    return method[:LOGGED_TARGET], target[:LOGGED_TARGET], version[:LOGGED_TARGET]


#: A byte a request target may not carry raw: anything outside printable
#: ASCII.  Twisted's parser refuses most of them, but not 0x7f-0xb0 (it
#: compares with 176, meant as octal), so requests are checked again.
_RAW_BYTE = re.compile(rb"[^\x21-\x7e]")


def raw_byte_problem(byte: int) -> str:
    """The refusal of a request target carrying ``byte`` raw."""
    return (
        f"the URL contains the raw byte 0x{byte:02x}; "
        "characters outside printable ASCII must be percent-encoded (UTF-8)"
    )


def request_line_problem(line: bytes) -> str:
    """
    Why Twisted's parser refused the request line ``line``, in words (the
    rules of C{twisted.web.http._parseRequestLine}).
    """
    parts = line.split(b" ")
    if len(parts) != 3:
        return "the request line must be a method, a target and HTTP/1.1 separated by single spaces"
    method, target, version = parts
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        return "only HTTP/1.0 and HTTP/1.1 requests are understood"
    raw = _RAW_BYTE.search(target)
    if raw is not None:
        return raw_byte_problem(raw.group()[0])
    if not target:
        return "the request line has an empty target"
    return "the request method is not a valid token"


class FireworqChannel(HTTPChannel):
    """
    One client connection.  Compared with Twisted's L{HTTPChannel}:

      - a request it cannot parse is answered with the API's JSON error
        (400 naming the problem; 414 for a request line over L{MAX_LINE}
        bytes; 431 for a header line over that, headers over
        L{MAX_HEAD_BYTES} bytes together, or more than L{MAX_HEADER_FIELDS}
        fields), never with silence or an empty body;
      - the request line and headers must arrive within the site's
        ``header_timeout`` seconds of the request's first byte, and a body
        within ``body_timeout`` seconds after the headers; otherwise the
        answer is 408 and the connection is closed (Twisted's idle timeout
        restarts on every byte, so a client sending a byte a minute would
        otherwise hold the connection forever);
      - a line of the request head (or a size line of a chunked body) that
        ends with a bare LF (or CR) is answered 400 at once, rather than
        waited for until the deadline;
      - every answer it sends itself is written to the access log, in the
        format of every other request's line;
      - it tells the site when it opens and closes, for the connection cap.

    Only a few cheap hooks run for a well-formed request (one timer per
    request, moved from the headers' deadline to the body's; a look at the
    phase after each read); everything that explains a refusal runs only
    when Twisted refuses, or when a request's head or chunked body is still
    incomplete after a read.
    """

    MAX_LENGTH = MAX_LINE
    totalHeadersSize = MAX_HEAD_BYTES
    maxHeaders = MAX_HEADER_FIELDS

    #: ``idle`` (between requests), ``head`` (request line and headers
    #: arriving), ``body`` (body arriving), ``handling`` (being answered),
    #: ``refused`` (an error was sent; the connection is closing).
    phase = "idle"
    _deadline: Any = None
    #: The first bytes of the request under way (to quote its request line).
    _first_data = b""

    # -- connection ------------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        opened = getattr(getattr(self, "site", None), "connection_opened", None)
        if opened is not None:
            opened()

    def connectionLost(self, reason: Any) -> None:
        self._cancel_deadline()
        closed = getattr(getattr(self, "site", None), "connection_closed", None)
        if closed is not None:
            closed()
        super().connectionLost(reason)

    # -- phases and deadlines --------------------------------------------------

    def _cancel_deadline(self) -> None:
        deadline = self._deadline
        if deadline is not None:
            self._deadline = None
            if deadline.active():
                deadline.cancel()

    def _too_slow(self, what: str, seconds: float) -> None:
        self._deadline = None
        self.refuse(
            408,
            f"the request's {what} did not arrive within {seconds:g} seconds; "
            "send the whole request at once",
            waited=seconds if what != "body" else None,
        )

    def _begin(self, data: bytes) -> None:
        """A request begins with ``data``: its head's deadline starts."""
        self.phase = "head"
        self._first_data = data
        seconds = getattr(self.site, "header_timeout", None)
        if seconds:
            self._deadline = self.callLater(seconds, self._too_slow, "line and headers", seconds)

    def dataReceived(self, data: bytes) -> None:
        if self.phase == "idle":
            if not data:
                return
            self._begin(data)
        elif self.phase == "refused":
            return
        super().dataReceived(data)
        if (self.phase == "head" or self.phase == "body") and not self._busyReceiving:
            self._check_line_ends()

    def _check_line_ends(self) -> None:
        """
        Refuse a request whose head or chunked body is waiting for a line
        that was ended with a bare LF (or CR): Twisted waits for CR LF and
        would only time out.  What is pending holds no CR LF (each one ends a
        line already parsed), so any LF in it, and any CR but a last one
        (whose LF may be on its way), is bare.
        """
        if self.phase == "head":
            pending = self._buffer
            if b"\n" in pending or pending.find(b"\r", 0, len(pending) - 1) != -1:
                self.refuse(
                    400,
                    "each line of the request line and headers must end with CR LF; "
                    "this request ends one with a bare " + ("LF" if b"\n" in pending else "CR"),
                )
            return
        decoder = self._transferDecoder
        if getattr(decoder, "state", None) in ("CHUNK_LENGTH", "TRAILER") and b"\n" in getattr(decoder, "_buffer", b""):
            self.refuse(400, "each size line and trailer line of a chunked body must end with CR LF, not a bare LF")

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        if self.length == 0 or self.phase == "refused":
            return
        self.phase = "body"
        seconds = getattr(self.site, "body_timeout", None)
        deadline = self._deadline
        if not seconds:
            self._cancel_deadline()
        elif deadline is not None and deadline.active():
            deadline.args = ("body", seconds)
            deadline.reset(seconds)
        else:
            self._deadline = self.callLater(seconds, self._too_slow, "body", seconds)

    def allContentReceived(self) -> None:
        self._cancel_deadline()
        self.phase = "handling"
        self._first_data = b""
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        # Before the base class replays data that arrived meanwhile (the
        # next request), which goes through dataReceived again.
        self.phase = "idle"
        super().requestDone(request)
        if self.phase == "idle" and self._busyReceiving and self._buffer and self.persistent:
            # Answered while its own read was being parsed: the rest of that
            # read (the next request) is parsed on return, not replayed.
            self._begin(self._buffer)

    # -- answers without a request ---------------------------------------------

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._in_request_line():
            self.refuse(414, f"the request line is over {MAX_LINE} bytes; shorten the URL")
        else:
            self.refuse(431, f"a header line is over {MAX_LINE} bytes")

    def _in_request_line(self) -> bool:
        """Whether the request line of the request under way is not parsed yet."""
        return self.phase in ("idle", "head") and not hasattr(self, "_command")

    def _respondToBadRequestAndDisconnect(self) -> None:
        """
        Twisted calls this (a private method) for every request it cannot
        parse; its own version writes a bare 400.  Say what is wrong instead.
        """
        if self.phase == "body":
            self.refuse(400, "the chunked request body is malformed")
        elif self._in_request_line():
            line, complete = self._first_data.partition(b"\n")[::2], b"\n" in self._first_data
            self.refuse(400, request_line_problem(line[0].rstrip(b"\r")) if complete else
                        "the request line is malformed")
        elif self._receivedHeaderSize > self.totalHeadersSize:
            self.refuse(431, f"the request's headers are over {MAX_HEAD_BYTES} bytes together")
        elif self._receivedHeaderCount > self.maxHeaders:
            self.refuse(431, f"a request may carry at most {MAX_HEADER_FIELDS} header fields")
        else:
            self.refuse(400, header_problem(getattr(self, "_HTTPChannel__header", b"")))

    def refuse(self, code: int, message: str, waited: Optional[float] = None) -> None:
        """
        Answer ``code`` with a JSON error, write its access-log line and close
        the connection.

        @param waited: seconds since the request began, when its request
            object (which knows) may not be made yet.
        """
        if self.phase == "refused":
            return
        self.phase = "refused"
        self._cancel_deadline()
        body = error_body(code, message)
        if self.transport is not None:
            self.transport.write(raw_answer(code, body))
            self._log_refusal(code, len(body), waited)
        self.loseConnection()

    def _log_refusal(self, code: int, size: int, waited: Optional[float]) -> None:
        """The access-log line of a request refused by L{refuse}."""
        site = getattr(self, "site", None)
        if site is None:
            return
        # The request object exists once the request line arrived (parsed or
        # not), with its headers as far as they were parsed.  (Earlier
        # requests of the connection are answered and gone: Twisted parses
        # no request while one is being answered.)
        request = self.requests[-1] if self.requests else None
        if "_command" in vars(self):
            method, uri, version = self._command, self._path[:LOGGED_TARGET], self._version
        else:
            method, uri, version = request_line_parts(self._first_data)
        started = getattr(request, "started", None)
        if waited is not None and started is None:
            started = time.time() - waited
        user_agent = request.getHeader(b"user-agent") if request is not None else None
        if user_agent is None and request is not None:
            # Twisted adds a header line once the next line begins.
            name, colon, value = getattr(self, "_HTTPChannel__header", b"").partition(b":")
            if colon and name.strip().lower() == b"user-agent":
                user_agent = value.strip(b" \t")
        site.log(
            RefusedRequest(
                method=method,
                uri=uri,
                clientproto=version,
                code=code,
                sentLength=size,
                started=started,
                client=self.transport.getPeer(),
                user_agent=user_agent,
            )
        )


def header_problem(line: bytes) -> str:
    """Why Twisted's parser refused the header line ``line``, in words."""
    name, colon, value = line.partition(b":")
    value = value.strip(b" \t")
    if colon and name.strip().lower() == b"content-length" and not value.isdigit():
        shown = value[:40].decode("latin-1")
        return f"the Content-Length header must be a whole number of bytes, not {shown!r}"
    if colon and name.strip().lower() == b"transfer-encoding":
        return "Transfer-Encoding must be chunked (or identity), and not sent with Content-Length"
    return (
        "a header line is malformed (a field needs a name, a colon and a value without NUL, "
        "CR or LF), or Content-Length and Transfer-Encoding disagree"
    )


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
