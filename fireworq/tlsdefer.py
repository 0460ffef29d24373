"""
Keeping pyOpenSSL (and with it ``cryptography`` and ``service-identity``)
out of a server process until something needs TLS: about 13 MB of resident
memory that an idle server without TLS never uses.

Twisted imports them as soon as the reactor is imported
(C{twisted.internet.posixbase} tries C{twisted.protocols.tls}), and again
from C{twisted.internet.endpoints} and C{twisted.web.client}; each of those
imports is guarded (C{except ImportError}) and then leaves TLS out.  So
C{twistd fireworq} calls L{defer_openssl} once its options are parsed --
before twistd imports the reactor -- unless the API itself is served over
TLS (an ``ssl:`` bind, which needs the reactor's C{listenSSL}); and
L{allow_openssl} once the server's modules are imported.  From then on
C{OpenSSL} imports normally, when the first delivery to an ``https://``
worker needs it: the dispatcher's TLS path (L{fireworq.dispatch.tls}) uses
only modules it imports itself at that moment (C{twisted.internet.ssl},
C{twisted.protocols.tls}), never the reactor's or the endpoints module's
TLS support.

So a module that tries pyOpenSSL when it is imported (C{twisted.web.client}
among them) must be imported at start-up, while pyOpenSSL is kept out:
imported later, to save memory until first use, it would load pyOpenSSL
with it (tests/test_tls.py LazyTLSTests fails then).

This module imports nothing of Twisted.
"""

from __future__ import annotations

import sys

#: The module kept out.
MODULE = "OpenSSL"

_deferred = False


def defer_openssl() -> bool:
    """
    Make C{import OpenSSL} fail until L{allow_openssl}; True when done,
    False when it is too late (already imported, or the reactor is).
    """
    global _deferred
    if MODULE in sys.modules or "twisted.internet.reactor" in sys.modules:
        return False
    sys.modules[MODULE] = None  # type: ignore[assignment]
    _deferred = True
    return True


def allow_openssl() -> None:
    """Let C{import OpenSSL} work again (a real import, on first use)."""
    global _deferred
    if _deferred and MODULE in sys.modules and sys.modules[MODULE] is None:
        del sys.modules[MODULE]
    _deferred = False


def openssl_loaded() -> bool:
    """Whether pyOpenSSL has been imported in this process."""
    return sys.modules.get(MODULE) is not None
