"""
The benchmark: ``python -m bench`` (or ``make bench``).

For each store (sqlite, mysql, in-memory), number of nodes (``--nodes``:
separate servers on their own ports, 2 sharing MySQL) and number of
processes per server (``--procs``: ``twistd fireworq --workers N``, one
port, MySQL) it starts what it needs -- a throwaway durable MariaDB, the
server(s), a worker process -- and measures:

  push     single-job pushes per second from C keep-alive clients
  batch    jobs per second pushed with ``POST /jobs`` (1000 a request)
  e2e      jobs per second from the first push until the worker received
           all N, with every id checked (lost / duplicated): batch pushes,
           and single pushes from each ``--concurrency`` count of
           connections while deliveries run (with the pushes' p50 / p99)
  latency  one job at a time: push round trip and push -> worker receipt,
           p50 / p95 / p99 in ms
  memory   server RSS when idle, and after the run (a ``--procs`` server:
           the sum of its processes)

Nothing is pinned unless ``--pin`` (then one server process gets a core of
its own and the tools the other, on a machine with 2 or more).

``--profile`` samples the first server with py-spy during the e2e phase with
single pushes and prints where its reactor thread spends its time.

``--calibrate`` measures the load generator against the worker alone, to
show that neither is the bottleneck.  ``--url`` measures a running server
instead (push and e2e; its worker URL must reach this machine).

Results are printed as a table and written to ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional

from bench.harness import (
    CPUS,
    PINNING,
    REPO,
    Server,
    Worker,
    call,
    cpu_seconds,
    load,
    pin,
    plan_pinning,
    wait_for,
)
from bench.profile import Profiler, format_summary, py_spy

MB = 1024 * 1024


def percentiles(values: List[float]) -> Dict[str, float]:
    """p50 / p95 / p99 of ``values`` (seconds) in milliseconds."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def job_body(url: str, run_after: int = 0, index: int = 0) -> str:
    return json.dumps({"url": url, "payload": {"n": index, "text": "benchmark job"}, "run_after": run_after})


def define_queues(servers: List[Server], workers: int) -> None:
    """The queues of the benchmark, known to every node."""
    first = servers[0]
    for name, definition in (
        ("bench", {"max_workers": workers, "polling_interval": 200}),
        ("bench_push", {"max_workers": 1, "polling_interval": 1000}),
    ):
        code, body = call("PUT", f"{first.url}/queue/{name}", definition)
        assert code == 200, body
        code, body = call("PUT", f"{first.url}/routing/{name}", {"queue_name": name})
        assert code == 200, body
    for server in servers:
        wait_for(lambda s=server: call("GET", f"{s.url}/routing/bench_push")[0] == 200, 30, "routings")


def measure_push(servers: List[Server], args: argparse.Namespace) -> dict:
    plan = {
        "targets": [s.address for s in servers],
        "path": "/job/bench_push",
        "body": job_body("http://127.0.0.1:9/never", run_after=86400),
        "count": args.jobs,
        "concurrency": max(args.concurrencies),
    }
    cpu_before = sum(cpu_seconds(p) for s in servers for p in s.pids())
    result = load(plan)
    cpu = sum(cpu_seconds(p) for s in servers for p in s.pids()) - cpu_before
    ok = result["codes"].get("200", 0)
    return {"rate": ok / result["elapsed"], "ok": ok, "codes": result["codes"],
            "server_cpu_us_per_push": 1e6 * cpu / max(1, ok),
            "rtt": percentiles(result["rtts"])}


