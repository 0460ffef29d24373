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

from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attr

if TYPE_CHECKING:
    from fireworq.model import Job, PushEntry


from fireworq.model import Replay  # noqa: E402  (the value lives with the other values)


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


#: Default length of the window of a key: 24 hours, in ms (the server
#: setting ``idempotency_window`` overrides it).
DEFAULT_WINDOW_MS = 24 * 3600 * 1000

#: What a push keeps for one entry: C{None} to store it, a L{Replay} to
#: answer with instead, or the index of an earlier entry of the same push
#: that carries the same key (answer with that entry's job).
Plan = List[Union[None, Replay, int]]


def keys_by_queue(entries: Sequence["PushEntry"]) -> Dict[str, List[str]]:
    """The distinct idempotency keys of a push, per queue (empty for a push without keys)."""
    out: Dict[str, List[str]] = {}
    for entry in entries:
        key = entry.job.options.idempotency_key
        if key is not None:
            keys = out.setdefault(entry.queue_name, [])
            if key not in keys:
                keys.append(key)
    return out


def plan_push(entries: Sequence["PushEntry"], replays: Mapping[Tuple[str, str], Optional[Replay]]) -> Plan:
    """
    Decide, for each entry of a push, whether to store it: ``replays``
    maps (queue name, key) to C{None} when the push claimed the key, or to
    the L{Replay} of the push that used it.  The first entry of a claimed
    key is stored; later entries of the same key answer with its job.
    """
    plan: Plan = []
    first: Dict[Tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        key = entry.job.options.idempotency_key
        if key is None:
            plan.append(None)
            continue
        name = (entry.queue_name, key)
        replay = replays.get(name)
        if replay is not None:
            plan.append(replay)
        elif name in first:
            plan.append(first[name])
        else:
            first[name] = index
            plan.append(None)
    return plan


def push_results(
    entries: Sequence["PushEntry"], plan: Plan, stored: Mapping[int, "Job"]
) -> Tuple[List[Union["Job", Replay]], Dict[str, List[Tuple[str, int, str]]]]:
    """
    The answer of a push planned by L{plan_push} whose stored entries
    became ``stored`` (index -> job): per entry, the stored L{Job} or the
    L{Replay} to answer with; and per queue, the (key, job id, answer)
    records of the keys it claimed.
    """
    results: List[Union["Job", Replay]] = []
    records: Dict[str, List[Tuple[str, int, str]]] = {}
    for index, (entry, step) in enumerate(zip(entries, plan)):
        if step is None:
            job = stored[index]
            results.append(job)
            key = entry.job.options.idempotency_key
            if key is not None:
                records.setdefault(entry.queue_name, []).append((key, job.id, entry.answer or "{}"))
        elif isinstance(step, Replay):
            results.append(step)
        else:
            results.append(Replay(stored[step].id, entries[step].answer or "{}"))
    return results, records
