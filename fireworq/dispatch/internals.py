"""
The one place where deliveries depend on names Twisted does not publish.

Everything else in L{fireworq.dispatch} uses public API only.  What is here
has no public equivalent (checked against Twisted 26.10 and treq 26.7); each
use is pinned by a canary test in C{tests/test_dispatch_internals.py} that
fails, naming this module, as soon as an upgrade renames or removes it.

Aborting the connection under a response body
    A delivery that runs out of time must close its socket at once: a
    worker that sent its headers and then stalls would otherwise keep the
    connection (and, pooled, a half-read one) open.  twisted.web hands a
    body protocol a C{TransportProxyProducer}, whose only closing methods are
    C{stopProducing} and C{loseConnection}; both end in the socket's
    C{loseConnection}, which waits for unsent request bytes to drain -- and a
    stalled worker may never read them.  Twisted's own C{readBody} has the
    same gap (it warns "Using readBody with a transport that does not have
    an abortConnection method" and then only stops reading).  So
    L{abort_response_connection} reaches the transport the proxy wraps
    (C{TransportProxyProducer._producer}) and aborts that.

Sending a request whose bytes are ready
    L{HTTPConnectionPool.getConnection} (public) hands out a connection that
    sends one request: C{HTTP11ClientProtocol.request(request)}, where
    C{request} is a C{twisted.web._newclient.Request}.  L{Agent} builds that
    request anew for every delivery -- parses the URL, copies the headers to
    add C{Host}, validates, then writes the head line by line and the body
    through a producer and four Deferreds.  A delivery's URL and most of its
    headers are the same for every job, so L{PreparedRequest} (a C{Request}
    whose C{writeTo} writes bytes the client prepared, the same bytes, in
    one go) and L{checked_uri} (Agent's own check of a URL, run once per URL)
    let L{fireworq.dispatch.client.DeliveryClient} skip that work.
"""

from __future__ import annotations

from typing import Any, Dict, List

from twisted.internet.defer import Deferred, succeed
from twisted.web._newclient import Request, _ensureValidURI
from twisted.web.http_headers import Headers

#: The attribute under which C{twisted.web._newclient.TransportProxyProducer}
#: keeps the transport it proxies (None once the response is done).
PROXIED_TRANSPORT = "_producer"


def abort_response_connection(transport: Any) -> None:
    """
    Close the connection under a response body now, unread data and all.

    ``transport`` is what twisted.web gave the body protocol (a
    C{TransportProxyProducer}), or None.  When the proxied transport can be
    aborted it is; otherwise (the response is already over, or a test's
    transport) the connection is lost the public way.
    """
    if transport is None:
        return
    wrapped = getattr(transport, PROXIED_TRANSPORT, transport)
    abort = getattr(wrapped, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


def checked_uri(uri: bytes) -> bytes:
    """
    ``uri`` if L{Agent} would send it, as C{Agent.request} checks it (no
    control or non-ASCII characters); else C{ValueError}, as Agent raises.
    """
    return _ensureValidURI(uri)


class PreparedRequest(Request):
    """
    A POST whose bytes are ready: C{writeTo} writes ``head`` (request line
    and headers, as C{Request} would write them) and ``body`` to the
    transport at once and fires.  ``path`` was checked once for its URL
    (L{checked_uri}); ``headers`` (a C{Headers} of ``raw``, the request's
    headers as C{Request} has them) is made only if someone asks.
    """

    def __init__(
        self, path: bytes, head: bytes, body: bytes, persistent: bool, raw: Dict[bytes, List[bytes]]
    ) -> None:
        # Request.__init__ is not called: it would check the method and the
        # path again, which the client did once for the URL.
        self.method = b"POST"
        self.uri = path
        self.bodyProducer = None
        self.persistent = persistent
        self._parsedURI = None
        self._head = head
        self._body = body
        self._raw = raw

    @property  # type: ignore[override]
    def headers(self) -> Headers:
        """The request's headers (C{Host} included) as twisted.web keeps them."""
        return Headers(self._raw)

    def writeTo(self, transport: Any) -> "Deferred[None]":
        if self._body:
            transport.writeSequence((self._head, self._body))
        else:
            transport.write(self._head)
        return succeed(None)
