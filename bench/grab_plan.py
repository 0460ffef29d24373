"""
How a grab by priority reads a job table of a million waiting jobs: the
query plans (EXPLAIN) and the rows actually read (MariaDB's ANALYZE and the
Handler_read counters) of the grab designs of docs/storage.md, on a
throwaway mariadbd (tests/support/mariadb.py).

    .venv/bin/python -m bench.grab_plan [--jobs 1000000] [--limit 100]

The table is the MySQL store's job table (fireworq/store/mysql/schema.py:
the original's columns, ``attempts``, and the B7 columns ``priority``,
``deadline_at``, ``options``, ``canceling`` with the index
``grab_priority (status, priority, next_try)``).  Rows are made inside the
server (the Sequence engine), so filling a million takes seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Dict, List, Sequence

from fireworq.store.mysql.schema import job_table, queue_tables_ddl
from fireworq.store.priority import mysql_add_columns_ddl, mysql_lone_grab_sql
from tests.support import mariadb
from tests.support.original_sql import JOB_SCHEMA

TABLE = job_table("bench")

#: The job table exactly as the MySQL store creates it.
DDL = queue_tables_ddl("bench")[0]

NOW = "CAST(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)"


def ranks_query() -> str:
    """Step 1: the priorities that have due jobs (a loose index scan)."""
    return (
        f"SELECT priority, MIN(next_try) FROM {TABLE} "
        f"WHERE status = 'claimed' GROUP BY status, priority"
    )


def grab_query(priorities: Sequence[int], limit: int) -> str:
    """Step 2: the first ``limit`` due jobs, highest priority first, one range per priority."""
    parts = [
        f"(SELECT job_id, priority, next_try FROM {TABLE} FORCE INDEX (grab_priority) "
        f"WHERE status = 'claimed' AND priority = {int(p)} AND next_try <= {NOW} "
        f"ORDER BY next_try LIMIT {int(limit)})"
        for p in priorities
    ]
    return " UNION ALL ".join(parts) + f" ORDER BY priority DESC, next_try LIMIT {int(limit)}"


def lone_query(priority: int, limit: int) -> str:
    """
    The grab of a queue whose jobs had one priority at its last grab: step 2
    for that priority with a flag saying whether a claimed job of another
    priority exists (fireworq.store.priority.mysql_lone_grab_sql, its SQL).
    """
    return mysql_lone_grab_sql(TABLE, "job_id, priority, next_try", priority, NOW, limit)


def one_statement_query(limit: int) -> str:
    """The naive grab: one ORDER BY priority DESC, next_try (a filesort of every due job)."""
    return (
        f"SELECT job_id FROM {TABLE} WHERE status = 'claimed' AND next_try <= {NOW} "
        f"ORDER BY priority DESC, next_try LIMIT {int(limit)}"
    )


def original_query(limit: int) -> str:
    """The original's grab (grab_jobs.sql), for comparison."""
    return (
        f"SELECT job_id FROM {TABLE} WHERE status = 'claimed' "
        f"AND next_try <= FLOOR(UNIX_TIMESTAMP(CURRENT_TIME(3)) * 1000) ORDER BY next_try ASC LIMIT {int(limit)}"
    )


def measure(cursor: Any, sql: str) -> Dict[str, Any]:
    """EXPLAIN, ANALYZE (rows read per table) and Handler_read counters of ``sql``."""
    cursor.execute("EXPLAIN " + sql)
    names = [d[0] for d in cursor.description]
    explain = [dict(zip(names, row)) for row in cursor.fetchall()]
    cursor.execute("FLUSH STATUS")
    started = time.perf_counter()
    cursor.execute(sql)
    rows = cursor.fetchall()
    elapsed = time.perf_counter() - started
    cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
    handler = {name: int(value) for name, value in cursor.fetchall() if int(value)}
    cursor.execute("ANALYZE FORMAT=JSON " + sql)
    analyzed = json.loads(cursor.fetchone()[0])
    return {"explain": explain, "handler": handler, "rows": len(rows), "ms": round(elapsed * 1000, 1),
            "analyze": analyzed, "result": rows}


def _r_rows(node: Any, out: List[Any]) -> List[Any]:
    """Every (table, r_rows) pair in an ANALYZE FORMAT=JSON tree."""
    if isinstance(node, dict):
        if "table_name" in node and "r_rows" in node:
            out.append((node.get("table_name"), node.get("access_type"), node.get("key"), node["r_rows"]))
        for value in node.values():
            _r_rows(value, out)
    elif isinstance(node, list):
        for value in node:
            _r_rows(value, out)
    return out