def measure_batch(servers: List[Server], args: argparse.Namespace) -> dict:
    batch = json.dumps([json.loads(job_body("http://127.0.0.1:9/never", run_after=86400, index=i))
                        for i in range(1000)])
    requests = max(4, args.jobs // 1000)
    plan = {
        "targets": [s.address for s in servers],
        "path": "/jobs/bench_push",
        "body": batch,
        "count": requests,
        "concurrency": 4,
    }
    result = load(plan)
    ok = result["codes"].get("200", 0)
    return {"rate": ok * 1000 / result["elapsed"], "ok_jobs": ok * 1000, "codes": result["codes"]}


def measure_e2e(servers: List[Server], worker: Worker, args: argparse.Namespace,
                batched: bool, concurrency: int = 32) -> dict:
    """
    Push N due jobs (1000 a request when ``batched``, else one a request
    from C clients while deliveries run) and time until the worker has
    received every one; check every id.
    """
    worker.reset()
    cpu_before = [sum(cpu_seconds(p) for p in s.pids()) for s in servers]
    url = worker.url + "/work"
    if batched:
        batch = json.dumps([json.loads(job_body(url, index=i)) for i in range(1000)])
        plan = {"targets": [s.address for s in servers], "path": "/jobs/bench", "body": batch,
                "count": max(1, args.jobs // 1000), "concurrency": 2}
    else:
        plan = {"targets": [s.address for s in servers], "path": "/job/bench",
                "bodies": [job_body(url, index=i) for i in range(64)],
                "count": args.jobs, "concurrency": concurrency}
    result = load(plan)
    pushed = set()
    for answer in result["answers"]:
        pushed.update(answer[0] if isinstance(answer[0], list) else [answer[0]])
    wait_for(lambda: worker.stats()["unique"] >= len(pushed), args.timeout, "every job delivered",
             interval=0.2)
    deliveries = worker.deliveries()
    received = [job_id for job_id, _ in deliveries]
    last = max(t for _, t in deliveries)
    elapsed = last - result["started"]
    cpu = [sum(cpu_seconds(p) for p in s.pids()) - before for s, before in zip(servers, cpu_before)]
    return {
        "concurrency": concurrency,
        "push_rtt": percentiles(result["rtts"]),
        "rate": len(pushed) / elapsed,
        "push_phase": result["elapsed"],
        "elapsed": elapsed,
        "pushed": len(pushed),
        "delivered_unique": len(set(received)),
        "lost": len(pushed - set(received)),
        "duplicated": len(received) - len(set(received)),
        "unexpected": len(set(received) - pushed),
        "server_cpu_seconds": cpu,
    }


def measure_latency(servers: List[Server], worker: Worker, args: argparse.Namespace) -> dict:
    worker.reset()
    plan = {
        "targets": [servers[0].address],
        "path": "/job/bench",
        "body": job_body(worker.url + "/work"),
        "count": args.latency_jobs,
        "concurrency": 1,
        "interval": 0.02,
    }
    result = load(plan)
    wait_for(lambda: worker.stats()["unique"] >= len(result["answers"]), 30, "latency jobs")
    received = {}
    for job_id, at in worker.deliveries():
        received.setdefault(job_id, at)
    delays = [received[job_id] - sent for job_id, sent, _ in result["answers"] if job_id in received]
    return {"push_rtt": percentiles(result["rtts"]), "delivery": percentiles(delays),
            "count": len(delays)}


def measure_soak(servers: List[Server], worker: Worker, args: argparse.Namespace) -> dict:
    """
    Push ``--soak`` jobs in batches while they are delivered, sampling the
    servers' RSS after every tenth: memory must stay flat.
    """
    url = worker.url + "/work"
    batch = json.dumps([json.loads(job_body(url, index=i)) for i in range(1000)])
    samples: List[List[float]] = []
    delivered = 0
    started = time.time()
    step = max(1000, args.soak // 10)
    for done in range(0, args.soak, step):
        worker.reset()
        result = load({"targets": [s.address for s in servers], "path": "/jobs/bench", "body": batch,
                       "count": step // 1000, "concurrency": 2})
        pushed = sum(len(a[0]) for a in result["answers"])
        wait_for(lambda: worker.stats()["unique"] >= pushed, args.timeout, "soak deliveries",
                 interval=0.5)
        delivered += pushed
        samples.append([delivered, round(time.time() - started, 1)]
                       + [round(s.rss() / MB, 1) for s in servers])
        print(f"   soak: {delivered} jobs, RSS {samples[-1][2:]} MB", file=sys.stderr, flush=True)
    return {"jobs": delivered, "seconds": round(time.time() - started, 1),
            "rate": delivered / (time.time() - started), "rss_mb_by_jobs": samples}


def run_setup(store: str, nodes: int, args: argparse.Namespace, workdir: str, procs: int = 1) -> dict:
    """Start everything for one store, number of nodes and processes per node, measure, stop."""
    print(f"== {store}, {nodes} node(s) of {procs} process(es)", file=sys.stderr, flush=True)
    PINNING.clear()
    if args.pin:
        plan_pinning(nodes * procs)
    database = None
    settings = {
        "driver": store,
        "keep_alive": "true",
        "dispatch_keep_alive": "true",
        "queue_log": os.path.join(workdir, f"queue-{store}-{nodes}.log"),
        "access_log": os.path.join(workdir, f"access-{store}-{nodes}.log"),
        "queue_default_polling_interval": "200",
    }
    if procs > 1:
        settings["workers"] = str(procs)
    if args.job_lifetime:
        # Job history: every finished job kept (with its output) this long.
        settings["job_lifetime"] = str(args.job_lifetime)
    if store == "sqlite":
        settings["sqlite_path"] = os.path.join(workdir, f"bench-{nodes}.sqlite3")
    if store == "mysql":
        if args.mysql_dsn:
            settings["mysql_dsn"] = args.mysql_dsn
        else:
            sys.path.insert(0, REPO)
            from tests.support.mariadb import private_server

            database = private_server(durable=True, extra_args=["--innodb-buffer-pool-size=256M"])
            pin("tools", database.process.pid)
            settings["mysql_dsn"] = database.fresh_database("bench").dsn
    servers: List[Server] = []
    worker = Worker(workdir)
    try:
        for _ in range(nodes):
            servers.append(Server(workdir, settings))
        time.sleep(3.0)  # let the servers settle (start-up garbage freed) before measuring idle memory
        idle = [s.rss() for s in servers]
        define_queues(servers, args.workers)
        if len(servers) > 1 or procs > 1:
            time.sleep(args.settle)  # definitions known everywhere, leases spread
        result: dict = {"store": store, "nodes": nodes, "procs": procs,
                        "idle_rss_mb": [round(r / MB, 1) for r in idle]}
        # Idle latency first, while nothing else happens on the machine.
        result["latency"] = measure_latency(servers, worker, args)
        result["push"] = measure_push(servers, args)
        result["batch"] = measure_batch(servers, args)
        result["e2e"] = measure_e2e(servers, worker, args, batched=True)
        result["e2e_single"] = []
        for number, concurrency in enumerate(args.concurrencies):
            # The profile samples the first (or only) e2e run with single pushes,
            # in the first server process.
            # The raw stacks stay in .bench/ (py-spy's "raw" format: flamegraph.pl input).
            os.makedirs(os.path.join(REPO, ".bench"), exist_ok=True)
            profiler = Profiler(servers[0].pids()[-1], os.path.join(REPO, ".bench", f"profile-{store}-{nodes}-{procs}.txt")) \
                if args.profile and number == 0 else None
            try:
                result["e2e_single"].append(measure_e2e(servers, worker, args, batched=False,
                                                        concurrency=concurrency))
            finally:
                if profiler is not None:
                    result["profile"] = profiler.stop()
        if args.soak:
            result["soak"] = measure_soak(servers, worker, args)
        result["final_rss_mb"] = [round(s.rss() / MB, 1) for s in servers]
        return result
    finally:
        for server in servers:
            server.stop()
        worker.stop()
        if database is not None:
            database.cleanup()


def calibrate(args: argparse.Namespace, workdir: str) -> dict:
    """The load generator against the worker alone: their own ceiling."""
    worker = Worker(workdir)
    try:
        result = load({
            "targets": [f"127.0.0.1:{worker.port}"],
            "path": "/work",
            "body": job_body("http://x/"),
            "count": args.jobs,
            "concurrency": max(args.concurrencies),
        })
        rate = result["codes"].get("200", 0) / result["elapsed"]
        return {"loadgen_to_worker_rate": rate}
    finally:
        worker.stop()


def table(results: List[dict], calibration: Optional[dict]) -> str:
    """The results as Markdown tables: throughput (with the pushes' p50), then latency and memory."""
    concurrencies = [e["concurrency"] for e in results[0]["e2e_single"]] if results else []
    single = " | ".join(f"e2e single pushes, {c} conns: jobs/s (push p50 ms; server CPU µs/job)"
                        for c in concurrencies)
    lines = [
        f"| store | nodes × procs | {single} | e2e batch jobs/s | push/s (server CPU µs/push) | batch push jobs/s | lost | dup |",
        "|---|---|" + "---|" * len(concurrencies) + "---|---|---|---|---|",
    ]
    for r in results:
        cells = " | ".join(
            f"{e['rate']:.0f} ({e['push_rtt']['p50']:.1f}; {1e6 * sum(e['server_cpu_seconds']) / max(1, e['pushed']):.0f})"
            for e in r["e2e_single"])
        lost = r["e2e"]["lost"] + sum(e["lost"] for e in r["e2e_single"])
        dup = r["e2e"]["duplicated"] + sum(e["duplicated"] for e in r["e2e_single"])
        lines.append(
            f"| {r['store']} | {r['nodes']} × {r.get('procs', 1)} | {cells} | {r['e2e']['rate']:.0f} | "
            f"{r['push']['rate']:.0f} ({r['push'].get('server_cpu_us_per_push', 0):.0f}) | "
            f"{r['batch']['rate']:.0f} | {lost} | {dup} |"
        )
    lines += [
        "",
        "| store | nodes × procs | idle push p50/p95/p99 ms | idle push→worker p50/p95/p99 ms | "
        "idle RSS MB | RSS after MB | server CPU s (last e2e) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lat = r["latency"]
        cpu = r["e2e_single"][-1]["server_cpu_seconds"] if r["e2e_single"] else []
        lines.append(
            f"| {r['store']} | {r['nodes']} × {r.get('procs', 1)} | "
            f"{lat['push_rtt']['p50']:.1f} / {lat['push_rtt']['p95']:.1f} / {lat['push_rtt']['p99']:.1f} | "
            f"{lat['delivery']['p50']:.1f} / {lat['delivery']['p95']:.1f} / {lat['delivery']['p99']:.1f} | "
            f"{', '.join(map(str, r['idle_rss_mb']))} | {', '.join(map(str, r['final_rss_mb']))} | "
            f"{', '.join(f'{c:.1f}' for c in cpu)} |"
        )
    for r in results:
        if "soak" in r:
            soak = r["soak"]
            lines.append("")
            lines.append(
                f"Soak ({r['store']}, {r['nodes']} node(s)): {soak['jobs']} jobs in {soak['seconds']} s "
                f"({soak['rate']:.0f}/s); RSS MB by jobs delivered: "
                + ", ".join(f"{s[0]}: {'/'.join(map(str, s[2:]))}" for s in soak["rss_mb_by_jobs"])
            )
    for r in results:
        if r.get("profile", {}).get("samples"):
            lines.append("")
            lines.append(format_summary(
                f"the first server ({r['store']}, {r['nodes']} node(s)) during e2e with single pushes",
                r["profile"],
            ))
    if calibration:
        lines.append("")
        lines.append(
            f"Load generator → worker alone: {calibration['loadgen_to_worker_rate']:.0f} requests/s "
            "(the ceiling of the measuring tools)."
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,mysql,in-memory",
                        help="comma-separated stores to measure")
    parser.add_argument("--nodes", default="1,2", help="server processes (2 only with mysql)")
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per throughput phase")
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--concurrency", default="16,32",
                        help="keep-alive push connections: comma-separated counts, one e2e run with single "
                             "pushes each (the push phase uses the largest)")
    parser.add_argument("--procs", default="1",
                        help="server processes per node (twistd fireworq --workers N, one port; mysql only), "
                             "comma-separated")
    parser.add_argument("--workers", type=int, default=100, help="max_workers of the e2e queue")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for deliveries")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds for leases to spread")
    parser.add_argument("--mysql-dsn", default="", help="use this MySQL database instead of a throwaway one")
    parser.add_argument("--calibrate", action="store_true", help="also measure the tools alone")
    parser.add_argument("--job-lifetime", type=int, default=0,
                        help="seconds every finished job is kept with its result (job history; 0: off)")
    parser.add_argument("--soak", type=int, default=0,
                        help="also deliver this many jobs, sampling memory every tenth")
    parser.add_argument("--profile", action="store_true",
                        help="sample the first server with py-spy during e2e with single pushes")
    parser.add_argument("--pin", action="store_true",
                        help="give one server process CPUs of its own and the tools the others (when "
                             "there are at least 2 CPUs and 1 server process); default: nothing pinned")
    args = parser.parse_args(argv)
    args.concurrencies = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if args.profile:
        try:
            py_spy()
        except RuntimeError as e:
            parser.error(str(e))

    load_before = os.getloadavg()
    print(f"load average before the run: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}",
          file=sys.stderr, flush=True)
    workdir = tempfile.mkdtemp(prefix="fireworq-bench-")
    results = []
    try:
        calibration = calibrate(args, workdir) if args.calibrate else None
        for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
            for nodes in [int(n) for n in args.nodes.split(",")]:
                for procs in [int(n) for n in args.procs.split(",")]:
                    if (nodes > 1 or procs > 1) and store != "mysql":
                        continue
                    results.append(run_setup(store, nodes, args, workdir, procs))
        print(table(results, calibration))
        os.makedirs(os.path.join(REPO, ".bench"), exist_ok=True)
        with open(os.path.join(REPO, ".bench", "results.json"), "w") as f:
            json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": vars(args), "cpus": CPUS,
                       "load_before": load_before,
                       "calibration": calibration, "results": results}, f, indent=2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
