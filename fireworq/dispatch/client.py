"""
The HTTP client of deliveries, built on twisted.web's
L{HTTPConnectionPool} and its HTTP/1.1 protocol, specialised for the one
kind of request a dispatcher makes.

A delivery is a POST of bytes with a fixed set of headers to a URL that many
jobs share.  It needs no cookies, follows no redirects (the worker's answer
is judged as it is) and asks for no compression, so L{DeliveryClient.post}
skips the layers of treq's general request path and those of L{Agent}: it
does once per URL what Agent does per request (encode, check and parse the
URL; find its endpoint -- one per (scheme, host, port), the host IDNA-encoded
once -- its pool key and C{Host} header) and writes each request's bytes in
one go (L{fireworq.dispatch.internals.PreparedRequest}), the bytes Agent
would write.  With treq's general client instead, the benchmark's
end-to-end rate drops by a third to a half (docs/performance.md).

L{DeliveryClient.post} takes the arguments of treq's C{HTTPClient.post}
and fires with an C{IResponse}, so the deliverer works unchanged over treq's
C{StubTreq} in tests.

L{collect} reads a response body like C{treq.collect}, but cancelling it
(as a delivery timeout does) aborts the connection to the worker: a worker
that sends its headers and then stalls must not keep a socket open, nor leave
a half-read connection behind.  That abort and the prepared request are the
things with no public API; they live in L{fireworq.dispatch.internals}.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from hyperlink import EncodedURL
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import URI, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from zope.interface import implementer

from fireworq.dispatch.internals import PreparedRequest, abort_response_connection, checked_uri
from fireworq.dispatch.tls import TLSClientEndpoint, https_policy

#: Distinct worker URLs whose parsed form is kept.
URL_CACHE_SIZE = 4096


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


class _Target:
    """What every delivery to one URL shares (L{DeliveryClient._target})."""

    __slots__ = ("key", "endpoint", "path", "host")

    def __init__(self, key: Tuple[bytes, bytes, int], endpoint: Any, path: bytes, host: bytes) -> None:
        self.key = key
        self.endpoint = endpoint
        self.path = path
        self.host = host


def _host_value(uri: URI) -> bytes:
    """The C{Host} header of a request to ``uri``, as L{Agent} computes it."""
    host = uri.host
    if isIPv6Address(host.decode("ascii")):
        host = b"[" + host + b"]"
    if (uri.scheme, uri.port) in ((b"http", 80), (b"https", 443)):
        return host
    return b"%b:%d" % (host, uri.port)


def _sanitized(values: Any) -> List[bytes]:
    """
    Header values as twisted.web's C{Headers} stores them: text in UTF-8,
    line breaks replaced by spaces.
    """
    clean = []
    for value in values:
        if type(value) is not bytes:
            value = value.encode("utf-8")
        if b"\n" in value or b"\r" in value:
            value = b" ".join(value.splitlines())
        clean.append(value)
    return clean


class DeliveryClient:
    """
    POSTs deliveries over connections of an L{HTTPConnectionPool}; its
    L{post} stands in for treq's C{HTTPClient.post}.  Use L{make} to build
    one over a connection pool.

    It sends what L{Agent} sends for the same request, byte for byte
    (C{tests/test_dispatch_internals.py} compares them), but does per URL
    what Agent does per request: the URL is encoded, checked and parsed,
    its endpoint, pool key and C{Host} header found, once; each delivery
    then writes its request head and body in one go
    (L{fireworq.dispatch.internals.PreparedRequest}).
    """

    def __init__(self, pool: Any, endpoints: Any) -> None:
        self._pool = pool
        self._endpoints = endpoints
        self._targets: "OrderedDict[str, _Target]" = OrderedDict()
        #: Header names as twisted.web writes them (C{Headers}' canonical form).
        self._names: Dict[bytes, bytes] = {}

    @classmethod
    def make(cls, reactor: Any, pool: Any, policy: Optional[Any] = None) -> "DeliveryClient":
        """
        A client whose connections come from ``pool``; ``policy`` (an
        C{IPolicyForHTTPS}) checks https workers' certificates (default:
        the system's CAs).
        """
        return cls(pool, CachedEndpoints(reactor, policy))

    def _target(self, url: str) -> _Target:
        """The pool key, endpoint, path and C{Host} of deliveries to ``url`` (cached)."""
        target = self._targets.get(url)
        if target is None:
            encoded = EncodedURL.from_text(url).to_uri().to_text().encode("ascii")
            uri = URI.fromBytes(checked_uri(encoded.strip()))
            endpoint = self._endpoints.endpointForURI(uri)
            target = _Target((uri.scheme, uri.host, uri.port), endpoint, checked_uri(uri.originForm), _host_value(uri))
            if len(self._targets) >= URL_CACHE_SIZE:
                self._targets.popitem(last=False)
            self._targets[url] = target
        return target

    def _name(self, name: Any) -> bytes:
        """``name`` as twisted.web's C{Headers} writes it (C{x-id} -> C{X-Id})."""
        canonical = self._names.get(name)
        if canonical is None:
            canonical = next(iter(Headers({name: [b""]}).getAllRawHeaders()))[0]
            if len(self._names) >= URL_CACHE_SIZE:
                self._names.clear()
            self._names[name] = canonical
        return canonical

    def post(
        self,
        url: str,
        data: bytes = b"",
        *,
        headers: Optional[Mapping[Any, Any]] = None,
        **ignored: Any,
    ) -> "Deferred[IResponse]":
        """
        Send ``data`` to ``url``; fire with the response (an C{IResponse}).
        Redirects are not followed (``allow_redirects`` and other treq
        arguments are accepted and ignored), no cookies are kept and no
        compression is asked for.
        """
        target = self._target(url)
        pool = self._pool
        # As Headers(headers) keeps them: canonical names, the last of two
        # spellings of one name wins in the place of the first.
        raw: Dict[bytes, List[bytes]] = {}
        if headers:
            names = self._names
            for name, values in headers.items():
                raw[names.get(name) or self._name(name)] = _sanitized(values)
        if b"Host" not in raw:
            raw[b"Host"] = [target.host]
        # What Request._writeHeaders writes: the request line, Connection
        # (unless kept alive), Content-Length (also 0: a POST), the headers.
        lines = [b"POST ", target.path, b" HTTP/1.1\r\n"]
        if not pool.persistent:
            lines.append(b"Connection: close\r\n")
        lines.append(b"Content-Length: %d\r\n" % len(data))
        for name, values in raw.items():
            for value in values:
                lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        request = PreparedRequest(target.path, b"".join(lines), data, pool.persistent, raw)
        d = pool.getConnection(target.key, target.endpoint)
        d.addCallback(_send, request)
        return d


def _send(connection: Any, request: PreparedRequest) -> "Deferred[IResponse]":
    """Send ``request`` over a pool's ``connection`` (as Agent does)."""
    return connection.request(request)
