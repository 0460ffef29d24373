"""
The values the two clients pass around: a L{Call} (one request and how to
read its answer) and the L{Reply} its reader gets.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import attr

Params = List[Tuple[str, str]]


@attr.s(auto_attribs=True, frozen=True)
class Reply:
    """An answer as the clients hand it to a call's reader."""

    status: int
    headers: Mapping[str, str]
    data: Any


@attr.s(auto_attribs=True, frozen=True)
class Call:
    """
    One request: ``method`` and ``path`` (already quoted), query ``params``,
    an encoded JSON ``body``, extra ``headers``; ``idempotent`` when it may
    be sent again after a 503 or a transport failure; ``read`` turns the
    L{Reply} of a 2xx answer into the result; ``accept`` lists non-2xx
    statuses that are answers rather than errors (``/health``'s 503).
    """

    method: str
    path: str
    read: Callable[[Reply], Any]
    params: Params = attr.ib(factory=list)
    body: Optional[bytes] = None
    headers: Dict[str, str] = attr.ib(factory=dict)
    idempotent: bool = False
    accept: Tuple[int, ...] = ()
    text: bool = False
