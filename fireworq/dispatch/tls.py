"""
How deliveries to ``https://`` workers check the worker's certificate
(protocol B15): as Twisted's C{BrowserLikePolicyForHTTPS} does -- the chain
against the trusted CAs, the URL's host name against the certificate
(service-identity) -- with either the system's CAs or those of
``dispatch_ca_file`` (a private CA).

Every TLS module is imported on the first https delivery, not before (see
L{fireworq.tlsdefer}: an idle server without TLS saves about 13 MB), and the
CA file is read then too.
"""

from __future__ import annotations

import re
from typing import Any, Dict

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)

_policies: Dict[str, Any] = {}


@implementer(IPolicyForHTTPS)
class HTTPSPolicy:
    """
    The checks of Twisted's C{BrowserLikePolicyForHTTPS} (the chain up to a
    trusted CA, the host name by service-identity, through
    C{optionsForClientTLS}), with the TLS modules imported on first use
    (see L{fireworq.tlsdefer}).

    @param ca_file: a PEM file of the only CAs to trust; '' for the system's.
    """

    def __init__(self, ca_file: str = "") -> None:
        self.ca_file = ca_file
        self._trust: Any = None

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """The TLS connection creator for a worker at ``hostname``."""
        from twisted.internet.ssl import optionsForClientTLS

        if self.ca_file and self._trust is None:
            self._trust = trust_root(self.ca_file)
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trust)


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """
    Connects through ``endpoint`` and speaks TLS over it (as Twisted's
    C{wrapClientTLS}, whose module may have been imported without TLS).
    """

    def __init__(self, creator: Any, endpoint: IStreamClientEndpoint) -> None:
        self._creator = creator
        self._endpoint = endpoint

    def connect(self, protocolFactory: Any) -> Deferred:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(self._creator, True, protocolFactory)
        factory.noisy = False
        d = self._endpoint.connect(factory)
        d.addCallback(lambda protocol: protocol.wrappedProtocol)
        return d


def https_policy(ca_file: str = "") -> HTTPSPolicy:
    """The policy of https deliveries (one per CA file and process)."""
    policy = _policies.get(ca_file)
    if policy is None:
        policy = _policies[ca_file] = HTTPSPolicy(ca_file)
    return policy


def trust_root(ca_file: str) -> Any:
    """The certificates of the PEM file ``ca_file`` as a Twisted trust root."""
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    with open(ca_file, "rb") as f:
        pem = f.read()
    certificates = [Certificate.loadPEM(m.group(0)) for m in _PEM_CERTIFICATE.finditer(pem)]
    if not certificates:
        raise ValueError(f"{ca_file} holds no PEM certificate")
    return trustRootFromCertificates(certificates)


def is_certificate_problem(error: BaseException) -> bool:
    """
    Whether ``error`` is a refused TLS handshake or certificate (OpenSSL's
    verification, or service-identity's host name check), told by the
    error's module so that nothing TLS is imported to ask.
    """
    module = type(error).__module__ or ""
    return module.startswith(("OpenSSL", "service_identity"))


def certificate_refused(failure: Any) -> bool:
    """
    Whether a delivery's ``failure`` (a L{Failure}, maybe wrapping others as
    twisted.web does) comes from a refused TLS certificate.
    """
    if is_certificate_problem(failure.value):
        return True
    return any(certificate_refused(r) for r in getattr(failure.value, "reasons", None) or [])
