"""
Loading the definitions: the queue manager polls the repository's revision
(every ``config_refresh_interval``, through its watcher) and, when it moved
(a change made here or on another node), reloads definitions and routings
and makes the running queues match.  The default queue is re-created by
that reload when it is missing.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from fireworq.manager.state import ManagerState
from fireworq.model import QueueDefinition, Routing


class DefinitionReload(ManagerState):
    """Part of L{QueueManager}: reloads definitions and routings when the repository's revision moves."""

    _refreshing: bool

    def refresh(self) -> "Deferred[None]":
        """Reload definitions and routings if the repository's revision moved."""
        if self._refreshing:
            return succeed(None)
        self._refreshing = True
        d = self.repository.revision()

        def compare(revision: str) -> Optional[Deferred]:
            if revision == self._revision and self.ready and self._default_present():
                return None
            return self._lock.run(self._reload, revision)

        def done(result: object) -> None:
            self._refreshing = False
            if isinstance(result, Failure):
                self._log.warn(
                    "Cannot load queue definitions: {error}", error=result.getErrorMessage()
                )

        d.addCallback(compare)
        d.addBoth(done)
        return d

    def _default_present(self) -> bool:
        return self.default_queue is None or self.default_queue.name in self._definitions

    def _reload(self, revision: str) -> "Deferred[None]":
        d = self.repository.list_queues()

        def got_queues(definitions: List[QueueDefinition]) -> Deferred:
            if self.default_queue is not None and self.default_queue.name not in {
                q.name for q in definitions
            }:
                definitions = definitions + [self.default_queue]
                created = self.repository.put_queue(self.default_queue)
                created.addCallback(lambda _: definitions)
                return created
            return succeed(definitions)

        def apply(definitions: List[QueueDefinition]) -> Deferred:
            wanted = {q.name: q for q in definitions}
            steps = succeed(None)
            for name in list(self._dispatchers):
                if name not in wanted:
                    self._remove(name)
            for definition in definitions:
                steps.addCallback(lambda _, q=definition: self._apply(q))
            steps.addCallback(lambda _: self.repository.list_routings())
            steps.addCallback(self._set_routings)
            return steps

        def loaded(_: object) -> None:
            if self._revision is not None and self._revision != revision:
                self._log.info("Reloaded queue definitions and routings")
            self._revision = revision
            self._became_ready()

        d.addCallback(got_queues)
        d.addCallback(apply)
        d.addCallback(loaded)
        return d

    def _set_routings(self, routings: List[Routing]) -> None:
        self._routings = {r.job_category: r.queue_name for r in routings}
