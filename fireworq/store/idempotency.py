"""
Idempotency keys of pushed jobs (protocol B7), the part every store
shares: the L{Replay} of a key already used, and L{MemoryKeys}, the
in-memory store's key table (the MySQL one is
L{fireworq.store.mysql.idempotency}; SQLite keeps the same table as MySQL).

Within one queue, a push whose key was used in the last window stores
nothing and is answered with the first push's answer.  The stores keep
that answer as JSON text without its C{"id"} (the web layer writes it
before the store knows the id), and the job id beside it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import attr


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Replay:
    """
    A key already used within its window: the id of the job its first push
    stored and that push's answer (JSON text without C{"id"}).
    """

    job_id: int
    answer: str


@attr.s(slots=True, auto_attribs=True)
class _Entry:
    expires_at: int
    job_id: Optional[int] = None
    answer: str = "{}"


class MemoryKeys:
    """
    The idempotency keys of one queue in memory, with the same steps as
    the MySQL table: L{claim}, then L{record} the claimed keys' jobs (or
    L{release} them when the push fails), and L{delete_expired} now and
    then.  The in-memory store runs in the reactor thread, so a claim and
    its record cannot interleave with another push.
    """

    def __init__(self) -> None:
        self._entries: Dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, keys: Sequence[str], now: int, window_ms: int) -> Dict[str, Optional[Replay]]:
        """
        Each distinct key of ``keys``: C{None} when it is free (now claimed
        until L{record} or L{release}), else the L{Replay} of its first
        push within ``window_ms`` before ``now`` (ms).
        """
        out: Dict[str, Optional[Replay]] = {}
        for key in keys:
            if key in out:
                continue
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at <= now:
                entry = None
            if entry is None or entry.job_id is None:
                # Free, or claimed by a push that never recorded (released).
                self._entries[key] = _Entry(expires_at=now + window_ms)
                out[key] = None
            else:
                out[key] = Replay(entry.job_id, entry.answer)
        return out

    def record(self, records: Sequence[Tuple[str, int, str]]) -> None:
        """Store each claimed key's job id and push answer."""
        for key, job_id, answer in records:
            entry = self._entries[key]
            entry.job_id = job_id
            entry.answer = answer

    def release(self, keys: Sequence[str]) -> None:
        """Free claimed keys whose push failed (nothing was stored)."""
        for key in keys:
            entry = self._entries.get(key)
            if entry is not None and entry.job_id is None:
                del self._entries[key]

    def delete_expired(self, now: int, batch: int = 1000) -> int:
        """Delete up to ``batch`` keys whose window ended at ``now``; return how many."""
        expired: List[str] = []
        for key, entry in self._entries.items():
            if entry.expires_at <= now:
                expired.append(key)
                if len(expired) >= batch:
                    break
        for key in expired:
            del self._entries[key]
        return len(expired)