def report(title: str, result: Dict[str, Any]) -> None:
    print(f"\n### {title}\n")
    print(f"rows returned: {result['rows']}, {result['ms']} ms")
    print("EXPLAIN:")
    for row in result["explain"]:
        print("  " + " | ".join(f"{k}={v}" for k, v in row.items() if v is not None))
    print("rows read (ANALYZE r_rows per table access):", _r_rows(result["analyze"], []))
    print("Handler_read counters:", result["handler"])


def fill(cursor: Any, jobs: int, spread: bool) -> None:
    """``jobs`` due jobs (priority 0, or spread over -1, 0, 1, 5) and, with spread, 200k deferred high-priority jobs."""
    priority = "ELT(1 + seq % 4, -1, 0, 1, 5)" if spread else "0"
    cursor.execute(
        f"INSERT INTO {TABLE} (next_try, created_at, category, url, payload, priority) "
        f"SELECT {NOW} - 600000 + seq, {NOW} - 600000, 'c', 'http://w/', '{{}}', {priority} "
        f"FROM seq_1_to_{int(jobs)}"
    )
    if spread:
        cursor.execute(
            f"INSERT INTO {TABLE} (next_try, created_at, category, url, payload, priority) "
            f"SELECT {NOW} + 3600000 + seq, {NOW}, 'c', 'http://w/', '{{}}', 5 FROM seq_1_to_200000"
        )
    cursor.execute(f"ANALYZE TABLE {TABLE}")
    cursor.fetchall()


#: The columns and index of ours (B7, B9) that preparing a queue adds to a
#: job table the original made: the store's own ALTER.
ALTER = mysql_add_columns_ddl(TABLE, (), ["grab"])  # the original has none of our columns


def measure_alter(cursor: Any, jobs: int) -> None:
    """How long adding the B7 columns and index takes on an original table of ``jobs`` jobs."""
    original = JOB_SCHEMA[0].render(jobqueue=TABLE.strip("`"))
    cursor.execute(original)
    cursor.execute(
        f"INSERT INTO {TABLE} (next_try, created_at, category, url, payload) "
        f"SELECT {NOW} - 600000 + seq, {NOW} - 600000, 'c', 'http://w/', '{{}}' FROM seq_1_to_{int(jobs)}"
    )
    started = time.perf_counter()
    cursor.execute(ALTER)
    print(f"\n## ALTER of an original table of {jobs} jobs (online: ALGORITHM=INPLACE, LOCK=NONE): "
          f"{time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    server = mariadb.private_server(durable=False, extra_args=["--innodb-buffer-pool-size=512M"])
    try:
        conn = server.admin_connect()
        with conn.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            print("server:", cursor.fetchone()[0])
            for spread in (False, True):
                cursor.execute("DROP DATABASE IF EXISTS grab_plan")
                cursor.execute("CREATE DATABASE grab_plan")
                cursor.execute("USE grab_plan")
                cursor.execute(DDL)
                started = time.perf_counter()
                fill(cursor, args.jobs, spread)
                conn.commit()
                kind = "priorities -1, 0, 1, 5 + 200,000 deferred at 5" if spread else "all priority 0"
                print(f"\n## {args.jobs} waiting jobs, {kind} (filled in {time.perf_counter() - started:.1f} s)")
                ranks = measure(cursor, ranks_query())
                report("step 1: priorities with due jobs", ranks)
                now_ms = int(time.time() * 1000)
                due = sorted((int(p) for p, first in ranks["result"] if int(first) <= now_ms), reverse=True)
                report(f"step 2: grab of {args.limit} over priorities {due}", measure(cursor, grab_query(due, args.limit)))
                lone = measure(cursor, lone_query(0, args.limit))
                conn.rollback()  # its FOR UPDATE locks
                report(f"one statement for a queue of one priority (0): flag {lone['result'][0][-1] if lone['result'] else None}",
                       lone)
                report("for comparison: one statement ORDER BY priority DESC, next_try",
                       measure(cursor, one_statement_query(args.limit)))
                report("for comparison: the original's grab", measure(cursor, original_query(args.limit)))
            cursor.execute("DROP DATABASE IF EXISTS grab_plan")
            cursor.execute("CREATE DATABASE grab_plan")
            cursor.execute("USE grab_plan")
            measure_alter(cursor, args.jobs)
            conn.commit()
        conn.close()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
