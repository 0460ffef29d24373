"""
L{FireworqRequest}: one API request as the server reads it, before routing
-- the body size limit (413), the keep-alive setting, the URL checks (400)
and the cross-origin guard (403).
"""

from __future__ import annotations

import io
import time
from typing import Any, Optional
from urllib.parse import unquote_to_bytes

from twisted.web.server import Request

from fireworq.web.errors import error_body, phrase
from fireworq.web.refusals import RAW_BYTE, raw_byte_problem

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
        raw = RAW_BYTE.search(self.uri)
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
