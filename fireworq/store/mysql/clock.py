"""
The clock of a MySQL job store's transactions: the time its statements
stamp, read once per transaction from the database (or a test's fixed
clock).
"""

from __future__ import annotations

from typing import Any, Tuple


def clock_ms(cursor: Any, clock: str) -> int:
    """
    The time a statement of this transaction should stamp, in ms: ``clock``
    is either digits (a test's fixed clock) or an SQL expression of the
    database clock, read once.
    """
    if clock.isdigit():
        return int(clock)
    cursor.execute(f"SELECT {clock}")
    return int(cursor.fetchone()[0])


def clock_and_step(cursor: Any, clock: str) -> Tuple[int, int]:
    """Like L{clock_ms}, and the session's auto-increment step, in one statement."""
    cursor.execute(f"SELECT {clock}, @@SESSION.auto_increment_increment")
    now, step = cursor.fetchone()
    return int(now), max(1, int(step))
