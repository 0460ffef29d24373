"""
A throwaway certificate authority for TLS tests, made with the
``cryptography`` package: a CA certificate and server certificates it
signs, written as PEM files into a directory of the test.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import List, Tuple

import attr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@attr.s(auto_attribs=True, frozen=True)
class ServerCertificate:
    """PEM files of a server: its key and its certificate (signed by the CA)."""

    key_path: str
    cert_path: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ThrowawayCA:
    """A CA whose certificate is ``ca_path``; L{issue} makes server certificates."""

    def __init__(self, directory: str, name: str = "Fireworq test CA") -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        safe = name.replace(" ", "_")
        self.ca_path = _write(
            os.path.join(directory, f"{safe}.pem"), self.cert.public_bytes(serialization.Encoding.PEM)
        )

    def issue(self, dns_names: List[str], ips: Tuple[str, ...] = ()) -> ServerCertificate:
        """A server key and certificate for ``dns_names`` (and ``ips``), signed by this CA."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        names: list = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = os.path.join(self.directory, dns_names[0].replace("*", "_"))
        return ServerCertificate(
            key_path=_write(stem + ".key.pem", _key_pem(key)),
            cert_path=_write(stem + ".cert.pem", cert.public_bytes(serialization.Encoding.PEM)),
        )
