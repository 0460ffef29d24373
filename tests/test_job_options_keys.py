"""Tests for L{fireworq.store.idempotency.MemoryKeys}, the in-memory idempotency keys (B7)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from fireworq.store.idempotency import MemoryKeys, Replay


class MemoryKeysTests(SynchronousTestCase):
    def test_claim_record_replay(self) -> None:
        keys = MemoryKeys()
        self.assertEqual(keys.claim(["a", "b", "a"], now=1000, window_ms=500), {"a": None, "b": None})
        keys.record([("a", 1, '{"x":1}'), ("b", 2, "{}")])
        self.assertEqual(keys.claim(["a", "c"], now=1499, window_ms=500), {"a": Replay(1, '{"x":1}'), "c": None})
        self.assertEqual(len(keys), 3)

    def test_window_ends(self) -> None:
        keys = MemoryKeys()
        keys.claim(["a"], now=1000, window_ms=500)
        keys.record([("a", 1, "{}")])
        self.assertEqual(keys.claim(["a"], now=1500, window_ms=500), {"a": None})
        keys.record([("a", 2, "{}")])
        self.assertEqual(keys.claim(["a"], now=1600, window_ms=500), {"a": Replay(2, "{}")})

    def test_release(self) -> None:
        """A push that failed frees its keys; recorded keys stay."""
        keys = MemoryKeys()
        keys.claim(["a", "b"], now=0, window_ms=100)
        keys.record([("a", 1, "{}")])
        keys.release(["a", "b", "unknown"])
        self.assertEqual(keys.claim(["a", "b"], now=1, window_ms=100), {"a": Replay(1, "{}"), "b": None})

    def test_unrecorded_claim_is_free(self) -> None:
        """A claim never recorded nor released (a bug elsewhere) does not block the key."""
        keys = MemoryKeys()
        keys.claim(["a"], now=0, window_ms=100)
        self.assertEqual(keys.claim(["a"], now=1, window_ms=100), {"a": None})

    def test_delete_expired(self) -> None:
        keys = MemoryKeys()
        keys.claim([f"k{i}" for i in range(5)], now=0, window_ms=10)
        keys.claim(["live"], now=0, window_ms=1000)
        self.assertEqual(keys.delete_expired(now=10, batch=3), 3)
        self.assertEqual(keys.delete_expired(now=10, batch=3), 2)
        self.assertEqual(keys.delete_expired(now=10, batch=3), 0)
        self.assertEqual(len(keys), 1)
