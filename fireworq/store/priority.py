"""
Grabbing by priority (protocol B7): among the due jobs of a queue, higher
priority first, due-time order within a priority -- while a grab still
reads only about as many jobs as it takes, however many wait.

No single index order serves "due now, highest priority first": ordered by
priority, each priority's deferred jobs sit between its due ones and the
next priority's.  So every store asks one range per priority that has due
jobs, highest first, until the grab is full (docs/storage.md, "The grab by
priority", has the plans and the rows read with a million jobs):

  - L{DueJobs}: the in-memory store's claimed jobs, one sorted list per
    priority;
  - SQL for MySQL (L{mysql_priorities_sql}: a loose index scan;
    L{mysql_grab_sql}: one locking range; L{mysql_lone_grab_sql}: both in
    one statement for a queue whose jobs have one priority) and SQLite
    (L{sqlite_priorities_sql}: a recursive index walk;
    L{sqlite_grab_sql}), with the columns and index they need
    (L{MYSQL_JOB_COLUMNS}, L{MYSQL_GRAB_KEY}, L{SQLITE_JOB_COLUMNS});
  - L{due_priorities}: which priorities to ask, from step 1's rows.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from typing import Dict, Iterable, List, Sequence, Tuple

#: A claimed job's place: (next_try in ms, job id).
Key = Tuple[int, int]

_INFINITY = float("inf")


class DueJobs:
    """
    The claimed jobs of one queue, by priority: one list of L{Key}s sorted
    by due time per priority present, and the priorities in descending
    order.  A queue whose jobs all have one priority holds one list, and
    L{take_due} is then the prefix of it that is due, as before priorities.
    """

    def __init__(self) -> None:
        self._lists: Dict[int, List[Key]] = {}
        #: The priorities that have jobs, highest first.
        self._order: List[int] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._lists.values())

    def add(self, priority: int, key: Key) -> None:
        """Add a claimed job."""
        keys = self._lists.get(priority)
        if keys is None:
            keys = self._lists[priority] = []
            # Descending order: insort the negated value.
            position = bisect_right([-p for p in self._order], -priority)
            self._order.insert(position, priority)
        insort(keys, key)

    def remove(self, priority: int, key: Key) -> None:
        """
        Remove a claimed job (deleted, or grabbed some other way).

        @raise KeyError: when it is not held.
        """
        keys = self._lists.get(priority)
        if keys is not None:
            index = bisect_right(keys, key) - 1
            if index >= 0 and keys[index] == key:
                del keys[index]
                if not keys:
                    self._drop(priority)
                return
        raise KeyError((priority, key))

    def _drop(self, priority: int) -> None:
        del self._lists[priority]
        self._order.remove(priority)

    def take_due(self, now: int, limit: int) -> List[Tuple[int, Key]]:
        """
        Remove and return up to ``limit`` jobs due at ``now`` (next_try <=
        now) as (priority, key): highest priority first, due order within
        a priority.  Costs two bisections per priority with jobs, plus the
        jobs taken.
        """
        taken: List[Tuple[int, Key]] = []
        for priority in list(self._order):
            if len(taken) >= limit:
                break
            keys = self._lists[priority]
            due = bisect_right(keys, (now, _INFINITY))
            count = min(due, limit - len(taken))
            if count:
                taken.extend((priority, key) for key in keys[:count])
                del keys[:count]
                if not keys:
                    self._drop(priority)
        return taken

    def priorities(self) -> List[int]:
        """The priorities that have claimed jobs, highest first."""
        return list(self._order)


def due_priorities(rows: Iterable[Sequence[int]], now: int) -> List[int]:
    """
    The priorities to grab from, highest first, from step 1's rows of
    ``(priority, earliest next_try)``: those whose earliest job is due.
    """
    return sorted((int(p) for p, first in rows if first is not None and int(first) <= now), reverse=True)


# -- MySQL ----------------------------------------------------------------------

#: The B7 columns of a MySQL job table, as CREATE TABLE and ALTER TABLE ... ADD
#: COLUMN take them: each has a default, so the original's INSERTs, which
#: leave them out, still work (tests/test_job_options_mysql.py).
MYSQL_JOB_COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("priority", "`priority` TINYINT NOT NULL DEFAULT 0"),
    ("deadline_at", "`deadline_at` BIGINT UNSIGNED NULL"),
    ("options", "`options` MEDIUMBLOB NULL"),
    ("canceling", "`canceling` TINYINT NOT NULL DEFAULT 0"),
)

#: The index of the grab by priority (the original's ``grab`` index stays).
MYSQL_GRAB_KEY = ("grab_priority", "KEY `grab_priority` (`status`, `priority`, `next_try`)")


def mysql_add_columns_ddl(table: str, columns: Iterable[str], keys: Iterable[str]) -> str:
    """
    The online ALTER that gives a job table (``table`` quoted) the B7
    columns and index it lacks, given the names of the ``columns`` and
    ``keys`` it has; C{""} when it lacks none.
    """
    have_columns, have_keys = set(columns), set(keys)
    parts = [f"ADD COLUMN {ddl}" for name, ddl in MYSQL_JOB_COLUMNS if name not in have_columns]
    if MYSQL_GRAB_KEY[0] not in have_keys:
        parts.append(f"ADD {MYSQL_GRAB_KEY[1]}")
    if not parts:
        return ""
    return f"ALTER TABLE {table} " + ", ".join(parts) + ", ALGORITHM=INPLACE, LOCK=NONE"


def mysql_priorities_sql(table: str) -> str:
    """
    Step 1: each priority with claimed jobs and its earliest ``next_try``.
    A loose index scan of ``grab_priority``: one index entry read per
    priority ("Using index for group-by").
    """
    return f"SELECT priority, MIN(next_try) FROM {table} WHERE status = 'claimed' GROUP BY status, priority"


def mysql_grab_sql(table: str, columns: str, priority: int, now: str, limit: int) -> str:
    """
    Step 2, once per priority from L{due_priorities}, highest first: the
    due jobs of one priority in due order, locked, reading about ``limit``
    index entries.
    """
    return (
        f"SELECT {columns} FROM {table} FORCE INDEX (`grab_priority`) "
        f"WHERE status = 'claimed' AND priority = {int(priority)} AND next_try <= {now} "
        f"ORDER BY next_try, job_id LIMIT {int(limit)} FOR UPDATE"
    )


def mysql_lone_grab_sql(table: str, columns: str, priority: int, now: str, limit: int) -> str:
    """
    The grab of a queue whose claimed jobs all had one priority at its last
    grab (every queue without priorities): step 2 for ``priority`` alone,
    each row ending with a flag that is 1 when the queue holds a claimed
    job of any other priority -- two index seeks of ``grab_priority``, one
    on each side of ``priority``, evaluated once.  A flag of 0 on the
    first row means the grab is complete in this one statement; no row, or
    a flag of 1, means the grab must be made again by steps 1 and 2 (in the
    same transaction: the rows locked here are locked again there).
    """
    other = (
        f"SELECT 1 FROM {table} FORCE INDEX (`grab_priority`) "
        f"WHERE status = 'claimed' AND priority <> {int(priority)} LIMIT 1"
    )
    return (
        f"SELECT {columns}, EXISTS ({other}) FROM {table} FORCE INDEX (`grab_priority`) "
        f"WHERE status = 'claimed' AND priority = {int(priority)} AND next_try <= {now} "
        f"ORDER BY next_try, job_id LIMIT {int(limit)} FOR UPDATE"
    )


# -- SQLite ---------------------------------------------------------------------

#: The B7 columns of a SQLite job table (ALTER TABLE ... ADD COLUMN form).
SQLITE_JOB_COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("priority", "priority INTEGER NOT NULL DEFAULT 0"),
    ("deadline_at", "deadline_at INTEGER"),
    ("options", "options TEXT"),
    ("canceling", "canceling INTEGER NOT NULL DEFAULT 0"),
)


def sqlite_grab_index_ddl(index: str, table: str) -> str:
    """The index of the grab by priority (both names quoted)."""
    return f"CREATE INDEX IF NOT EXISTS {index} ON {table} (status, priority, next_try)"


def sqlite_priorities_sql(table: str) -> str:
    """
    Step 1 for SQLite, which has no loose index scan: walk the index from
    the highest priority down, one seek per priority, with each one's
    earliest ``next_try``.
    """
    return (
        "WITH RECURSIVE r(p) AS ("
        f"SELECT MAX(priority) FROM {table} WHERE status = 'claimed' "
        "UNION ALL "
        f"SELECT (SELECT MAX(priority) FROM {table} WHERE status = 'claimed' AND priority < r.p) "
        "FROM r WHERE r.p IS NOT NULL) "
        f"SELECT p, (SELECT MIN(next_try) FROM {table} WHERE status = 'claimed' AND priority = r.p) "
        "FROM r WHERE p IS NOT NULL"
    )


def sqlite_grab_sql(table: str, columns: str) -> str:
    """Step 2 for SQLite; parameters: priority, now (ms), limit."""
    return (
        f"SELECT {columns} FROM {table} WHERE status = 'claimed' AND priority = ? AND next_try <= ? "
        "ORDER BY next_try, job_id LIMIT ?"
    )
