"""
The access-log record of an answer the server sent without routing a
request (a request it could not parse, a deadline, the connection cap):
L{RefusedRequest}, read by L{fireworq.logging.AccessLog.request} like any
routed request, and L{request_line_parts}, what of a request line that
arrived can be shown.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import attr

#: Most bytes of a refused request's method and target in its access-log line.
LOGGED_TARGET = 1024


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
