"""L{ISigningKeyStore}: where the signing secrets of queues are kept."""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.defer import Deferred
from zope.interface import Interface

from fireworq.signing.keys import SigningKeys


class ISigningKeyStore(Interface):
    """
    The signing keys of queues, shared by every node of the store.  Every
    call answers a Deferred; a database problem fails it with
    L{StoreUnavailable <fireworq.store.interface.StoreUnavailable>}.
    """

    def start() -> "Deferred[None]":
        """Take hold of the database (opened by the driver's job store)."""

    def prepare() -> "Deferred[None]":
        """Create the table if missing (repeatable)."""

    def stop() -> "Deferred[None]":
        """Let go of the database."""

    def load_all() -> "Deferred[List[SigningKeys]]":
        """The keys of every queue whose signing is on."""

    def find(queue_name: str) -> "Deferred[Optional[SigningKeys]]":
        """The keys of ``queue_name`` (also when its signing is off), or None."""

    def enable(queue_name: str, enabled: bool) -> "Deferred[Optional[SigningKeys]]":
        """
        Turn signing on (making a secret if the queue has none; a queue
        that had one keeps it) or off (the secrets are kept); fire with the
        keys (None when turning off a queue that never had any).
        """

    def rotate(queue_name: str, now_ms: int, overlap_ms: int) -> "Deferred[Optional[SigningKeys]]":
        """
        Make a new current secret for a queue whose signing is on; the old
        one stays as the previous secret for ``overlap_ms``.  Fire with the
        new keys, or None when the queue's signing is off.
        """

    def forget(queue_name: str) -> "Deferred[None]":
        """Delete the keys of a deleted queue."""
