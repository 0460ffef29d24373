"""
What both clients share: configuration from arguments or the environment,
the httpx settings, whether and when to try a request again, turning an
httpx answer into a result or a typed error.  L{Client} and L{AsyncClient}
only do the I/O.
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any, Callable, Dict, Optional, Union

import httpx

from fireworq import __version__
from fireworq.client.call import Call, Reply
from fireworq.client.calls import Endpoints
from fireworq.client.errors import TransportError, UnexpectedAnswer, api_error
from fireworq.client.retry import RETRYABLE_STATUSES, RETRYABLE_TRANSPORT_ERRORS, RetryPolicy

#: The server's default address (A8 ``bind``).
DEFAULT_URL = "http://127.0.0.1:8080"

#: Seconds to wait for a connection and for each read, by default.
DEFAULT_TIMEOUT = 10.0

#: Seconds ``events()`` waits for the next byte: the server sends a comment
#: every 15 s (B13), so a silent minute means the stream is dead.
EVENTS_READ_TIMEOUT = 60.0

#: Called before each retry with (call, try number that failed, seconds to wait, the error).
RetryHook = Callable[[Call, int, float, BaseException], None]


def resolve_url(url: Optional[str]) -> str:
    """The server URL: the argument, else ``FIREWORQ_URL``, else the default."""
    return (url or os.environ.get("FIREWORQ_URL") or DEFAULT_URL).rstrip("/")


def resolve_token(token: Optional[str]) -> Optional[str]:
    """The bearer token: the argument, else ``FIREWORQ_TOKEN``, else none."""
    if token is not None:
        return token or None
    return os.environ.get("FIREWORQ_TOKEN") or None


def resolve_verify(verify: Any, ca_file: Optional[str]) -> Any:
    """
    How to check the server's TLS certificate: ``verify`` as given (True:
    the system's CAs, False: not at all, an ``ssl.SSLContext``), or, with
    ``ca_file`` (else ``FIREWORQ_CA_FILE``), a context trusting that PEM
    file, for a server whose certificate a private CA issued.
    """
    path = ca_file or (os.environ.get("FIREWORQ_CA_FILE") if verify is True else None)
    if not path:
        return verify
    return ssl.create_default_context(cafile=path)


def default_headers(token: Optional[str], extra: Optional[Dict[str, str]]) -> Dict[str, str]:
    """Headers of every request: User-Agent, Accept, Authorization with a token."""
    headers = {"User-Agent": f"fireworq-client/{__version__}", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def make_timeout(timeout: Union[None, float, httpx.Timeout]) -> httpx.Timeout:
    """An httpx timeout from seconds (None: wait forever)."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout)


def request_args(call: Call) -> Dict[str, Any]:
    """The keyword arguments of ``httpx.Client.request`` for ``call``."""
    headers = dict(call.headers)
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    args: Dict[str, Any] = {"headers": headers}
    if call.params:
        args["params"] = call.params
    if call.body is not None:
        args["content"] = call.body
    return args


def decode(response: httpx.Response, text: bool = False) -> Any:
    """The body: JSON when it is JSON, else the text."""
    if text and response.is_success:
        return response.text
    content = response.content
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return response.text


def retryable_answer(call: Call, response: httpx.Response) -> bool:
    """Whether this answer lets ``call`` be tried again."""
    return call.idempotent and response.status_code in RETRYABLE_STATUSES and response.status_code not in call.accept


def retryable_error(call: Call, error: BaseException) -> bool:
    """Whether this transport failure lets ``call`` be tried again."""
    return call.idempotent and isinstance(error, RETRYABLE_TRANSPORT_ERRORS)


def retry_after(response: Optional[httpx.Response]) -> Optional[float]:
    """The ``Retry-After`` seconds of an answer, if any."""
    if response is None:
        return None
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def finish(call: Call, response: httpx.Response) -> Any:
    """The result of ``call`` from its final answer, or the typed error."""
    status = response.status_code
    data = decode(response, call.text)
    if response.is_success or status in call.accept:
        try:
            return call.read(Reply(status, response.headers, data))
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise UnexpectedAnswer(
                f"{call.method} {response.request.url}: the {status} answer is not what the API promises: {e}"
            ) from e
    raise api_error(status, data, response.headers, call.method, str(response.request.url))


def transport_error(call: Call, error: BaseException, url: str) -> TransportError:
    """The client's error for an httpx transport failure."""
    wrapped = TransportError(f"{call.method} {url}{call.path}: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


class ClientBase(Endpoints):
    """Settings common to L{Client} and L{AsyncClient}."""

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        token: Optional[str] = None,
        timeout: Union[None, float, httpx.Timeout] = DEFAULT_TIMEOUT,
        retry: Optional[RetryPolicy] = None,
        headers: Optional[Dict[str, str]] = None,
        max_connections: int = 10,
        verify: Any = True,
        ca_file: Optional[str] = None,
        uds: Optional[str] = None,
        on_retry: Optional[RetryHook] = None,
    ) -> None:
        self.url = resolve_url(url)
        #: A Unix socket to connect to instead of the URL's host (a server on
        #: a ``unix:`` bind); the URL's host is then only the Host header.
        self.uds = uds or os.environ.get("FIREWORQ_UNIX_SOCKET") or None
        self._token = resolve_token(token)
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = make_timeout(timeout)
        self.on_retry = on_retry
        self._http_args: Dict[str, Any] = dict(
            base_url=self.url,
            headers=default_headers(self._token, headers),
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=resolve_verify(verify, ca_file),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}{' (token)' if self._token else ''}>"

    def _retry_wait(self, call: Call, attempt: int, error: BaseException, response: Optional[httpx.Response]) -> float:
        wait = self.retry.delay(attempt, retry_after(response))
        if self.on_retry is not None:
            self.on_retry(call, attempt, wait, error)
        return wait

    def _wait_after_error(self, call: Call, attempt: int, error: BaseException) -> float:
        """
        Seconds to wait before try ``attempt + 1`` of ``call`` after the
        transport ``error``; raises the client's L{TransportError} when the
        call may not be tried again.
        """
        if retryable_error(call, error) and self.retry.may_retry(attempt):
            return self._retry_wait(call, attempt, error, None)
        raise transport_error(call, error, self.url) from error

    def _wait_after_answer(self, call: Call, attempt: int, response: httpx.Response) -> Optional[float]:
        """
        Seconds to wait before try ``attempt + 1`` of ``call`` after this
        answer, or None when it is the final one (read it with L{finish}).
        """
        if retryable_answer(call, response) and self.retry.may_retry(attempt):
            error = api_error(response.status_code, decode(response), response.headers, call.method, call.path)
            return self._retry_wait(call, attempt, error, response)
        return None

    def _events_timeout(self, read_timeout: float) -> httpx.Timeout:
        """The client's timeouts with ``read_timeout`` for reads (``events()``)."""
        return httpx.Timeout(self.timeout.connect, read=read_timeout, write=self.timeout.write, pool=self.timeout.pool)
