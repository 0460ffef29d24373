"""
Tests for L{fireworq.store.priority}: the grab by priority of the in-memory
store (L{DueJobs}) and of SQLite (on a real SQLite table); the MySQL half
runs on MariaDB in tests/test_job_options_mysql.py.
"""

from __future__ import annotations

import random
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from fireworq.store.priority import (
    MYSQL_JOB_COLUMNS,
    DueJobs,
    due_priorities,
    mysql_add_columns_ddl,
    mysql_grab_sql,
    sqlite_grab_index_ddl,
    sqlite_grab_sql,
    sqlite_priorities_sql,
)
from fireworq.store.priority import SQLITE_JOB_COLUMNS


def expected_order(jobs, now, limit):
    """The reference: due jobs sorted by (-priority, next_try, id)."""
    due = sorted((-p, t, i) for p, t, i in jobs if t <= now)
    return [(-p, (t, i)) for p, t, i in due[:limit]]


class DueJobsTests(SynchronousTestCase):
    def test_one_priority_is_the_due_prefix(self) -> None:
        due = DueJobs()
        for key in [(30, 3), (10, 1), (20, 2), (99, 4)]:
            due.add(0, key)
        self.assertEqual(due.take_due(25, 10), [(0, (10, 1)), (0, (20, 2))])
        self.assertEqual(len(due), 2)
        self.assertEqual(due.take_due(100, 1), [(0, (30, 3))])
        self.assertEqual(due.priorities(), [0])

    def test_priorities_first(self) -> None:
        due = DueJobs()
        due.add(0, (1, 1))
        due.add(5, (50, 2))
        due.add(5, (5, 3))
        due.add(-3, (0, 4))
        due.add(100, (200, 5))  # not due yet
        self.assertEqual(due.priorities(), [100, 5, 0, -3])
        self.assertEqual(due.take_due(60, 3), [(5, (5, 3)), (5, (50, 2)), (0, (1, 1))])
        self.assertEqual(due.priorities(), [100, -3])
        self.assertEqual(due.take_due(60, 0), [])
        self.assertEqual(due.take_due(300, 5), [(100, (200, 5)), (-3, (0, 4))])
        self.assertEqual(len(due), 0)
        self.assertEqual(due.priorities(), [])

    def test_remove(self) -> None:
        due = DueJobs()
        due.add(1, (10, 1))
        due.add(1, (10, 2))
        due.remove(1, (10, 1))
        self.assertRaises(KeyError, due.remove, 1, (10, 1))
        self.assertRaises(KeyError, due.remove, 2, (10, 2))
        due.remove(1, (10, 2))
        self.assertEqual(due.priorities(), [])

    def test_random_against_reference(self) -> None:
        rng = random.Random(7)
        due = DueJobs()
        jobs = set()
        for step in range(3000):
            action = rng.random()
            if action < 0.6:
                job = (rng.choice([-100, -1, 0, 0, 0, 3, 100]), rng.randint(0, 1000), step)
                jobs.add(job)
                due.add(job[0], (job[1], job[2]))
            elif action < 0.75 and jobs:
                job = rng.choice(sorted(jobs))
                jobs.discard(job)
                due.remove(job[0], (job[1], job[2]))
            else:
                now, limit = rng.randint(0, 1000), rng.randint(0, 20)
                taken = due.take_due(now, limit)
                self.assertEqual(taken, expected_order(jobs, now, limit))
                for priority, (t, i) in taken:
                    jobs.discard((priority, t, i))
            self.assertEqual(len(due), len(jobs))


