"""
A/B of the server's code at two (or more) commits, measured with the same
tools, interleaved (MySQL: on one throwaway MariaDB):

    git worktree add /tmp/old <commit>
    .venv/bin/python -m bench.ab --trees /tmp/old,. --rounds 5 [--phases push,batch] [--pin]

Each round starts a server from each checkout in turn (the order alternates
from round to round), on a fresh database, runs the chosen phases of the
benchmark (bench/__main__.py) and stops it; the medians per checkout are
printed at the end, with the server's CPU time per job, which varies much
less than the rates on a shared machine.  Only the server's code comes from
the checkouts: the load generator, the worker and the phases are this
checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from typing import Dict, List

from bench.__main__ import (
    define_queues,
    measure_batch,
    measure_e2e,
    measure_latency,
    measure_push,
)
from bench.harness import PINNING, REPO, Server, Worker, comparison_settings, cpu_seconds, pin, plan_pinning

PHASES = ("latency", "push", "batch", "e2e", "e2e_single")


def database_cpu(database) -> float:
    """CPU seconds the throwaway MariaDB has used (0 without one)."""
    return cpu_seconds(database.process.pid) if database is not None else 0.0


def run_once(tree: str, database, args: argparse.Namespace, workdir: str, worker: Worker) -> Dict[str, float]:
    """One server from ``tree`` on a fresh database: the chosen phases' figures."""
    settings = comparison_settings(args.store, workdir, database, "ab")
    server = Server(workdir, settings, repo=tree)
    out: Dict[str, float] = {}
    try:
        time.sleep(1.0)
        define_queues([server], args.workers)
        servers = [server]
        if "latency" in args.phases:
            r = measure_latency(servers, worker, args)
            out["idle push p50 ms"] = r["push_rtt"]["p50"]
            out["idle push->worker p50 ms"] = r["delivery"]["p50"]
        if "push" in args.phases:
            before = database_cpu(database)
            r = measure_push(servers, args)
            out["push/s"] = r["rate"]
            out["push CPU us/push"] = r["server_cpu_us_per_push"]
            if database is not None:
                out["push MariaDB CPU us/push"] = 1e6 * (database_cpu(database) - before) / max(1, r["ok"])
        if "batch" in args.phases:
            before = cpu_seconds(server.pid), database_cpu(database)
            r = measure_batch(servers, args)
            out["batch push jobs/s"] = r["rate"]
            out["batch CPU us/job"] = 1e6 * (cpu_seconds(server.pid) - before[0]) / max(1, r["ok_jobs"])
            if database is not None:
                out["batch MariaDB CPU us/job"] = 1e6 * (database_cpu(database) - before[1]) / max(1, r["ok_jobs"])
        if "e2e" in args.phases:
            r = measure_e2e(servers, worker, args, batched=True)
            out["e2e batch jobs/s"] = r["rate"]
            out["e2e batch CPU us/job"] = 1e6 * sum(r["server_cpu_seconds"]) / max(1, r["pushed"])
            out["lost"] = out.get("lost", 0) + r["lost"]
        if "e2e_single" in args.phases:
            r = measure_e2e(servers, worker, args, batched=False, concurrency=args.concurrencies[0])
            out["e2e single jobs/s"] = r["rate"]
            out["e2e single push p50 ms"] = r["push_rtt"]["p50"]
            out["e2e single CPU us/job"] = 1e6 * sum(r["server_cpu_seconds"]) / max(1, r["pushed"])
            out["lost"] = out.get("lost", 0) + r["lost"]
    finally:
        server.stop()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", required=True, help="comma-separated checkouts of the server's code")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phases", default="push,batch,e2e,e2e_single",
                        help="comma-separated, of: " + ", ".join(PHASES))
    parser.add_argument("--store", default="mysql", choices=("mysql", "sqlite", "in-memory"))
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--concurrency", default="16", help="push connections (the e2e run uses the first)")
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--pin", action="store_true", help="the server on one CPU, the tools on the other")
    parser.add_argument("--out", default=os.path.join(REPO, ".bench", "ab.json"))
    args = parser.parse_args(argv)
    args.concurrencies = [int(c) for c in args.concurrency.split(",")]
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    for phase in args.phases:
        if phase not in PHASES:
            parser.error(f"unknown phase {phase!r}")
    trees = [os.path.abspath(t) for t in args.trees.split(",")]
    # A SIGTERM (timeout, kill) stops the servers, the worker and MariaDB too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    sys.path.insert(0, REPO)
    from tests.support.mariadb import private_server

    PINNING.clear()
    if args.pin:
        plan_pinning(1)
    workdir = tempfile.mkdtemp(prefix="fireworq-ab-")
    database = None
    if args.store == "mysql":
        database = private_server(durable=True, extra_args=["--innodb-buffer-pool-size=256M"])
        pin("tools", database.process.pid)
    worker = Worker(workdir)
    runs: Dict[str, List[Dict[str, float]]] = {t: [] for t in trees}
    try:
        for number in range(args.rounds):
            order = trees if number % 2 == 0 else list(reversed(trees))
            for tree in order:
                result = run_once(tree, database, args, workdir, worker)
                runs[tree].append(result)
                print(f"round {number + 1} {tree}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()),
                      file=sys.stderr, flush=True)
    finally:
        worker.stop()
        if database is not None:
            database.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    keys = list(runs[trees[0]][0]) if runs[trees[0]] else []
    print("| | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for key in keys:
        cells = []
        for tree in trees:
            values = [r[key] for r in runs[tree] if key in r]
            cells.append(f"{statistics.median(values):,.1f} ({', '.join(f'{v:,.0f}' for v in values)})")
        print(f"| {key} | " + " | ".join(cells) + " |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args), "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
