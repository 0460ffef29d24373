"""
The delivery path's own cost per job, in-process, over real HTTP: N Part A
jobs are pushed to the in-memory store, then grabbed, delivered to the
benchmark's worker (bench/worker.py, its own process) through the server's
HTTP client and connection pool, completed, and told to the server's event
observers (stats, queue log, metrics); prints this process's CPU
microseconds per job (the worker's CPU not included).

``python -m bench.delivery_path [TREE] [--jobs N] [--rounds R]`` -- TREE
(default: this checkout) is a source tree to import fireworq from, so two
commits can be compared (``git archive <commit> | tar -x -C /tmp/x``).
Run the trees in turn, several times: CPU time per job varies much less
than rates on a shared machine, but it does vary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", nargs="?", default=REPO)
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up round)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.tree))

    from twisted.internet import reactor
    from twisted.internet.defer import inlineCallbacks
    from twisted.internet.task import deferLater

    from bench.harness import free_port
    from fireworq.dispatch.delivery import HTTPDeliverer, make_http_client, make_pool
    from fireworq.dispatch.dispatcher import QueueDispatcher
    from fireworq.events import EventFanout
    from fireworq.lease.sole import SoleLease
    from fireworq.logging import LogFile, QueueLog, now_ms
    from fireworq.metrics import Metrics
    from fireworq.model import NewJob, PushEntry, QueueDefinition
    from fireworq.stats import QueueStats
    from fireworq.store.interface import NodeInfo
    from fireworq.store.memory import MemoryJobStore

    port = free_port()
    worker = subprocess.Popen([sys.executable, "-m", "bench.worker", str(port)], cwd=REPO,
                              stdout=subprocess.PIPE)
    assert worker.stdout is not None
    worker.stdout.readline()  # "ready"
    workdir = tempfile.mkdtemp(prefix="fireworq-delivery-path-")

    store = MemoryJobStore(clock=lambda: int(reactor.seconds() * 1000))
    store.prepare_queue("q")
    events = EventFanout([
        QueueStats(reactor, now_ms),
        QueueLog(LogFile(os.path.join(workdir, "queue.log"), 1), "fireworq.queue", "info"),
        Metrics(clock=reactor, driver="in-memory"),
    ])
    # As fireworq/server/node.py makes them, with the default settings.
    pool = make_pool(reactor, persistent=True, max_per_host=100, idle_timeout=0)
    deliverer = HTTPDeliverer(make_http_client(reactor, pool), "Fireworq/bench", reactor, pool=pool,
                              min_idle_per_host=100)
    lease = SoleLease("q", store, NodeInfo("n", "h"), 1, reactor)
    dispatcher = QueueDispatcher(QueueDefinition("q", 100, 100), store, lease, deliverer, events, reactor)
    job = NewJob(category="c", url=f"http://127.0.0.1:{port}/work",
                 payload='{"n": 1, "text": "benchmark job"}')
    results: List[float] = []

    @inlineCallbacks
    def run():
        try:
            yield dispatcher.startService()
            for number in range(args.rounds + 1):
                yield store.push([PushEntry("q", job)] * args.jobs)
                started = time.process_time()
                dispatcher.kick()
                while True:
                    counts = store.count_jobs("q").result
                    if not (counts.grabbed or counts.waiting or dispatcher.completions.pending):
                        break
                    yield deferLater(reactor, 0.05, lambda: None)
                if number:  # the first round warms up
                    results.append((time.process_time() - started) / args.jobs * 1e6)
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    worker.kill()
    worker.wait()
    results.sort()
    print(f"{args.tree}: delivery path {results[len(results) // 2]:.1f} us/job (median of "
          + ", ".join(f"{r:.1f}" for r in results) + ")")


if __name__ == "__main__":
    main()
