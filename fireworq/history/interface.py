"""
L{IJobHistory}: what a job store offers for kept finished jobs (protocol
B8), beside L{fireworq.store.interface.IJobStore}.  The three stores
provide it (mixins L{fireworq.history.memory.MemoryHistory},
L{fireworq.store.sqlite.history.SqliteHistory},
L{fireworq.store.mysql.history.MySQLHistory}); a job is kept by
C{IJobStore.complete} when its L{fireworq.model.Completion} has
``keep_ms`` > 0, in the completion's transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional

from zope.interface import Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from fireworq.history.record import KeptJob
    from fireworq.model import Page, PageKey


class IJobHistory(Interface):
    """Kept finished jobs of every queue."""

    def find_kept(queue_name: str, job_id: int) -> "Deferred[Optional[KeptJob]]":
        """The kept finished job ``job_id`` (any state), or None."""

    def list_kept(queue_name: str, limit: int, start: "Optional[PageKey]") -> "Deferred[Page[KeptJob]]":
        """
        One page of the kept jobs whose state is ``completed``, newest first
        by (finished_at, job id); keys are (finished_at, job id), the page
        begins at ``start`` (inclusive) when given.
        """

    def delete_expired_history(queue_name: str, limit: int) -> "Deferred[int]":
        """Delete up to ``limit`` kept jobs whose retention ended; fire with how many."""

    def count_kept(queue_name: str) -> "Deferred[Dict[str, int]]":
        """How many kept jobs the queue has, by state (every state named, 0 included)."""
