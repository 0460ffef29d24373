"""
Instructions per job of the server's process, counted by valgrind's
callgrind, for checkouts of the server's code side by side:

    git worktree add /tmp/old <commit>
    .venv/bin/python -m bench.instructions --trees /tmp/old,. --phase push [--jobs 2000] [--rounds 2]

Rates and CPU times on a machine shared with other work vary by ±20% or
more from run to run; the number of instructions the server executes per
job hardly does, so a change of a few percent in the cost of the push path
shows.  The server runs under ``valgrind --tool=callgrind`` with
instrumentation off until the phase starts (after a warm-up of 1,000 jobs),
so start-up is not counted; every thread of the process is (the reactor and
the database threads).  What it does not count: time in the kernel (system
calls), and the database server's own work.  Under valgrind the server is
some 20 times slower, so pushes arriving together are written in larger
batches than at full speed: compare checkouts with each other, not with the
rates of the benchmark.

Only the server's code comes from the checkouts: the load generator, the
worker and the phases are this checkout's (bench/__main__.py).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from bench.__main__ import define_queues, measure_batch, measure_e2e, measure_push
from bench.harness import REPO, Process, Server, Worker, call, comparison_settings, free_port, wait_for

PHASES = ("push", "batch", "e2e", "e2e_single")


class CallgrindServer(Server):
    """A ``twistd fireworq`` of checkout ``repo`` under callgrind, instrumentation off."""

    def __init__(self, workdir: str, settings: Dict[str, str], repo: str, out: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = out
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        env["FIREWORQ_BIND"] = f"127.0.0.1:{self.port}"
        for name, value in settings.items():
            env["FIREWORQ_" + name.upper()] = value
        args = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "--pidfile=", "-n", "fireworq"]
        Process.__init__(self, args, os.path.join(workdir, f"server-{self.port}.log"), env=env, cwd=workdir)
        wait_for(lambda: call("GET", self.url + "/health", timeout=5)[0] == 200, 300, "the server under valgrind")

    def instrument(self, on: bool) -> None:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(self.pid)],
                       check=True, stdout=subprocess.DEVNULL)

    def instructions(self) -> int:
        """Dump the counts and add up every dump's total (instructions executed while on)."""
        subprocess.run(["callgrind_control", "-d", str(self.pid)], check=True, stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        total = 0
        for path in glob.glob(self.out + "*"):
            with open(path) as f:
                for line in f:
                    if line.startswith("totals:"):
                        total += int(line.split()[1])
        return total


def run_once(tree: str, args: argparse.Namespace, database, worker: Worker, workdir: str) -> float:
    """Thousands of instructions per job of one phase on a server of ``tree``."""
    out = os.path.join(workdir, f"callgrind-{time.monotonic_ns()}.out")
    settings = comparison_settings(args.store, workdir, database, "instr")
    server = CallgrindServer(workdir, settings, tree, out)
    try:
        define_queues([server], args.workers)
        phase_args = argparse.Namespace(jobs=1000, concurrencies=[args.concurrency], workers=args.workers,
                                        timeout=args.timeout)

        def phase() -> int:
            if args.phase == "push":
                return measure_push([server], phase_args)["ok"]
            if args.phase == "batch":
                return measure_batch([server], phase_args)["ok_jobs"]
            result = measure_e2e([server], worker, phase_args, batched=args.phase == "e2e",
                                 concurrency=args.concurrency)
            if result["lost"]:
                raise RuntimeError(f"{result['lost']} jobs lost")
            return result["pushed"]

        phase()  # warm-up, not counted
        phase_args.jobs = args.jobs
        server.instrument(True)
        jobs = phase()
        server.instrument(False)
        return server.instructions() / jobs / 1000
    finally:
        server.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", required=True, help="comma-separated checkouts of the server's code")
    parser.add_argument("--phase", default="push", choices=PHASES)
    parser.add_argument("--store", default="mysql", choices=("mysql", "sqlite", "in-memory"))
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("needs valgrind (apt-get install valgrind)")
    trees = [os.path.abspath(t) for t in args.trees.split(",")]
    # A SIGTERM (timeout, kill) stops the servers, the worker and MariaDB too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    sys.path.insert(0, REPO)
    from tests.support.mariadb import private_server

    workdir = tempfile.mkdtemp(prefix="fireworq-instr-")
    database = private_server(durable=True) if args.store == "mysql" else None
    worker = Worker(workdir)
    counts: Dict[str, List[float]] = {t: [] for t in trees}
    try:
        for number in range(args.rounds):
            for tree in trees if number % 2 == 0 else list(reversed(trees)):
                counts[tree].append(run_once(tree, args, database, worker, workdir))
                print(f"round {number + 1} {tree}: {counts[tree][-1]:.1f} k instructions/job",
                      file=sys.stderr, flush=True)
    finally:
        worker.stop()
        if database is not None:
            database.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"| {args.phase} ({args.store}), k instructions/job | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    print("| median (runs) | " + " | ".join(
        f"{statistics.median(counts[t]):,.0f} ({', '.join(f'{c:,.0f}' for c in counts[t])})" for t in trees) + " |")


if __name__ == "__main__":
    main()
