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
"""

from __future__ import annotations

from typing import Any

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
