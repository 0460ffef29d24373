"""
The Standard Webhooks headers of one delivery (protocol B11):

  - ``webhook-id``: ``<queue>:<job id>``, the same for every attempt;
  - ``webhook-timestamp``: Unix seconds when the request is sent;
  - ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``,
    one per active secret, separated by spaces.

The HMAC is the standard library's (C{hmac.digest}, OpenSSL's one-shot
HMAC): one call per secret over the body, no Python-level loop.
"""

from __future__ import annotations

import base64
import hmac
from typing import Dict, List, Optional

from fireworq.signing.keys import SigningKeys, decode_secret


class Signer:
    """
    Signs the deliveries of one queue with its decoded keys (decoded once,
    when the keys are loaded, not per delivery).
    """

    __slots__ = ("keys", "_queue", "_current", "_previous", "_previous_until")

    def __init__(self, keys: SigningKeys) -> None:
        self.keys = keys
        self._queue = keys.queue_name.encode("utf-8") + b":"
        self._current = decode_secret(keys.current)
        self._previous: Optional[bytes] = None
        self._previous_until = 0.0
        if keys.previous is not None and keys.previous_expires_at is not None:
            self._previous = decode_secret(keys.previous)
            self._previous_until = keys.previous_expires_at / 1000.0

    def webhook_id(self, job_id: int) -> bytes:
        """The ``webhook-id`` of a job of this queue."""
        return self._queue + b"%d" % job_id

    def headers(self, job_id: int, body: bytes, now: float) -> Dict[bytes, List[bytes]]:
        """The three ``webhook-*`` headers of a delivery of ``body`` sent at ``now`` (Unix seconds)."""
        msg_id = self.webhook_id(job_id)
        stamp = b"%d" % int(now)
        signed = b"%s.%s.%s" % (msg_id, stamp, body)
        signature = b"v1," + base64.b64encode(hmac.digest(self._current, signed, "sha256"))
        if self._previous is not None and now < self._previous_until:
            signature += b" v1," + base64.b64encode(hmac.digest(self._previous, signed, "sha256"))
        return {
            b"webhook-id": [msg_id],
            b"webhook-timestamp": [stamp],
            b"webhook-signature": [signature],
        }
