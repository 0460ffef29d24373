"""
The store boundary.  Everything outside L{fireworq.store} knows a store only
through these interfaces; a driver (in-memory, sqlite, mysql) is chosen once,
in L{fireworq.service}.

Every method returns a L{Deferred}; a store never blocks the reactor.  Times
are the store's own clock (the database clock for MySQL), in milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

import attr
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

from fireworq.model import (
    Completion,
    FailedJob,
    FailureOrder,
    Job,
    JobCounts,
    JobState,
    Page,
    PageKey,
    PushEntry,
    QueueDefinition,
    Routing,
)


class StoreUnavailable(Exception):
    """
    The store cannot be reached right now (database down, connection lost
    twice).  The HTTP API answers 503; the dispatcher pauses and retries.
    """


class JobTooLarge(ValueError):
    """
    A job is larger than the store can hold (MySQL: a row must fit in one
    statement of ``max_allowed_packet`` bytes).  The HTTP API answers 413.
    """


class CommitOutcomeUnknown(StoreUnavailable):
    """
    The connection was lost while committing: the change may or may not have
    been applied.  A push that ends so is answered 503 saying that the job may
    have been stored (a client that pushes again may get it twice).
    """


@attr.s(frozen=True, slots=True, auto_attribs=True)
class NodeInfo:
    """A server process, as ``/queue/{q}/node`` names it."""

    id: str
    host: str

    def to_json(self) -> dict:
        """The ``{"id", "host"}`` object of the node API."""
        return {"id": self.id, "host": self.host}


class IJobStore(Interface):
    """
    The jobs of every queue and their failure logs.

    A queue's jobs stay stored when its definition is deleted and are served
    again when a queue of the same name is defined.
    """

    name = Attribute("The driver name: 'in-memory', 'sqlite' or 'mysql'.")

    def storage_key(queue_name: str) -> str:
        """
        The key the store keeps the queue's jobs under (returned at once,
        not a Deferred).  Two queue names with the same key would share
        jobs, so the server refuses to define the second.  The in-memory
        and sqlite stores give every exact name a key of its own; MySQL
        keeps the original's table names (protocol A9), so there names
        that differ only in characters outside ``[0-9a-z_]`` (``queueA``
        and ``queueB``, ``my-q`` and ``my.q``) share a key.
        """

    def start() -> "Deferred[None]":
        """Connect and create any shared tables."""

    def stop() -> "Deferred[None]":
        """Close connections; pending calls finish first."""

    def ping() -> "Deferred[None]":
        """
        Check that the store answers.  Fails with L{StoreUnavailable} when it
        does not.
        """

    def prepare_queue(queue_name: str) -> "Deferred[None]":
        """
        Make the queue's storage exist (tables for MySQL).  Idempotent; called
        before any other method names the queue.
        """

    def push(entries: Sequence[PushEntry]) -> "Deferred[List[Job]]":
        """
        Store new jobs, possibly of several queues, in one transaction.  Each
        gets status ``claimed``, ``created_at`` = now, ``next_try`` = now +
        run_after * 1000, ``fail_count`` 0, ``retry_count`` = max_retries
        and ``attempts`` 0.
        Fires with the stored jobs, in the order given, once committed: a
        positive ``id`` unique within the queue, increasing in push order.
        Either every entry is stored or none is.

        An entry with a ``grabber_id`` is stored ``grabbed`` by that grabber
        instead, its first attempt counted (its node delivers it at once).
        A store that fences grabs with leases (MySQL) does so only while
        that grabber id is the queue's current lease epoch, and stores the
        job ``claimed`` otherwise; the returned job's status says which.

        A job whose options carry an idempotency key (B7) claims the key
        in its queue, race-free (two concurrent pushes of one key store one
        job).  When the key was used within the window, nothing is stored
        for that entry and its place in the result holds a
        L{fireworq.model.Replay} of the key's first push (the entry's
        ``answer`` is what a later replay of its key answers with); a key
        repeated within one push stores its first entry only.
        """

    def push_guarded(entry: PushEntry, guard: Any) -> "Deferred[Optional[Job]]":
        """
        Store one job (no idempotency key, not grabbed) only if
        ``guard.claim(cursor)`` answers True inside the push's transaction,
        then call ``guard.record(cursor, queue_name, job_id)`` in it too; fire
        with the job, or None when the claim refused
        (L{fireworq.schedules.model.IPushGuard}: a schedule's time and its
        job commit together, B10).
        """

    def grab(queue_name: str, limit: int, grabber_id: int) -> "Deferred[List[Job]]":
        """
        Take up to ``limit`` claimed jobs whose ``next_try`` has come, oldest
        ``next_try`` first (then lowest id), mark them ``grabbed`` with
        ``grabber_id``, count the attempt (``attempts`` = max(attempts,
        fail_count) + 1, in the same transaction) and fire with them
        (status ``grabbed``).
        """

    def complete(
        queue_name: str, completions: Sequence[Completion], grabber_id: int
    ) -> "Deferred[None]":
        """
        Apply the outcomes of finished deliveries in one transaction.  Only
        jobs still grabbed by ``grabber_id`` are touched (a job recovered by
        another node meanwhile is left alone):

          - SUCCESS deletes the job;
          - RETRY makes it ``claimed`` again with ``grabber_id`` NULL,
            ``next_try`` = now + retry_delay * 1000 (or + the completion's
            ``retry_wait_ms`` when set, B7), ``retry_count`` - 1,
            ``fail_count`` + 1;
          - CANCEL deletes the job without a failure-log entry (B9);
          - FAIL adds a failure-log entry (job id, category, url, payload,
            result as JSON, ``fail_count`` = job's + 1, ``failed_at`` = now,
            the job's ``created_at``) and deletes the job.
        """

    def release(
        queue_name: str, job_ids: Sequence[int], grabber_id: int
    ) -> "Deferred[int]":
        """
        Return jobs grabbed by ``grabber_id`` to ``claimed`` without changing
        their counters, the attempt their grab counted included (used when
        a delivery could not start, or on shutdown).
        Fires with the number of jobs released.
        """

    def recover(queue_name: str, grabber_id: int) -> "Deferred[int]":
        """
        Return a previous holder's grabbed jobs of the queue to ``claimed``;
        fires with the number of jobs recovered.  Which are a previous
        holder's depends on the store's grabber ids: in a single-node store
        (one process at a time, time-based id that may step back with the
        wall clock) every job not grabbed by ``grabber_id`` (or NULL); in a
        shared store whose ids are lease epochs (MySQL) only those grabbed
        under an OLDER epoch (below ``grabber_id``, or NULL) -- a higher
        epoch is a newer holder's, whose jobs stay its own.
        """

    def purge(queue_name: str) -> "Deferred[int]":
        """
        Delete the queue's claimed jobs (waiting and deferred; B9), not the
        grabbed ones; fire with how many were deleted.
        """

    def cancel_job(queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """
        Cancel a job (B9): a claimed job is deleted; a grabbed one is only
        marked canceled -- its holder aborts the delivery (L{canceling_jobs})
        and completes it as CANCEL -- and stays stored until then.  Fires
        with the job as it was (its status says which), or None.

        A job marked canceled is never retried nor written to the failure
        log: whatever completion arrives deletes it, and a release or a
        recovery deletes it too.
        """

    def canceling_jobs(queue_name: str, grabber_id: int) -> "Deferred[List[int]]":
        """Ids of the queue's jobs grabbed by ``grabber_id`` and marked canceled."""

    def find_job(queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """The job, or None when the queue holds no such job."""

    def delete_job(queue_name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """Delete the job; fire with it as it was, or None if absent."""

    def list_jobs(
        queue_name: str,
        state: JobState,
        limit: int,
        start: Optional[PageKey],
        descending: bool,
    ) -> "Deferred[Page[Job]]":
        """
        One page of the jobs in ``state``: GRABBED = status grabbed; WAITING
        = claimed with next_try <= now; DEFERRED = claimed with next_try >
        now.  Ordered by (next_try, id), ascending or descending; the page
        begins at ``start`` (inclusive) when given.  ``next_key`` is the key
        of the first job after the page, None on the last page.
        """

    def find_failed(
        queue_name: str, failure_id: int
    ) -> "Deferred[Optional[FailedJob]]":
        """The failure-log entry, or None."""

    def delete_failed(
        queue_name: str, failure_id: int
    ) -> "Deferred[Optional[FailedJob]]":
        """Delete the failure-log entry; fire with it as it was, or None."""

    def retry_failed(
        queue_name: str, failure_id: int
    ) -> "Deferred[Optional[Tuple[FailedJob, Job]]]":
        """
        In one transaction, delete the failure-log entry and push its job
        again to the same queue (L{FailedJob.as_new_job}: due now, claimed);
        fire with the entry as it was and the new job, or None when there is
        no such entry (never pushed, or already retried or deleted -- so two
        concurrent retries of one entry push it once).
        """

    def list_failed(
        queue_name: str, order: FailureOrder, limit: int, start: Optional[PageKey]
    ) -> "Deferred[Page[FailedJob]]":
        """
        One page of the failure log, newest first: by failure id (FAILED) or
        by (created_at, failure id) (CREATED).  Keys are (created_at, failure
        id) for both orders (FAILED compares only the id); the page begins at
        ``start`` (inclusive) when given.
        """

    def count_jobs(queue_name: str) -> "Deferred[JobCounts]":
        """How many jobs are waiting, deferred and grabbed (cheap: indexed)."""

    def delete_expired_keys(queue_name: str) -> "Deferred[int]":
        """
        Forget the queue's idempotency keys (B7) whose window
        (``idempotency_window_ms``, an attribute of the store) ended; fire
        with how many.  The node holding the queue's lease calls it now and
        then; a push of an expired key finds it free even before.
        """


class IRepository(Interface):
    """
    Queue definitions and routings.  Every change moves L{revision}, which
    other nodes poll.
    """

    def list_queues() -> "Deferred[List[QueueDefinition]]":
        """All queue definitions, by name."""

    def find_queue(name: str) -> "Deferred[Optional[QueueDefinition]]":
        """One definition, or None."""

    def put_queue(definition: QueueDefinition) -> "Deferred[bool]":
        """Create or replace; fire with whether anything changed."""

    def delete_queue(name: str) -> "Deferred[Optional[QueueDefinition]]":
        """Delete the definition (not its jobs); fire with it, or None."""

    def list_routings() -> "Deferred[List[Routing]]":
        """All routings, by category."""

    def find_routing(category: str) -> "Deferred[Optional[Routing]]":
        """One routing, or None."""

    def put_routing(routing: Routing) -> "Deferred[bool]":
        """Create or replace; fire with whether anything changed."""

    def delete_routing(category: str) -> "Deferred[Optional[Routing]]":
        """Delete the routing; fire with it, or None."""

    def revision() -> "Deferred[str]":
        """A token that changes whenever definitions or routings change."""
