"""
The HTTP client of deliveries, built on twisted.web's public L{Agent} and
L{HTTPConnectionPool}, specialised for the one kind of request a dispatcher
makes.

A delivery is a POST of bytes with a fixed set of headers to a URL that many
jobs share.  It needs no cookies, follows no redirects (the worker's answer
is judged as it is) and asks for no compression, so L{DeliveryClient.post}
goes straight to the agent, without the layers of treq's general request
path; parses each distinct URL once; and reuses one endpoint per (scheme,
host, port) instead of building one -- with IDNA encoding of the host -- for
every request.  With treq's general client instead, the benchmark's
end-to-end rate drops by a third to a half (docs/performance.md).

L{DeliveryClient.post} takes the arguments of treq's C{HTTPClient.post}
and fires with an C{IResponse}, so the deliverer works unchanged over treq's
C{StubTreq} in tests.

L{collect} reads a response body like C{treq.collect}, but cancelling it
(as a delivery timeout does) aborts the connection to the worker: a worker
that sends its headers and then stalls must not keep a socket open, nor leave
a half-read connection behind.  That abort is the one thing with no public
API; it lives in L{fireworq.dispatch.internals}.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from hyperlink import EncodedURL
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from fireworq.dispatch.internals import abort_response_connection
from fireworq.dispatch.tls import TLSClientEndpoint, https_policy

#: Distinct worker URLs whose parsed form is kept.
URL_CACHE_SIZE = 4096


@implementer(IBodyProducer)
class BytesProducer:
    """A request body that is already in memory, written in one go."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> "Deferred[None]":
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _BodyReader(Protocol):
    """
    Feeds a response body to ``collector``; fires ``finished`` with None at
    its end or with the reason it could not be read.  If ``collector``
    raises, the connection is aborted and ``finished`` fails with that error.
    """

    def __init__(self, finished: "Deferred[None]", collector: Callable[[bytes], None]) -> None:
        self.finished = finished
        self.collector = collector

    def abort(self) -> None:
        """Stop reading: abort the connection to the worker."""
        abort_response_connection(self.transport)

    def _fire(self, result: Any) -> None:
        if not self.finished.called:
            if isinstance(result, Failure):
                self.finished.errback(result)
            else:
                self.finished.callback(result)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        try:
            self.collector(data)
        except Exception:
            failure = Failure()
            self.abort()
            self._fire(failure)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self._fire(None)
        else:
            self._fire(reason)


def collect(response: Any, collector: Callable[[bytes], None]) -> "Deferred[None]":
    """
    Feed the body of ``response`` (an C{IResponse}, treq's included) to
    ``collector``, as C{treq.collect} does; fire with None once it is all
    read.  Cancelling the Deferred aborts the connection, so that neither the
    socket nor a half-read pooled connection outlives a timed-out delivery.
    """
    if response.length == 0:
        return succeed(None)
    reader: Optional[_BodyReader] = None

    def cancel(_: Deferred) -> None:
        if reader is not None:
            reader.abort()

    finished: "Deferred[None]" = Deferred(cancel)
    reader = _BodyReader(finished, collector)
    response.deliverBody(reader)
    return finished


@implementer(IStreamClientEndpoint)
class QuietEndpoint:
    """
    An endpoint whose connections do not log "Starting factory" and
    "Stopping factory" for every worker connection opened and closed: it
    turns off the public L{Factory.noisy} of each factory it connects.
    """

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        protocolFactory.noisy = False  # type: ignore[attr-defined]
        return self._endpoint.connect(protocolFactory)


class CachedEndpoints:
    """
    An endpoint factory for L{Agent.usingEndpointFactory} that keeps one
    (quiet) endpoint per (scheme, host, port), with TLS for https (checked
    by ``policy``, default L{https_policy}: the system's CAs; the TLS
    modules are imported on the first https connection).
    """

    def __init__(self, reactor: Any, policy: Optional[Any] = None) -> None:
        self._reactor = reactor
        self._policy = policy or https_policy()
        self._endpoints: Dict[Tuple[bytes, bytes, int], Any] = {}

    def endpointForURI(self, uri: Any) -> Any:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            host = uri.host.decode("ascii")
            endpoint = HostnameEndpoint(self._reactor, host, uri.port)
            if uri.scheme == b"https":
                endpoint = TLSClientEndpoint(self._policy.creatorForNetloc(uri.host, uri.port), endpoint)
            endpoint = QuietEndpoint(endpoint)
            if len(self._endpoints) >= URL_CACHE_SIZE:
                self._endpoints.clear()
            self._endpoints[key] = endpoint
        return endpoint


class DeliveryClient:
    """
    POSTs deliveries through an L{Agent}; its L{post} stands in for treq's
    C{HTTPClient.post}.  Use L{make} to build one over a connection pool.
    """

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self._urls: "OrderedDict[str, bytes]" = OrderedDict()

    @classmethod
    def make(cls, reactor: Any, pool: Any, policy: Optional[Any] = None) -> "DeliveryClient":
        """
        A client whose connections come from ``pool``; ``policy`` (an
        C{IPolicyForHTTPS}) checks https workers' certificates (default:
        the system's CAs).
        """
        return cls(Agent.usingEndpointFactory(reactor, CachedEndpoints(reactor, policy), pool=pool))

    def _encoded(self, url: str) -> bytes:
        encoded = self._urls.get(url)
        if encoded is None:
            encoded = EncodedURL.from_text(url).to_uri().to_text().encode("ascii")
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.popitem(last=False)
            self._urls[url] = encoded
        return encoded

    def post(
        self,
        url: str,
        data: bytes = b"",
        *,
        headers: Optional[Mapping[bytes, Any]] = None,
        **ignored: Any,
    ) -> "Deferred[IResponse]":
        """
        Send ``data`` to ``url``; fire with the response (an C{IResponse}).
        Redirects are not followed (``allow_redirects`` and other treq
        arguments are accepted and ignored), no cookies are kept and no
        compression is asked for.
        """
        return self._agent.request(
            b"POST",
            self._encoded(url),
            Headers(dict(headers or {})),
            BytesProducer(data) if data else None,
        )
