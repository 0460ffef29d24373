"""
How the clients read the server's answers: the readers a L{Call
<fireworq.client.call.Call>} carries, and the patterns of a batch's 400
messages.
"""

from __future__ import annotations

import re
from typing import Any, Callable, List

import attr

from fireworq.client.call import Reply
from fireworq.client.models import Page, PushedJob

#: The 400 message of a batch names the element: ``job [3]: …``.
BATCH_INDEX = re.compile(r"^job \[(\d+)\]")
#: The 400 message of a batch larger than the server takes.
BATCH_LIMIT = re.compile(r"at most (\d+) jobs")


def read_pushed(reply: Reply) -> PushedJob:
    replayed = str(reply.headers.get("idempotent-replayed", "")).lower() == "true"
    job = PushedJob.from_json(reply.data)
    return attr.evolve(job, replayed=True) if replayed else job


def read_pushed_list(reply: Reply) -> List[PushedJob]:
    return [PushedJob.from_json(item) for item in reply.data]


def read_count(reply: Reply) -> List[None]:
    """A batch answer read only for its length (``push_many(keep_jobs=False)``)."""
    if not isinstance(reply.data, list):
        raise TypeError(f"expected a JSON array, not {type(reply.data).__name__}")
    return [None] * len(reply.data)


def read_list_of(cls: Any) -> Callable[[Reply], List[Any]]:
    return lambda reply: [cls.from_json(item) for item in reply.data]


def read_one(cls: Any) -> Callable[[Reply], Any]:
    return lambda reply: cls.from_json(reply.data)


def read_data(reply: Reply) -> Any:
    return reply.data


def read_page(key: str, cls: Any) -> Callable[[Reply], Page]:
    return lambda reply: Page(
        [cls.from_json(item) for item in reply.data.get(key, [])], reply.data.get("next_cursor", "") or ""
    )
