"""
How deliveries to ``https://`` workers check the worker's certificate
(protocol B15): Twisted's L{BrowserLikePolicyForHTTPS}, which verifies the
chain against the trusted CAs and the URL's host name against the
certificate (service-identity), with either the system's CAs or those of
``dispatch_ca_file`` (a private CA).

The CA file is read here, when the first dispatcher is made, so that
nothing about certificates is parsed by a server that has none to trust.
"""

from __future__ import annotations

import re
from typing import Any, Dict

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL
)

_policies: Dict[str, Any] = {}


def https_policy(ca_file: str = "") -> Any:
    """
    The policy (an C{IPolicyForHTTPS}) of https deliveries: the system's
    trusted CAs, or only those in the PEM file ``ca_file``.  One policy per
    file, read once per process.
    """
    policy = _policies.get(ca_file)
    if policy is None:
        from twisted.web.client import BrowserLikePolicyForHTTPS

        if not ca_file:
            policy = BrowserLikePolicyForHTTPS()
        else:
            policy = BrowserLikePolicyForHTTPS(trustRoot=trust_root(ca_file))
        _policies[ca_file] = policy
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
