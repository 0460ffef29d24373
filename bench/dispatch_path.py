"""
The dispatcher's own cost per job, in-process (no HTTP): push N Part A jobs
to the in-memory store, then grab, "deliver" (an instant deliverer) and
complete them all through L{QueueDispatcher} on a task.Clock; print CPU
microseconds per job for the success path and the retry path.

``python -m bench.dispatch_path [TREE]`` -- TREE (default: this checkout)
is a source tree to import fireworq from, so two commits can be compared
(``git archive <commit> | tar -x -C /tmp/x``).
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    from twisted.internet.defer import succeed
    from twisted.internet.task import Clock

    from fireworq.dispatch.dispatcher import QueueDispatcher
    from fireworq.events import EventFanout
    from fireworq.lease.sole import SoleLease
    from fireworq.model import NewJob, PushEntry, QueueDefinition, Result
    from fireworq.store.interface import NodeInfo
    from fireworq.store.memory import MemoryJobStore

    class Instant:
        def __init__(self, status: str) -> None:
            self.result = Result(status, 200, "")

        def deliver(self, queue_name, job):
            return succeed(self.result)

    def run(n: int, status: str) -> float:
        clock = Clock()
        clock.advance(1_700_000_000)
        store = MemoryJobStore(clock=lambda: int(clock.seconds() * 1000))
        store.prepare_queue("q")
        job = NewJob(category="c", url="http://w/", max_retries=1, retry_delay=3600)
        store.push([PushEntry("q", job)] * n)
        lease = SoleLease("q", store, NodeInfo("n", "h"), 1, clock)
        dispatcher = QueueDispatcher(
            QueueDefinition("q", 100, 100), store, lease, Instant(status), EventFanout([]), clock
        )
        started = time.process_time()
        dispatcher.startService()
        while True:
            clock.advance(0.003)
            counts = store.count_jobs("q").result
            if counts.grabbed == 0 and counts.waiting == 0 and dispatcher.completions.pending == 0:
                break
        return (time.process_time() - started) / n * 1e6

    n = 20000
    print(
        "success path %.1f us/job, retry path %.1f us/job"
        % (min(run(n, "success") for _ in range(3)), min(run(n, "failure") for _ in range(3)))
    )


if __name__ == "__main__":
    main()
