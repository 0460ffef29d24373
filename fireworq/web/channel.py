"""
L{FireworqChannel}: one client connection of the API, Twisted's HTTP/1.1
parser (L{HTTPChannel}) with the API's limits and framing checks.

Twisted's parser answers a malformed request with a bare ``400`` and no
body, and drops a connection whose request line or a header line is longer
than its line limit without any answer.  It also waits forever (until a
deadline) for a line that a client ended with a bare LF.
L{FireworqChannel} changes that through the parser's hooks, bounds how long
a request may take to arrive, and writes an access-log line for every
answer it sends itself.

This is the one module of the API's HTTP side that relies on names
Twisted does not publish: they are listed in L{TWISTED_PRIVATE_API} (and are
checked by the canary tests in ``tests/test_limits.py``), so a Twisted
upgrade that changes them fails those tests rather than going unnoticed.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from twisted.web.http import HTTPChannel

from fireworq.web.access_log import LOGGED_TARGET, RefusedRequest, request_line_parts
from fireworq.web.errors import error_body
from fireworq.web.refusals import header_problem, raw_answer, request_line_problem

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
