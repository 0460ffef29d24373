"""
The job counts of the metrics: the number of waiting, deferred and
grabbed jobs of each queue, counted in the background (one queue at a
time, through the inspection service) and kept for the scrapes, so that a
scrape never queries the database.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.model import JobCounts


class QueueCounts:
    """
    The last job counts of every queue.  A failed count keeps the previous
    one (its timestamp tells its age); the first failure of a run of them
    is logged, and the recovery.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        #: Queue name -> (job counts, Unix time they were counted).
        self.latest: Dict[str, Tuple[JobCounts, float]] = {}
        self._failing = False

    @inlineCallbacks
    def count(self, inspection: Any, manager: Any, names: List[str]) -> Any:
        """
        Count the jobs of the queues ``names`` through ``inspection``, one
        queue at a time, skipping queues that ``manager`` no longer defines.
        """
        failed: Optional[Tuple[str, str]] = None
        for name in names:
            if not manager.running or manager.defined(name) is None:
                continue
            try:
                counts = yield inspection.count_jobs(name)
            except Exception as e:  # counted as a DB error by the observed store
                failed = failed or (name, str(e))
                continue
            if manager.defined(name) is not None:
                self.latest[name] = (counts, self._clock.seconds())
        if failed is not None and not self._failing:
            self._log.warn(
                "Cannot count the jobs of queue {queue} for the metrics: {error}",
                queue=failed[0],
                error=failed[1],
            )
        elif failed is None and self._failing:
            self._log.info("Counting the jobs of the queues for the metrics works again")
        self._failing = failed is not None
