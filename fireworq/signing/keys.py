"""
Standard Webhooks secrets and a queue's signing keys.

A secret is ``whsec_`` followed by the base64 of 32 random bytes, made by
the server (L{new_secret}); the HMAC key is the decoded bytes.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Optional, Tuple

import attr

#: The prefix of a Standard Webhooks secret.
SECRET_PREFIX = "whsec_"

#: Random bytes in a secret made by the server.
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 bytes from the OS's CSPRNG."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The HMAC key of ``secret`` (a ``whsec_`` string); ValueError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a signing secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a signing secret must not be empty")
    return key


@attr.s(frozen=True, slots=True, auto_attribs=True, repr=False)
class SigningKeys:
    """
    The signing secrets of one queue: ``current`` signs every delivery;
    ``previous`` (the secret before the last rotation) signs too until
    ``previous_expires_at`` (ms since the epoch).  ``enabled`` is whether
    the queue's definition asks for signing; the secrets of a queue whose
    signing was turned off are kept, so that turning it on again restores
    them.
    """

    queue_name: str
    current: str
    previous: Optional[str] = None
    previous_expires_at: Optional[int] = None
    enabled: bool = True

    def __repr__(self) -> str:
        # Never the secrets: a repr may end up in a log line.
        return f"SigningKeys(queue_name={self.queue_name!r}, enabled={self.enabled!r})"

    def previous_active(self, now_ms: int) -> bool:
        """Whether the previous secret still signs at ``now_ms``."""
        return (
            self.previous is not None
            and self.previous_expires_at is not None
            and now_ms < self.previous_expires_at
        )

    def rotated(self, now_ms: int, overlap_ms: int) -> "SigningKeys":
        """These keys after a rotation at ``now_ms``: a new current secret,
        the old one previous for ``overlap_ms``."""
        if overlap_ms <= 0:
            return attr.evolve(self, current=new_secret(), previous=None, previous_expires_at=None)
        return attr.evolve(
            self,
            current=new_secret(),
            previous=self.current,
            previous_expires_at=now_ms + overlap_ms,
        )

    def shown(self, now_ms: int) -> "SigningKeys":
        """These keys as the API shows them at ``now_ms``: an expired previous secret left out."""
        if self.previous is not None and not self.previous_active(now_ms):
            return attr.evolve(self, previous=None, previous_expires_at=None)
        return self


def switched(
    keys: Optional[SigningKeys], queue_name: str, enabled: bool
) -> Tuple[Optional[SigningKeys], bool]:
    """
    The keys of ``queue_name`` after turning its signing on or off (its
    stored ``keys``, or None), and whether they changed (must be written):
    turning on a queue without keys makes a fresh secret; turning off keeps
    the secrets; turning off a queue without keys leaves nothing (None).
    Every key store's C{enable} decides through this.
    """
    if keys is None:
        if not enabled:
            return None, False
        return SigningKeys(queue_name, new_secret()), True
    if keys.enabled == enabled:
        return keys, False
    return attr.evolve(keys, enabled=enabled), True