class StepOneTests(SynchronousTestCase):
    def test_due_priorities(self) -> None:
        rows = [(0, 100), (5, 300), (-2, 50), (7, None)]
        self.assertEqual(due_priorities(rows, 200), [0, -2])
        self.assertEqual(due_priorities(rows, 300), [5, 0, -2])
        self.assertEqual(due_priorities([], 300), [])

    def test_mysql_alter(self) -> None:
        table = "`fireworq_jq(q)`"
        full = mysql_add_columns_ddl(table, ["job_id", "status"], ["PRIMARY", "grab"])
        self.assertTrue(full.startswith(f"ALTER TABLE {table} ADD COLUMN `priority` TINYINT NOT NULL DEFAULT 0, "))
        self.assertIn("ADD KEY `grab_priority` (`status`, `priority`, `next_try`)", full)
        self.assertTrue(full.endswith(", ALGORITHM=INPLACE, LOCK=NONE"))
        names = [name for name, _ in MYSQL_JOB_COLUMNS]
        self.assertEqual(mysql_add_columns_ddl(table, names, ["grab_priority"]), "")
        self.assertEqual(
            mysql_add_columns_ddl(table, names[:-1], ["grab_priority"]),
            f"ALTER TABLE {table} ADD COLUMN `canceling` TINYINT NOT NULL DEFAULT 0, ALGORITHM=INPLACE, LOCK=NONE",
        )
        self.assertIn("priority = 3 AND next_try <= NOW", mysql_grab_sql(table, "job_id", 3, "NOW", 10))


class SQLiteGrabTests(SynchronousTestCase):
    """The SQLite statements on a real SQLite table of the planned shape."""

    table = '"fireworq_jq(q)"'

    def setUp(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.addCleanup(self.db.close)
        self.db.execute(
            f"CREATE TABLE {self.table} (job_id INTEGER PRIMARY KEY AUTOINCREMENT, next_try INTEGER NOT NULL, "
            "status TEXT NOT NULL DEFAULT 'claimed', payload TEXT)"
        )
        for _, ddl in SQLITE_JOB_COLUMNS:
            self.db.execute(f"ALTER TABLE {self.table} ADD COLUMN {ddl}")
        self.db.execute(sqlite_grab_index_ddl('"fireworq_jq(q)_grab"', self.table))

    def grab(self, now: int, limit: int):
        rows = self.db.execute(sqlite_priorities_sql(self.table)).fetchall()
        taken = []
        for priority in due_priorities(rows, now):
            if len(taken) >= limit:
                break
            for job_id, next_try in self.db.execute(
                sqlite_grab_sql(self.table, "job_id, next_try"), (priority, now, limit - len(taken))
            ):
                taken.append((priority, (next_try, job_id)))
        return taken

    def test_order(self) -> None:
        rng = random.Random(3)
        jobs = []
        for _ in range(500):
            priority, next_try = rng.choice([-5, 0, 0, 2, 9]), rng.randint(0, 1000)
            cursor = self.db.execute(
                f"INSERT INTO {self.table} (next_try, priority) VALUES (?, ?)", (next_try, priority)
            )
            jobs.append((priority, next_try, cursor.lastrowid))
        self.db.execute(f"UPDATE {self.table} SET status = 'grabbed' WHERE job_id % 7 = 0")
        claimed = [j for j in jobs if j[2] % 7]
        for now, limit in [(500, 30), (1000, 1000), (0, 5), (300, 1)]:
            self.assertEqual(self.grab(now, limit), expected_order(claimed, now, limit))

    def test_plans_use_the_index(self) -> None:
        plan = " / ".join(r[-1] for r in self.db.execute("EXPLAIN QUERY PLAN " + sqlite_priorities_sql(self.table)))
        self.assertIn("USING COVERING INDEX", plan)
        self.assertIn("priority<?", plan)
        self.assertNotIn("SCAN " + self.table.strip('"'), plan)
        plan = " / ".join(
            r[-1] for r in self.db.execute("EXPLAIN QUERY PLAN " + sqlite_grab_sql(self.table, "job_id"), (0, 0, 1))
        )
        self.assertIn("(status=? AND priority=? AND next_try<?)", plan)
        self.assertNotIn("TEMP B-TREE", plan)
