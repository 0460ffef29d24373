"""
Cancel marks (B9): while one queue's deliveries run, the store is asked
every L{CANCEL_POLL_INTERVAL} seconds which of them were canceled (through
any node), and those deliveries are aborted.  No look is made while no
delivery runs.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Set

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq.lease.interface import IQueueLease
from fireworq.store.interface import IJobStore

#: While deliveries run, the store is asked this often (s) which of them
#: were canceled through another node (B9: aborted within a second).
CANCEL_POLL_INTERVAL = 0.4


class CancelWatcher:
    """
    Looks for the cancel marks of one queue's running deliveries.

    The dispatcher calls L{watch} when a delivery starts while L{idle} (one
    attribute test per delivery); a look is then made after
    L{CANCEL_POLL_INTERVAL} seconds and again after each answer while
    ``watching()`` says deliveries run.  Each canceled job's id goes to
    ``cancel``.

    @param cancel: aborts the delivery of a job id (the dispatcher's
        C{cancel}).
    @param watching: whether deliveries run and the dispatcher dispatches.
    """

    _log = Logger()

    def __init__(
        self,
        store: IJobStore,
        queue_name: str,
        lease: IQueueLease,
        clock: IReactorTime,
        cancel: Callable[[int], bool],
        watching: Callable[[], bool],
    ) -> None:
        self._store = store
        self.queue_name = queue_name
        self._lease = lease
        self._clock = clock
        self._cancel = cancel
        self._watching = watching
        #: Ids of in-flight deliveries being aborted by a cancel.
        self.canceled: Set[int] = set()
        #: No look is scheduled or waiting for the store's answer.
        self.idle = True
        self._call: Optional[IDelayedCall] = None
        self._looking = False

    def watch(self) -> None:
        """Look for cancel marks in L{CANCEL_POLL_INTERVAL} seconds (call while L{idle})."""
        self.idle = False
        self._call = self._clock.callLater(CANCEL_POLL_INTERVAL, self._look)

    def stop(self) -> None:
        """Make no more looks (one waiting for its answer ends there)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.idle = not self._looking

    def _look(self) -> None:
        """Ask the store which running deliveries were canceled (through any node)."""
        self._call = None
        if not self._watching():
            self.idle = True
            return
        self._looking = True
        d = self._store.canceling_jobs(self.queue_name, self._lease.grabber_id)

        def got(ids: List[int]) -> None:
            for job_id in ids:
                self._cancel(job_id)

        def failed(failure: Failure) -> None:
            self._log.warn(
                "Queue {queue}: cannot read cancel marks: {error}",
                queue=self.queue_name, error=failure.getErrorMessage(),
            )

        def again(_: object) -> None:
            self._looking = False
            if self._watching() and self._call is None:
                self.watch()
            else:
                self.idle = self._call is None

        d.addCallbacks(got, failed)
        d.addBoth(again)
