"""
The in-memory driver: jobs, failure logs, queue definitions and routings in
plain Python data structures.  Nothing survives a restart.

Every method answers with an already-fired L{Deferred
<twisted.internet.defer.Deferred>}.  A queue's jobs are kept under its
exact name (L{MemoryJobStore.storage_key}), so queues whose names differ
only in case or punctuation never mix; jobs stay when a queue's definition
is deleted.

Each queue keeps its claimed and its grabbed jobs as sorted lists of
``(next_try, id)`` keys: a grab takes a prefix of the claimed list, counts
are two bisections, and an inspection page is a slice; only C{recover}
looks at every grabbed job.

  - L{queue}: L{QueueJobs <queue.QueueJobs>}, the jobs and failure log of
    one queue;
  - L{jobs}: L{MemoryJobStore}, made of one mixin per job: L{push},
    L{grab} (grab, release, recover), L{complete}, L{control} (purge,
    cancel, retry a failed job, expired keys), L{inspection} (look-ups,
    listings, counts) and L{fireworq.history.memory} (kept finished jobs);
  - L{repository}: L{MemoryRepository}.

The helpers it shares with the other drivers (refusing unstorable text,
the failure-log column, normalized definitions, the clock) are in
L{fireworq.store.common}.
"""

from fireworq.store.memory.jobs import MemoryJobStore
from fireworq.store.memory.repository import MemoryRepository

__all__ = ["MemoryJobStore", "MemoryRepository"]
