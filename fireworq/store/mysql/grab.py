"""
Dispatching from the MySQL job store: L{MySQLGrab} grabs due jobs and
gives grabbed jobs back (released by their holder, recovered from an
older lease epoch).

A grab is the priorities that have claimed jobs (a loose index scan of
``grab_priority``, one entry per priority), then per due priority, highest
first, SELECT ... FOR UPDATE of its due jobs in (next_try, job_id) order
through that index until the grab is full (one range for a queue without
priorities; L{fireworq.store.priority}), and one UPDATE of their status and
attempt count (our ``attempts`` column, see L{schema.ATTEMPTS_COLUMN
<fireworq.store.mysql.schema.ATTEMPTS_COLUMN>}).  A queue whose claimed
jobs had one priority at its last grab (every queue without priorities)
folds the two steps into one statement (L{MySQLGrab._grab_by_priority}), so
that its grab costs what the original's does: one SELECT and one UPDATE.

A mixin of L{MySQLJobStore <fireworq.store.mysql.jobs.MySQLJobStore>},
which provides C{_run}, C{_now}, C{_log}, C{_fence}, the table facts of
L{fireworq.store.mysql.tables} and C{galera}.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import attr
from twisted.internet.defer import Deferred, succeed

from fireworq.model import Job, JobStatus
from fireworq.store.common import attempts_at_grab
from fireworq.store.mysql.pool import CommitOutcomeUnknown
from fireworq.store.mysql.rows import job_from_row, placeholders
from fireworq.store.mysql.schema import NOW_MS, job_table
from fireworq.store.priority import due_priorities, mysql_grab_sql, mysql_lone_grab_sql, mysql_priorities_sql

#: Later than any time: step 1 of the grab has filtered the due priorities.
_ANY_TIME = 2**63


class MySQLGrab:
    """Grabbing due jobs, and returning grabbed ones to the queue."""

    # Provided by MySQLJobStore.
    _run: Any
    _now: Any
    _log: Any
    _fence: bool
    _counts: Any
    _optioned: Any
    _columns: Any
    _lone_priority: Dict[str, int]
    galera: Any

    def grab(self, queue_name: str, limit: int, grabber_id: int) -> Deferred:
        galera = self.galera
        if galera is not None and galera.max_ws_rows:
            limit = min(limit, galera.max_ws_rows)  # one row changed per job
        if limit <= 0:
            return succeed([])
        table = job_table(queue_name)
        selected: List[int] = []
        now = self._now()

        def work(cursor: Any) -> List[Job]:
            del selected[:]
            if self._fence:
                # A shared lock on the lease row: a takeover (which updates
                # the row) waits for this grab's commit and then recovers
                # what it grabbed, so nothing stays grabbed under an old epoch.
                cursor.execute(
                    f"SELECT epoch FROM `fireworq_lease` WHERE name = %s AND expires_at > {NOW_MS} "
                    "LOCK IN SHARE MODE",
                    (queue_name,),
                )
                row = cursor.fetchone()
                if row is None or int(row[0]) != grabber_id:
                    return []
            counted = self._counts(queue_name)
            columns = self._columns(queue_name)
            if self._optioned(queue_name):
                jobs = self._grab_by_priority(cursor, queue_name, table, columns, now, limit)
            else:
                cursor.execute(
                    f"SELECT {columns} FROM {table} FORCE INDEX (`grab`) "
                    f"WHERE status = 'claimed' AND next_try <= {now} "
                    f"ORDER BY next_try, job_id LIMIT {int(limit)} FOR UPDATE"
                )
                jobs = [job_from_row(row) for row in cursor.fetchall()]
            if not jobs:
                return []
            ids = [job.id for job in jobs]
            cursor.execute(
                f"UPDATE {table} SET status = 'grabbed', grabber_id = %s"
                f"{', attempts = GREATEST(attempts, fail_count) + 1' if counted else ''} "
                f"WHERE job_id IN ({placeholders(len(ids))})",
                [grabber_id] + ids,
            )
            selected.extend(ids)
            grabbed = JobStatus.GRABBED.value
            return [
                attr.evolve(
                    j, status=grabbed, grabber_id=grabber_id,
                    attempts=attempts_at_grab(j.attempts, j.fail_count),
                )
                for j in jobs
            ]

        d = self._run([queue_name], work, idempotent=False, what=f"grab from {queue_name!r}")

        def unknown(failure: Any) -> Any:
            # The grab may have been committed with nobody to deliver its
            # jobs: put them back (a no-op if it was not committed).
            failure.trap(CommitOutcomeUnknown)
            ids = list(selected)
            if not ids:
                return failure
            undo = self.release(queue_name, ids, grabber_id)
            undo.addErrback(
                lambda f: self._log.warn(
                    "Jobs {ids} of queue {queue} may stay grabbed until the next lease takeover: {why}",
                    ids=ids, queue=queue_name, why=f.getErrorMessage(),
                )
            )
            undo.addBoth(lambda _: failure)
            return undo

        d.addErrback(unknown)
        return d

    def _grab_by_priority(
        self, cursor: Any, queue_name: str, table: str, columns: str, now: str, limit: int
    ) -> List[Job]:
        """
        The due jobs to grab, highest priority first, due order within one
        (B7; L{fireworq.store.priority}).  A queue whose claimed jobs had one
        priority at its last grab that found jobs (every queue without
        priorities) is first asked in one statement that also says whether
        a claimed job of another priority exists; only when one does, or
        the statement finds nothing, is the grab made in steps: the
        priorities with due jobs (a loose index scan), then one range per
        priority until the grab is full.
        """
        lone = self._lone_priority.get(queue_name)
        if lone is not None:
            cursor.execute(mysql_lone_grab_sql(table, columns, lone, now, limit))
            rows = cursor.fetchall()
            if rows and not rows[0][-1]:
                return [job_from_row(row[:-1]) for row in rows]
            self._lone_priority.pop(queue_name, None)
        # Step 1 keeps only the priorities with a due job (HAVING after the
        # loose index scan: no extra round trip for the clock).
        cursor.execute(mysql_priorities_sql(table) + f" HAVING MIN(next_try) <= {now}")
        priorities = due_priorities(cursor.fetchall(), _ANY_TIME)
        jobs: List[Job] = []
        for priority in priorities:
            cursor.execute(mysql_grab_sql(table, columns, priority, now, limit - len(jobs)))
            jobs += [job_from_row(row) for row in cursor.fetchall()]
            if len(jobs) >= limit:
                break
        if len(priorities) == 1 and jobs:
            self._lone_priority[queue_name] = priorities[0]
        return jobs

    def release(self, queue_name: str, job_ids: Sequence[int], grabber_id: int) -> Deferred:
        ids = [int(i) for i in job_ids]
        if not ids:
            return succeed(0)

        def work(cursor: Any) -> int:
            owned = f"WHERE job_id IN ({placeholders(len(ids))}) AND status = 'grabbed' AND grabber_id = %s"
            cancelable = self._optioned(queue_name)
            cursor.execute(
                f"UPDATE {job_table(queue_name)} SET status = 'claimed', grabber_id = NULL {owned}"
                f"{' AND canceling = 0' if cancelable else ''}",
                ids + [grabber_id],
            )
            released = int(cursor.rowcount)
            if cancelable:
                # Canceled before it was sent (B9): deleted, not returned.
                cursor.execute(f"DELETE FROM {job_table(queue_name)} {owned} AND canceling <> 0", ids + [grabber_id])
                released += int(cursor.rowcount)
            return released

        return self._run([queue_name], work, idempotent=True, what=f"release jobs of {queue_name!r}")

    def recover(self, queue_name: str, grabber_id: int) -> Deferred:
        """
        Return the queue's jobs grabbed under an OLDER epoch (below
        ``grabber_id``, or NULL) to ``claimed``.  Not every other epoch
        (``<>``): a queue's epoch only rises (lease rows are never deleted,
        and an original server's grabber ids are connection ids, below
        L{FIRST_EPOCH <fireworq.lease.mysql.FIRST_EPOCH>}), so a job grabbed
        under a higher epoch is a NEWER holder's.  On Galera a claim that
        stalls in commit can come back after another node has taken the
        queue over again; its recovery must leave that node's in-flight
        jobs alone, or they would be delivered twice.
        """
        def work(cursor: Any) -> int:
            deleted = 0
            if self._optioned(queue_name):
                # Canceled while its holder died (B9): deleted, not returned.
                cursor.execute(
                    f"DELETE FROM {job_table(queue_name)} WHERE status = 'grabbed' AND canceling <> 0 "
                    "AND (grabber_id IS NULL OR grabber_id < %s)",
                    (grabber_id,),
                )
                deleted = int(cursor.rowcount)
            cursor.execute(
                f"UPDATE {job_table(queue_name)} SET status = 'claimed', grabber_id = NULL "
                "WHERE status = 'grabbed' AND (grabber_id IS NULL OR grabber_id < %s)",
                (grabber_id,),
            )
            return int(cursor.rowcount) + deleted

        # Causal on Galera: a grab by the previous holder may have been
        # committed on another node and not yet applied on this one; the
        # UPDATE must see it, or that job would stay grabbed by an old epoch.
        return self._run([queue_name], work, idempotent=True, what=f"recover jobs of {queue_name!r}",
                         causal=True)
