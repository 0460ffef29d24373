"""
API tokens: what a token is (L{Token}), how its secret is made and hashed,
and how a ``POST /tokens`` body is checked.

A token's secret is ``fwq_`` followed by 32 random bytes in URL-safe
base64 (256 bits from L{secrets}); only its SHA-256 digest is stored.  A
fast unkeyed hash is enough for secrets of that entropy: nobody can try
2**256 guesses, so a slow hash (bcrypt, argon2) would only make every
request slower, and a keyed hash (HMAC with a server pepper) would add a
second secret that every node must share without protecting anything a
256-bit secret does not (docs/security.md, "How tokens are stored").
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
from typing import Any, Dict, FrozenSet, Optional, Tuple

import attr

#: The scopes a token can have.
PUSH = "push"
READ = "read"
ADMIN = "admin"
SCOPES: Tuple[str, ...] = (PUSH, READ, ADMIN)

#: The prefix of every secret (lets secret scanners and people recognise one).
SECRET_PREFIX = "fwq_"

#: Bounds of the fields of a token.
MAX_NAME_BYTES = 255
MAX_GLOB_BYTES = 255
MAX_RATE = 1_000_000.0
MIN_RATE = 0.001
MAX_BURST = 1_000_000

#: The fields of a ``POST /tokens`` body.
TOKEN_FIELDS: Tuple[str, ...] = ("name", "scopes", "queues", "rate", "burst")

#: The id of the token given by the ``admin_token`` setting.
BOOTSTRAP_ID = "bootstrap"


class InvalidToken(ValueError):
    """A token request names a bad field (the message says which)."""


def new_secret() -> str:
    """A fresh token secret (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    """A fresh public token id (not secret: it names the token in the API)."""
    return secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its SHA-256 digest in hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Token:
    """
    One API token, without its secret.

    @ivar queues: a glob (``fnmatch`` syntax, case-sensitive) of the queues
        the token may see and push to -- a tenant; None for all queues.
    @ivar rate: requests per second on each node (token bucket), None for
        no limit; ``burst`` is the bucket's size.
    """

    id: str
    name: str
    scopes: FrozenSet[str]
    secret_hash: str = attr.ib(repr=False)
    queues: Optional[str] = None
    rate: Optional[float] = None
    burst: Optional[int] = None
    created_at: int = 0

    def allows(self, scope: str) -> bool:
        """Whether the token's scopes allow a call that needs ``scope``."""
        return ADMIN in self.scopes or scope in self.scopes

    @property
    def restricted(self) -> bool:
        """Whether the token sees only some queues."""
        return self.queues is not None

    def sees(self, queue_name: str) -> bool:
        """Whether the queue ``queue_name`` is inside the token's ``queues``."""
        return self.queues is None or fnmatch.fnmatchcase(queue_name, self.queues)

    def to_json(self) -> Dict[str, Any]:
        """The token as the API shows it (never the secret or its hash)."""
        # Every field is named, null when unset (B14: "answers 201 with
        # id, token and the rest"), so clients need not guess.
        rate = self.rate
        out: Dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "scopes": [s for s in SCOPES if s in self.scopes],
            "queues": self.queues,
            "rate": None if rate is None else (int(rate) if float(rate).is_integer() else rate),
            "burst": None if rate is None else self.burst,
        }
        if self.created_at:
            out["created_at"] = self.created_at
        return out


def _text(body: Dict[str, Any], name: str, required: bool, limit: int) -> Optional[str]:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidToken(f"field {name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidToken(f"field {name} must be a string")
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise InvalidToken(f"field {name} may take at most {limit} bytes")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidToken(f"field {name} must not contain control characters")
    return value


def parse_token_request(body: Dict[str, Any], now_ms: int) -> Tuple[Token, str]:
    """
    Check a ``POST /tokens`` body and make the token: returns it and its
    secret (to be shown once).

    @raise InvalidToken: naming the first bad field.
    """
    for field in body:
        if field not in TOKEN_FIELDS:
            # Refused rather than ignored: a mistyped "queue" would make a
            # token for every queue.
            raise InvalidToken(f"field {field} is not a token field ({', '.join(TOKEN_FIELDS)})")
    name = _text(body, "name", True, MAX_NAME_BYTES)
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise InvalidToken("field scopes must be a non-empty array of push, read and admin")
    for scope in scopes:
        if scope not in SCOPES:
            raise InvalidToken(f"field scopes: {scope!r} is not a scope (push, read or admin)")
    if body.get("queues") == "":
        # Not "every queue": a tenant's glob left empty must not widen it.
        raise InvalidToken("field queues must not be empty (leave it out for every queue)")
    queues = _text(body, "queues", False, MAX_GLOB_BYTES)
    rate = body.get("rate")
    burst = body.get("burst")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not MIN_RATE <= float(rate) <= MAX_RATE:
            raise InvalidToken(f"field rate must be a number of requests per second from {MIN_RATE} to {int(MAX_RATE)}")
        rate = float(rate)
    if burst is not None:
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
            raise InvalidToken(f"field burst must be a whole number from 1 to {MAX_BURST}")
        if rate is None:
            raise InvalidToken("field burst cannot be set without rate")
    if rate is not None and burst is None:
        burst = max(1, int(rate + 0.999999))
    secret = new_secret()
    token = Token(
        id=new_id(),
        name=name or "",
        scopes=frozenset(scopes),
        secret_hash=hash_secret(secret),
        queues=queues,
        rate=rate,
        burst=burst,
        created_at=now_ms,
    )
    return token, secret
