"""
Helpers for workers: verify a signed delivery (B11, Standard Webhooks) and
read the ``X-Fireworq-*`` headers of a delivery (B3).

Verification is written here (a few lines of ``hmac``) rather than taken
from the ``standardwebhooks`` package so that workers need nothing beyond
this package, and so that several secrets (the current and the previous one
during a key rotation) can be tried; the tests check it against signatures
made by ``standardwebhooks``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import attr

from fireworq.client.errors import SignatureError

#: Seconds a delivery's ``webhook-timestamp`` may be off from now (the
#: Standard Webhooks default, 5 minutes).
DEFAULT_TOLERANCE = 300

#: The prefix of a Standard Webhooks secret.
SECRET_PREFIX = "whsec_"

Headers = Union[Mapping[str, Any], Iterable[Tuple[Any, Any]]]


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple)):  # e.g. Twisted's getRawHeaders
        return _text(value[0]) if value else ""
    return str(value)


def normalize_headers(headers: Headers) -> dict:
    """Header names lower-cased, values as text: from a dict, a list of pairs, or httpx/Twisted-like mappings."""
    items = headers.items() if hasattr(headers, "items") else headers
    return {_text(name).lower(): _text(value) for name, value in items}


def decode_secret(secret: Union[str, bytes]) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (raw bytes are taken as the key)."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"a signing secret must be whsec_ followed by base64: {e}") from None
    if not key:
        raise ValueError("a signing secret must not be empty")
    return key


def sign(secret: Union[str, bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The signature ``v1,<base64>`` of ``body`` as the server makes it."""
    message = f"{webhook_id}.{timestamp}.".encode("utf-8") + body
    digest = hmac.new(decode_secret(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookVerifier:
    """
    Verifies signed deliveries (B11): ``WebhookVerifier(secret)`` or a list
    of secrets (the current and the previous one while a rotation
    overlaps).  ``tolerance`` is how many seconds the timestamp may be off.
    """

    def __init__(self, secrets: Union[str, bytes, Sequence[Union[str, bytes]]], tolerance: float = DEFAULT_TOLERANCE) -> None:
        if isinstance(secrets, (str, bytes)):
            secrets = [secrets]
        self._keys: List[bytes] = [decode_secret(s) for s in secrets if s]
        if not self._keys:
            raise ValueError("at least one signing secret is needed")
        self.tolerance = tolerance

    @classmethod
    def from_signing_key(cls, answer: Mapping[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> "WebhookVerifier":
        """
        A verifier for the answer of ``Client.signing_key(queue)`` (or of a
        rotation): the current secret and, while a rotation overlaps, the
        previous one.
        """
        secrets = [answer.get("current"), answer.get("previous")]
        return cls([s for s in secrets if s], tolerance)

    def verify(self, body: Union[bytes, str], headers: Headers, now: Optional[float] = None) -> None:
        """
        Check the ``webhook-*`` headers of a delivery against its raw
        ``body``; raise L{SignatureError} saying why when it does not verify.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        h = normalize_headers(headers)
        webhook_id = h.get("webhook-id")
        stamp = h.get("webhook-timestamp")
        signatures = h.get("webhook-signature")
        missing = [n for n, v in (("webhook-id", webhook_id), ("webhook-timestamp", stamp), ("webhook-signature", signatures)) if not v]
        if missing:
            raise SignatureError(f"missing header {', '.join(missing)}")
        try:
            timestamp = int(stamp)  # type: ignore[arg-type]
        except ValueError:
            raise SignatureError(f"webhook-timestamp is not a whole number of seconds: {stamp!r}") from None
        current = time.time() if now is None else now
        if timestamp < current - self.tolerance:
            raise SignatureError(f"webhook-timestamp is {int(current - timestamp)} s old (tolerance {self.tolerance:g} s)")
        if timestamp > current + self.tolerance:
            raise SignatureError(f"webhook-timestamp is {int(timestamp - current)} s in the future (tolerance {self.tolerance:g} s)")
        message = f"{webhook_id}.{timestamp}.".encode("utf-8") + body
        expected = [hmac.new(key, message, hashlib.sha256).digest() for key in self._keys]
        for candidate in signatures.split():  # type: ignore[union-attr]
            version, _, encoded = candidate.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            if any(hmac.compare_digest(given, e) for e in expected):
                return
        raise SignatureError("no signature matches the body and the secret")


@attr.s(auto_attribs=True, frozen=True)
class Delivery:
    """
    What a delivery's headers say (B3): the ``job_id`` in ``queue``, its
    ``category``, the ``attempt`` (1 on the first try) and, on a signed
    queue, ``webhook_id`` (``<queue>:<job id>``, the same on every retry)
    and ``timestamp``.  A missing header reads as None.
    """

    job_id: Optional[int]
    queue: Optional[str]
    category: Optional[str]
    attempt: Optional[int]
    webhook_id: Optional[str] = None
    timestamp: Optional[int] = None

    @property
    def key(self) -> Optional[str]:
        """A key for idempotent handling: ``<queue>:<job id>`` (the same on every retry)."""
        if self.webhook_id:
            return self.webhook_id
        if self.queue is None or self.job_id is None:
            return None
        return f"{self.queue}:{self.job_id}"


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_delivery(headers: Headers) -> Delivery:
    """The L{Delivery} of a request's headers (any mapping or list of pairs)."""
    h = normalize_headers(headers)
    return Delivery(
        job_id=_int(h.get("x-fireworq-job-id")),
        queue=h.get("x-fireworq-queue"),
        category=h.get("x-fireworq-category"),
        attempt=_int(h.get("x-fireworq-attempt")),
        webhook_id=h.get("webhook-id"),
        timestamp=_int(h.get("webhook-timestamp")),
    )


#: The answers a worker gives (A1).
def success(message: str = "") -> dict:
    """The answer body of a handled job: ``{"status": "success"}``."""
    return {"status": "success", "message": message} if message else {"status": "success"}


def failure(message: str = "", permanent: bool = False) -> dict:
    """The answer body of a failed job: retried, or never with ``permanent``."""
    body = {"status": "permanent-failure" if permanent else "failure"}
    if message:
        body["message"] = message
    return body
