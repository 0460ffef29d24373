"""
The HTTP server side of the API: a L{Request} that enforces the body size
limit and keep-alive setting, and a L{Site} that writes the access log.
"""

from __future__ import annotations

import io
import time
from typing import Any, Optional

from twisted.web.server import Request, Site

from fireworq.logging import AccessLog
from fireworq.web.errors import error_body


class FireworqRequest(Request):
    """
    A request that refuses bodies over the site's ``max_request_body`` with
    413 (without keeping them in memory) and closes the connection after the
    answer unless the site keeps connections alive.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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

    def process(self) -> None:
        site = getattr(self.channel, "site", None)
        if site is not None and not getattr(site, "keep_alive", True):
            self.setHeader(b"Connection", b"close")
        if self._too_large:
            self.setResponseCode(413)
            self.setHeader(b"Content-Type", b"application/json")
            self.setHeader(b"Connection", b"close")
            self.write(
                error_body(
                    413, f"request body is larger than the limit of {self._limit()} bytes"
                )
            )
            self.finish()
            return
        super().process()


class FireworqSite(Site):
    """The API site: JSON access log, body limit, keep-alive setting."""

    requestFactory = FireworqRequest
    noisy = False

    def __init__(
        self,
        resource: Any,
        access_log: Optional[AccessLog],
        max_request_body: int,
        keep_alive: bool,
        **kwargs: Any,
    ) -> None:
        # The API takes JSON only: never parse bodies as HTML form submissions
        # (which also spares parsing Content-Type on every push).
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(resource, **kwargs)
        self.access_log = access_log
        self.max_request_body = max_request_body
        self.keep_alive = keep_alive

    def log(self, request: Any) -> None:
        if self.access_log is not None:
            self.access_log.request(request)
