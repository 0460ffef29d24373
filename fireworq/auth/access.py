"""
What a route may show or change for the request's token (set by
L{fireworq.auth.gate.AuthGate}; no token when auth is off, and then
everything is visible).  Used by the routes the policy marks
``filtered``: lists, pushes (routed by category) and routings.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, TypeVar

from fireworq.auth.tokens import Token
from fireworq.queue_errors import UndefinedQueue, UnknownCategory

T = TypeVar("T")

#: Set by the gate on each authenticated request.
TOKEN_ATTRIBUTE = "fireworq_token"


def token_of(request: Any) -> Optional[Token]:
    """The authenticated token of ``request`` (None when auth is off or the route is public)."""
    return getattr(request, TOKEN_ATTRIBUTE, None)


def tenant_of(request: Any) -> Optional[Token]:
    """The request's token when it sees only some queues, else None."""
    token = token_of(request)
    return token if token is not None and token.restricted else None


def sees(request: Any, queue_name: str) -> bool:
    """Whether the request's token may see the queue ``queue_name``."""
    token = tenant_of(request)
    return token is None or token.sees(queue_name)


def visible(request: Any, items: Iterable[T], queue_of: Callable[[T], str]) -> List[T]:
    """``items`` whose queue the request's token may see."""
    token = tenant_of(request)
    if token is None:
        return list(items)
    return [item for item in items if token.sees(queue_of(item))]


def check_queue(request: Any, queue_name: str) -> None:
    """
    @raise UndefinedQueue: the token may not see ``queue_name`` (answered
        404, as for a queue that does not exist).
    """
    if not sees(request, queue_name):
        raise UndefinedQueue(queue_name)


FinishPush = Callable[[Any, Sequence[Any]], Tuple[Sequence[Any], Optional[Sequence[Optional[str]]]]]


def tenant_finish(request: Any, category: str, finish: Optional[FinishPush]) -> Optional[FinishPush]:
    """
    The ``finish`` step of a push (L{fireworq.manager.QueueManager.push})
    for the request's token: for a tenant, it first refuses a category
    routed to a queue outside the token's ``queues`` (404, as for an
    unknown category); ``finish`` itself unchanged otherwise.
    """
    token = tenant_of(request)
    if token is None:
        return finish

    def checked(definition: Any, jobs: Sequence[Any]) -> Any:
        if definition is None or not token.sees(definition.name):
            raise UnknownCategory(category)
        if finish is None:
            return jobs, None
        return finish(definition, jobs)

    return checked


def glob_inside(request: Any, glob: Optional[str]) -> bool:
    """
    Whether every queue matching ``glob`` (None: every queue) is one the
    request's token may see: for a tenant, ``glob`` must be its own
    ``queues`` or a plain queue name inside them (a conservative test:
    another glob may reach other tenants' queues, and names them).
    """
    token = tenant_of(request)
    if token is None:
        return True
    if glob is None:
        return False
    if glob == token.queues:
        return True
    return not any(c in glob for c in "*?[") and token.sees(glob)
