"""
PyMySQL or mysqlclient?  Measure both through the MySQL store (adbapi pool,
the store's real SQL) against a throwaway MariaDB, and print a table.

    .venv/bin/python bench/mysql_driver.py [--jobs N] [--rounds N] [--pool-size N]
        [--driver pymysql|mysqlclient] [--fast] [--dsn DSN]

Without --dsn a durable MariaDB (innodb_flush_log_at_trx_commit=1, the
production setting) is started in a temporary directory (needs mariadbd,
see tests/support/ensure-mariadb).  With --dsn, databases named
``fwq_bench_*`` are created and dropped on that server.

Phases, each on an empty queue table:
  - roundtrip: ``SELECT 1`` transactions one after another (driver overhead);
  - push 1 seq: one job per push, one push at a time (latency-bound);
  - push 1 x16: one job per push, 16 pushes in flight (pool concurrency);
  - push 100: multi-row pushes of 100 jobs, one at a time;
  - grab+complete: grab 100, complete 100 (success), until empty.
Columns: wall-clock rate, and CPU time this process spent per operation
(what a driver costs the reactor's process, GIL included).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import task  # noqa: E402
from twisted.internet.defer import DeferredSemaphore, ensureDeferred, gatherResults  # noqa: E402

from fireworq.model import Completion, CompletionKind, NewJob, PushEntry, Result  # noqa: E402
from fireworq.server.stores import open_mysql  # noqa: E402
from fireworq.store.mysql.driver import available_drivers  # noqa: E402

QUEUE = "bench"


def _job(i: int) -> NewJob:
    return NewJob(category="bench", url="http://worker.test/bench", payload='{"n":%d,"pad":"%s"}' % (i, "x" * 64))


class Timer:
    """Wall-clock and process CPU time of a phase."""

    def __enter__(self) -> "Timer":
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


async def _phases(reactor: Any, dsn: str, driver: str, jobs: int, pool_size: int) -> List[Tuple[str, float, str, float]]:
    store, repository, leases = open_mysql(dsn, None, reactor, driver=driver, fence_grabs=False,
                                           pool_size=pool_size)
    await store.start()
    pool = store._pool
    rows: List[Tuple[str, float, str, float]] = []

    queue = [QUEUE]

    async def reset() -> None:
        # A fresh queue table per phase.
        queue[0] = f"{QUEUE}{len(rows)}"
        await store.prepare_queue(queue[0])

    def select1(cursor: Any) -> None:
        cursor.execute("SELECT 1")
        cursor.fetchall()

    n = jobs
    with Timer() as t:
        for _ in range(n):
            await pool.run(select1)
    rows.append(("roundtrip", n / t.wall, "tx/s", t.cpu / n * 1e6))

    await reset()
    n = max(50, jobs // 4)
    with Timer() as t:
        for i in range(n):
            await store.push([PushEntry(queue[0], _job(i))])
    rows.append(("push 1 seq", n / t.wall, "jobs/s", t.cpu / n * 1e6))

    await reset()
    n = jobs
    semaphore = DeferredSemaphore(16)
    with Timer() as t:
        await gatherResults([semaphore.run(store.push, [PushEntry(queue[0], _job(i))]) for i in range(n)])
    rows.append(("push 1 x16", n / t.wall, "jobs/s", t.cpu / n * 1e6))

    await reset()
    n = jobs * 10
    with Timer() as t:
        for start in range(0, n, 100):
            await store.push([PushEntry(queue[0], _job(i)) for i in range(start, min(n, start + 100))])
    rows.append(("push 100", n / t.wall, "jobs/s", t.cpu / n * 1e6))

    done = 0
    with Timer() as t:
        while True:
            grabbed = await store.grab(queue[0], 100, 1)
            if not grabbed:
                break
            await store.complete(
                queue[0], [Completion(j, CompletionKind.SUCCESS, Result("success")) for j in grabbed], 1
            )
            done += len(grabbed)
    rows.append(("grab+complete 100", done / t.wall, "jobs/s", t.cpu / done * 1e6))

    await store.stop()
    await repository.stop()
    await leases.stop()
    return rows


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="base number of operations per phase")
    parser.add_argument("--dsn", default="", help="use this server (Go DSN) instead of a throwaway one")
    parser.add_argument("--fast", action="store_true", help="throwaway server with flush_log_at_trx_commit=2")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the drivers this many times")
    parser.add_argument("--pool-size", type=int, default=8, help="connections of the store's pool")
    parser.add_argument("--driver", action="append", help="only this driver (repeatable)")
    args = parser.parse_args(argv)

    from tests.support import mariadb

    server: Any
    if args.dsn:
        server = mariadb.ExternalServer(args.dsn)
    else:
        server = mariadb.MariaDBServer(durable=not args.fast)
        server.start()
    drivers = args.driver or [d.name for d in available_drivers()]
    results: Dict[Tuple[str, str], List[float]] = {}
    cpu: Dict[Tuple[str, str], List[float]] = {}
    units: Dict[str, str] = {}
    order: List[str] = []

    async def run(reactor: Any) -> None:
        for _ in range(args.rounds):
            for driver in drivers:
                database = server.fresh_database("fwq_bench")
                try:
                    for phase, rate, unit, cpu_us in await _phases(reactor, database.dsn, driver, args.jobs, args.pool_size):
                        if phase not in order:
                            order.append(phase)
                        units[phase] = unit
                        results.setdefault((phase, driver), []).append(rate)
                        cpu.setdefault((phase, driver), []).append(cpu_us)
                finally:
                    database.drop()

    try:
        task.react(lambda reactor: ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code:
            raise
    finally:
        if not args.dsn:
            server.cleanup()

    print(f"\nMySQL driver benchmark ({'durable' if not args.fast else 'fast'} MariaDB, "
          f"pool of {args.pool_size}, best of {args.rounds})")
    header = f"{'phase':<20}" + "".join(f"{d + ' rate':>20}{d + ' cpu/op':>20}" for d in drivers)
    print(header)
    print("-" * len(header))
    for phase in order:
        line = f"{phase:<20}"
        for driver in drivers:
            rate = max(results[(phase, driver)])
            cpu_us = min(cpu[(phase, driver)])
            line += f"{rate:>14.0f} {units[phase]:<5}{cpu_us:>16.0f} us "
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
