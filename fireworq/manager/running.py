"""
The running queues: one L{QueueService} child of the queue manager per
defined queue, started, reconfigured or stopped to match a definition.
A removed queue's service drains in the background; a queue defined again
meanwhile starts once the old service has stopped.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.defer import Deferred, succeed

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.manager.state import ManagerState
from fireworq.model import QueueDefinition
from fireworq.queue_errors import UndefinedQueue
from fireworq.queues import QueueService


class RunningQueues(ManagerState):
    """Part of L{QueueManager}: the L{QueueService} of each defined queue."""

    def _apply(self, definition: QueueDefinition) -> "Deferred[None]":
        """Make the queue's dispatcher match ``definition`` (under the lock)."""
        name = definition.name
        current = self._dispatchers.get(name)
        if current is not None:
            if current.definition != definition:
                self._log.info("Reconfiguring queue {queue}", queue=name)
                current.reconfigure(definition)
            self._definitions[name] = definition
            return succeed(None)
        d = self._stopped(name)
        d.addCallback(lambda _: self.store.prepare_queue(name))

        def start(_: object) -> None:
            dispatcher = self._make_dispatcher(definition)
            queue = QueueService(dispatcher)
            self._dispatchers[name] = dispatcher
            self._queues[name] = queue
            self._definitions[name] = definition
            queue.setServiceParent(self)
            self._log.info("Started the dispatcher of queue {queue}", queue=name)

        d.addCallback(start)
        return d

    def _remove(self, name: str) -> None:
        """Stop the queue's dispatcher (it drains in the background)."""
        self._definitions.pop(name, None)
        self._dispatchers.pop(name, None)
        queue = self._queues.pop(name, None)
        if queue is None:
            return
        stopped = queue.disownServiceParent() or succeed(None)
        waiters = self._stopping.setdefault(name, [])

        def done(_: object) -> None:
            if self._stopping.get(name) is waiters:
                del self._stopping[name]
            self._log.info("Stopped the dispatcher of queue {queue}", queue=name)
            for waiter in waiters:
                waiter.callback(None)

        stopped.addBoth(done)

    def _stopped(self, name: str) -> "Deferred[None]":
        """Fires once an earlier dispatcher of ``name`` has fully stopped."""
        waiters = self._stopping.get(name)
        if waiters is None:
            return succeed(None)
        d: Deferred = Deferred()
        waiters.append(d)
        return d

    def dispatcher(self, name: str) -> Optional[QueueDispatcher]:
        """The dispatcher of a defined queue, or None."""
        return self._dispatchers.get(name)

    def ensure_queue(self, name: str) -> "Deferred[QueueDefinition]":
        """
        The definition of ``name``: from the cache, else from the repository
        (a queue defined through another node is started here at once).

        @raise UndefinedQueue: (as a failure) when it is defined nowhere.
        """
        if not self.ready:
            return self._after_ready(self.ensure_queue, name)
        cached = self._definitions.get(name)
        if cached is not None:
            return succeed(cached)

        def look_up() -> Deferred:
            if name in self._definitions:
                return succeed(self._definitions[name])
            d = self.repository.find_queue(name)

            def found(definition: Optional[QueueDefinition]) -> Deferred:
                if definition is None:
                    raise UndefinedQueue(name)
                applied = self._apply(definition)
                applied.addCallback(lambda _: definition)
                return applied

            d.addCallback(found)
            return d

        return self._lock.run(look_up)
