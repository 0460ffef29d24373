"""
The errors of the queue manager's operations, for the web layer to map
to answers (404, 400); L{fireworq.manager} re-exports them.
"""

from __future__ import annotations

from typing import Optional


class UnknownCategory(Exception):
    """No routing for the category and no default queue."""

    def __init__(self, category: str) -> None:
        super().__init__(
            f"no routing exists for job category {category!r} and no default queue is configured"
        )
        self.category = category


class UndefinedQueue(Exception):
    """The queue a request names (or a routing points to) is not defined."""

    def __init__(self, queue_name: str, category: Optional[str] = None) -> None:
        if category is None:
            message = f"queue {queue_name!r} is not defined"
        else:
            message = (
                f"queue {queue_name!r}, to which job category {category!r} is routed, "
                "is not defined"
            )
        super().__init__(message)
        self.queue_name = queue_name


class QueueConflict(Exception):
    """A new queue name would share storage with an existing queue."""
