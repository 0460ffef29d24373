"""
Changes to the definitions made through this node's API: queues (put,
pause, delete, purge), routings, and canceling a job.  Each is stored in
the repository and applied here at once (other nodes see it within their
refresh interval); before the first load of the definitions each waits for
it (readiness, see L{fireworq.manager}).
"""

from __future__ import annotations

from typing import List, Optional

import attr
from twisted.internet.defer import Deferred, succeed

from fireworq.manager.state import ManagerState
from fireworq.model import Job, QueueDefinition, Routing
from fireworq.queue_errors import QueueConflict, UndefinedQueue


class DefinitionChanges(ManagerState):
    """Part of L{QueueManager}: definition and routing changes, purge and cancel."""

    def put_queue(
        self, definition: QueueDefinition, keep_paused: bool = False
    ) -> "Deferred[QueueDefinition]":
        """
        Create or replace a queue definition and apply it here.  With
        ``keep_paused`` an existing queue stays paused or not as it is (B9:
        a PUT body without ``paused``).
        """
        if not self.ready:
            return self._after_ready(self.put_queue, definition, keep_paused)

        def put() -> Deferred:
            d = self.repository.list_queues()

            def check(existing: List[QueueDefinition]) -> Deferred:
                nonlocal definition
                if keep_paused:
                    for same in existing:
                        if same.name == definition.name and same.paused != definition.paused:
                            definition = attr.evolve(definition, paused=same.paused)
                # Only where names map to the original's tables (MySQL, A9)
                # can two names share storage.
                key = self.store.storage_key(definition.name)
                for other in existing:
                    if other.name != definition.name and self.store.storage_key(other.name) == key:
                        raise QueueConflict(
                            f"queue name {definition.name!r} would share job storage with "
                            f"the existing queue {other.name!r} (both map to {key!r}); "
                            "choose another name"
                        )
                return self.repository.put_queue(definition)

            d.addCallback(check)
            d.addCallback(lambda _: self._apply(definition))
            d.addCallback(lambda _: definition)
            return d

        return self._lock.run(put)

    # -- queue control (B9) ----------------------------------------------------

    def set_paused(self, name: str, paused: bool) -> "Deferred[QueueDefinition]":
        """
        Pause or resume a queue: store the state in its definition and
        apply it here at once (other nodes see it within the refresh
        interval); fire with the definition.

        @raise UndefinedQueue: (as a failure) when the queue is not defined.
        """
        if not self.ready:
            return self._after_ready(self.set_paused, name, paused)

        def change() -> Deferred:
            d = self.repository.find_queue(name)

            def found(definition: Optional[QueueDefinition]) -> Deferred:
                if definition is None:
                    raise UndefinedQueue(name)
                changed = attr.evolve(definition, paused=paused)
                stored = succeed(False) if changed == definition else self.repository.put_queue(changed)
                stored.addCallback(lambda _: self._apply(changed))
                stored.addCallback(lambda _: changed)
                return stored

            d.addCallback(found)
            return d

        return self._lock.run(change)

    def purge_queue(self, name: str) -> "Deferred[int]":
        """Delete the queue's waiting and deferred jobs; fire with how many."""
        d = self.ensure_queue(name)
        d.addCallback(lambda _: self.store.purge(name))
        return d

    def cancel_job(self, name: str, job_id: int) -> "Deferred[Optional[Job]]":
        """
        Cancel a job (L{IJobStore.cancel_job}): a waiting or deferred job is
        deleted; a grabbed one is marked, and its delivery aborted at once
        when it runs here (else by its node's next look at the marks).
        Fire with the job as it was, or None.
        """
        d = self.ensure_queue(name)
        d.addCallback(lambda _: self.store.cancel_job(name, job_id))

        def canceled(job: Optional[Job]) -> Optional[Job]:
            if job is not None and job.status != "grabbed":
                # Deleted at once; a grabbed one is told when its delivery is aborted.
                told = getattr(self._events, "canceled", None)
                if told is not None:
                    told(name, [job])
            if job is not None and job.status == "grabbed":
                dispatcher = self._dispatchers.get(name)
                if dispatcher is not None:
                    dispatcher.cancel(job.id)
            return job

        d.addCallback(canceled)
        return d

    def delete_queue(self, name: str) -> "Deferred[Optional[QueueDefinition]]":
        """Delete a queue definition (not its jobs); fire with it or None."""
        if not self.ready:
            return self._after_ready(self.delete_queue, name)

        def delete() -> Deferred:
            d = self.repository.delete_queue(name)

            def deleted(definition: Optional[QueueDefinition]) -> Optional[QueueDefinition]:
                if definition is not None or name in self._dispatchers:
                    self._remove(name)
                return definition

            d.addCallback(deleted)
            return d

        return self._lock.run(delete)

    def put_routing(self, category: str, queue_name: str) -> "Deferred[Routing]":
        """Route ``category`` to a defined queue."""
        d = self.ensure_queue(queue_name)
        routing = Routing(job_category=category, queue_name=queue_name)
        d.addCallback(lambda _: self.repository.put_routing(routing))

        def stored(_: object) -> Routing:
            self._routings[category] = queue_name
            return routing

        d.addCallback(stored)
        return d

    def delete_routing(self, category: str) -> "Deferred[Optional[Routing]]":
        """Delete the routing of ``category``; fire with it or None."""
        if not self.ready:
            return self._after_ready(self.delete_routing, category)
        d = self.repository.delete_routing(category)

        def deleted(routing: Optional[Routing]) -> Optional[Routing]:
            self._routings.pop(category, None)
            return routing

        d.addCallback(deleted)
        return d
