"""
Read-mostly access to what the stores hold, for the HTTP API and the
metrics: the jobs and failure log of a queue, the stored queue definitions
and routings, whether the store answers and what it counts.

The web layer talks to the queue manager (to change things) and to an
L{IInspection} (to look at things); it never holds a store.  One
L{Inspection} is built next to the queue manager, over the same (observed)
stores, so a failed look-up is counted as a DB error like any other call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

from twisted.internet.defer import maybeDeferred
from zope.interface import Attribute, Interface, implementer

from fireworq.model import (
    FailedJob,
    FailureOrder,
    Job,
    JobCounts,
    JobState,
    Page,
    PageKey,
    QueueDefinition,
    Routing,
)

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred


class IQueueLookup(Interface):
    """What the inspection needs of the queue manager: is a queue defined."""

    def ensure_queue(name: str) -> "Deferred[QueueDefinition]":
        """
        The definition of ``name`` (from the manager's cache or the
        repository), failing with L{fireworq.manager.UndefinedQueue} when it
        is defined nowhere and L{fireworq.manager.NotReady} before the
        definitions are loaded.
        """


class IInspection(Interface):
    """Looking at stored jobs, failure logs, definitions and routings."""

    driver = Attribute("The job store's driver name: 'in-memory', 'sqlite' or 'mysql'.")
    galera = Attribute("The MySQL store's Galera node found at start (GaleraInfo), or None.")

    def ping() -> "Deferred[None]":
        """Fires when the job store answers; fails when it does not."""

    def list_jobs(
        queue_name: str, state: JobState, limit: int, start: Optional[PageKey], newest_first: bool
    ) -> "Deferred[Page]":
        """A page of a defined queue's jobs in ``state``."""

    def find_job(queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """A job of a defined queue, or None."""

    def delete_job(queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """Delete a job of a defined queue; the job as it was, or None."""

    def list_failed(
        queue_name: str, order: FailureOrder, limit: int, start: Optional[PageKey]
    ) -> "Deferred[Page]":
        """A page of a defined queue's failure log."""

    def find_failed(queue_name: str, failure_id: int) -> "Deferred[Optional[FailedJob]]":
        """A failure-log entry of a defined queue, or None."""

    def delete_failed(queue_name: str, failure_id: int) -> "Deferred[Optional[FailedJob]]":
        """Delete a failure-log entry; the entry as it was, or None."""

    def find_kept(queue_name: str, job_id: int) -> "Deferred[Any]":
        """A kept finished job (B8, L{fireworq.history.record.KeptJob}), or None."""

    def list_kept(queue_name: str, limit: int, start: Optional[PageKey]) -> "Deferred[Page]":
        """One page of the kept completed jobs, newest first (B8)."""

    def count_jobs(queue_name: str) -> "Deferred[JobCounts]":
        """How many jobs of the queue are in each state."""

    def list_queues() -> "Deferred[List[QueueDefinition]]":
        """Every stored queue definition, by name."""

    def find_queue(name: str) -> "Deferred[Optional[QueueDefinition]]":
        """A stored queue definition, or None."""

    def list_routings() -> "Deferred[List[Routing]]":
        """Every stored routing, by category."""

    def find_routing(category: str) -> "Deferred[Optional[Routing]]":
        """A stored routing, or None."""


@implementer(IInspection)
class Inspection:
    """
    L{IInspection} over a job store, a definition repository and the queue
    manager.  The job and failure-log calls first make sure the queue is
    defined (so an undefined queue is a 404 naming the queue, and a queue
    defined through another node is started here, as a push would).
    """

    def __init__(self, jobs: Any, repository: Any, queues: IQueueLookup) -> None:
        """
        @param jobs: the L{fireworq.store.interface.IJobStore}.
        @param repository: the L{fireworq.store.interface.IRepository}.
        @param queues: the queue manager.
        """
        self._jobs = jobs
        self._repository = repository
        self._queues = queues

    @property
    def driver(self) -> str:
        """The job store's driver name."""
        return self._jobs.name

    @property
    def galera(self) -> Any:
        """
        The job store's Galera node (a L{fireworq.store.mysql.pool.GaleraInfo}
        found at start), or None: not MySQL, or a single server.
        """
        return getattr(self._jobs, "galera", None)

    def ping(self) -> "Deferred[None]":
        return maybeDeferred(self._jobs.ping)

    def _defined(self, queue_name: str, call: Any, *args: Any) -> "Deferred[Any]":
        d = self._queues.ensure_queue(queue_name)
        d.addCallback(lambda _: call(queue_name, *args))
        return d

    def list_jobs(
        self,
        queue_name: str,
        state: JobState,
        limit: int,
        start: Optional[PageKey],
        newest_first: bool,
    ) -> "Deferred[Page]":
        return self._defined(queue_name, self._jobs.list_jobs, state, limit, start, newest_first)

    def find_job(self, queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        return self._defined(queue_name, self._jobs.find_job, job_id)

    def delete_job(self, queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        return self._defined(queue_name, self._jobs.delete_job, job_id)

    def list_failed(
        self, queue_name: str, order: FailureOrder, limit: int, start: Optional[PageKey]
    ) -> "Deferred[Page]":
        return self._defined(queue_name, self._jobs.list_failed, order, limit, start)

    def find_failed(self, queue_name: str, failure_id: int) -> "Deferred[Optional[FailedJob]]":
        return self._defined(queue_name, self._jobs.find_failed, failure_id)

    def delete_failed(self, queue_name: str, failure_id: int) -> "Deferred[Optional[FailedJob]]":
        return self._defined(queue_name, self._jobs.delete_failed, failure_id)

    def find_kept(self, queue_name: str, job_id: int) -> "Deferred[Any]":
        return self._defined(queue_name, self._jobs.find_kept, job_id)

    def list_kept(self, queue_name: str, limit: int, start: Optional[PageKey]) -> "Deferred[Page]":
        return self._defined(queue_name, self._jobs.list_kept, limit, start)

    def count_jobs(self, queue_name: str) -> "Deferred[JobCounts]":
        return self._jobs.count_jobs(queue_name)

    def list_queues(self) -> "Deferred[List[QueueDefinition]]":
        return self._repository.list_queues()

    def find_queue(self, name: str) -> "Deferred[Optional[QueueDefinition]]":
        return self._repository.find_queue(name)

    def list_routings(self) -> "Deferred[List[Routing]]":
        return self._repository.list_routings()

    def find_routing(self, category: str) -> "Deferred[Optional[Routing]]":
        return self._repository.find_routing(category)
