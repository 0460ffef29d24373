"""
The exceptions of the client: one class per answer a caller may want to
handle on its own, each carrying the server's status code and message.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type


class FireworqError(Exception):
    """The base of every error this client raises."""


class TransportError(FireworqError):
    """
    No usable answer arrived: the connection was refused or broke, or the
    server did not answer within the timeout.  ``__cause__`` holds the
    underlying httpx exception.
    """


class UnexpectedAnswer(FireworqError):
    """A 2xx answer whose body is not what the API promises (not this API, or a proxy)."""


class APIError(FireworqError):
    """
    The server answered with a status other than 2xx.

    @ivar status: the HTTP status code.
    @ivar message: the server's ``message`` (what is wrong), or the body's text.
    @ivar reason: the server's ``error`` (the reason phrase), when given.
    @ivar body: the decoded JSON body, or the text when it was not JSON.
    @ivar headers: the answer's headers (lower-case names).
    @ivar method: the request's method; C{url} its URL.
    """

    #: The status this class stands for (None: any).
    status_code: Optional[int] = None

    def __init__(
        self,
        status: int,
        message: str,
        reason: str = "",
        body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(f"{status} {reason or 'Error'}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.message = message
        self.reason = reason
        self.body = body
        self.headers: Dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.method = method
        self.url = url

    def _header_number(self, name: str) -> Optional[float]:
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            return None

    @property
    def retry_after(self) -> Optional[float]:
        """Seconds of the ``Retry-After`` header (only the seconds form), if any."""
        return self._header_number("retry-after")


class BadRequest(APIError):
    """400: the request is malformed; the message names the field."""

    status_code = 400


class Unauthorized(APIError):
    """401: no token, or an unknown one (B14)."""

    status_code = 401


class Forbidden(APIError):
    """403: the token's scope does not allow the call, or a cross-site request."""

    status_code = 403


class NotFound(APIError):
    """404: no such queue, job, entry, routing, ...; or no queue takes the category."""

    status_code = 404


class MethodNotAllowed(APIError):
    """405: the server does not offer this method on the path (an older server, say)."""

    status_code = 405


class Conflict(APIError):
    """409: the request conflicts with the state of the server."""

    status_code = 409


class PayloadTooLarge(APIError):
    """413: the body is larger than the server's ``max_request_body``, or a payload too large."""

    status_code = 413


class RateLimited(APIError):
    """
    429: the token is over its rate (B14).  ``retry_after`` is the seconds
    to wait; ``limit``, ``remaining`` and ``reset`` come from the
    ``RateLimit-*`` headers when present.
    """

    status_code = 429

    @property
    def limit(self) -> Optional[float]:
        return self._header_number("ratelimit-limit")

    @property
    def remaining(self) -> Optional[float]:
        return self._header_number("ratelimit-remaining")

    @property
    def reset(self) -> Optional[float]:
        return self._header_number("ratelimit-reset")


class ServerError(APIError):
    """5xx: the server failed (500 is a bug of the server)."""


class NotImplementedByServer(ServerError):
    """501: the server does not implement the call (a store without inspection)."""

    status_code = 501


class ServiceUnavailable(ServerError):
    """503: the database does not answer or the server is starting; retry later."""

    status_code = 503


_BY_STATUS: Dict[int, Type[APIError]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        NotImplementedByServer,
        ServiceUnavailable,
    )
    if cls.status_code is not None
}


def error_class(status: int) -> Type[APIError]:
    """The exception class for an answer with ``status``."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return APIError


def api_error(
    status: int, body: Any, headers: Mapping[str, str], method: str = "", url: str = ""
) -> APIError:
    """The exception for a non-2xx answer, with the server's message."""
    reason = ""
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or "")
        reason = str(body.get("error") or "")
    else:
        message = str(body or "").strip()
    return error_class(status)(status, message, reason, body, headers, method, url)


class BatchError(FireworqError):
    """
    Raised by L{fireworq.client.models.BatchResult.raise_for_errors}: some
    jobs of a batch push were not stored.  ``result`` is the whole result.
    """

    def __init__(self, result: Any) -> None:
        failures = result.failures
        first = failures[0] if failures else None
        text = f"{result.failed} of {result.total} jobs were not pushed"
        if first is not None:
            text += f"; first: job [{first.index}]: {first.error}"
        super().__init__(text)
        self.result = result


class SignatureError(FireworqError):
    """A signed delivery (B11) could not be verified; the message says why."""
