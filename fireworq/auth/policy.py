"""
Which scope each API route needs: the one table, keyed by the Klein
endpoint name (the route method's name), that the gate
(L{fireworq.auth.gate}) applies and docs/security.md shows.

A route missing from the table is refused to every token but a global
admin's (and tests/test_auth_routes.py fails), so a new endpoint cannot
be left open by mistake: add its line here.
"""

from __future__ import annotations

from typing import Dict, Optional

import attr

from fireworq.auth.tokens import ADMIN, PUSH, READ


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Access:
    """
    What a route needs.

    @ivar scope: ``push``, ``read`` or ``admin``; L{ANY}: any valid token;
        None: no token needed.
    @ivar queue_arg: the path argument naming a queue, checked against a
        tenant token's ``queues`` (a queue outside is answered 404).
    @ivar global_admin: only an admin token without ``queues`` may call it
        (making and revoking tokens, changing schedules and hooks).
    @ivar unrestricted: only a token without ``queues`` may call it (the
        scope still applies): answers about the whole server that would
        name other tenants' queues (settings, tokens).
    @ivar filtered: the route itself limits what it shows or changes to
        the token's queues (lists, pushes routed by category, routings).
    """

    scope: Optional[str]
    queue_arg: Optional[str] = None
    global_admin: bool = False
    filtered: bool = False
    unrestricted: bool = False


PUBLIC = Access(None)

#: The scope of a route any valid token may call.
ANY = "any"

#: Endpoint name -> what it needs.
ROUTE_ACCESS: Dict[str, Access] = {
    # Liveness and the console's static files (no data in them).
    "health": PUBLIC,
    "version": PUBLIC,
    "console_redirect": PUBLIC,
    "console_index": PUBLIC,
    "console_asset": PUBLIC,
    # Server information.
    "root": Access(READ),
    "openapi": Access(READ),
    "stats": Access(READ),
    "prometheus_metrics": Access(READ, filtered=True),
    # Live events: filtered to the token's queues as they stream.
    "events": Access(READ, filtered=True),
    # read = every GET except secrets (B14): the settings mask theirs.
    "settings": Access(READ, unrestricted=True),
    # Pushing (the category's queue is checked once routed).
    "push_job": Access(PUSH, filtered=True),
    "push_jobs": Access(PUSH, filtered=True),
    # Queues.
    "list_queues": Access(READ, filtered=True),
    "queues_stats": Access(READ, filtered=True),
    "get_queue": Access(READ, "name"),
    "put_queue": Access(ADMIN, "name"),
    "delete_queue": Access(ADMIN, "name"),
    "queue_node": Access(READ, "name"),
    "queue_stats": Access(READ, "name"),
    "pause_queue": Access(ADMIN, "name"),
    "resume_queue": Access(ADMIN, "name"),
    "purge_queue": Access(ADMIN, "name"),
    # Signing secrets (B11): a secret lets its holder forge deliveries.
    "signing_key": Access(ADMIN, "name"),
    "rotate_signing_key": Access(ADMIN, "name"),
    # Jobs and the failure log.
    "grabbed_jobs": Access(READ, "name"),
    "waiting_jobs": Access(READ, "name"),
    "deferred_jobs": Access(READ, "name"),
    "get_job": Access(READ, "name"),
    "delete_job": Access(ADMIN, "name"),
    "failed_jobs": Access(READ, "name"),
    "get_failed": Access(READ, "name"),
    "delete_failed": Access(ADMIN, "name"),
    "retry_failed": Access(ADMIN, "name"),
    # Job history (B8).
    "completed_jobs": Access(READ, "name"),
    "retry_job": Access(ADMIN, "name"),
    # Routings (each checked against the routing's queue).
    "list_routings": Access(READ, filtered=True),
    "get_routing": Access(READ, filtered=True),
    "put_routing": Access(ADMIN, filtered=True),
    "delete_routing": Access(ADMIN, filtered=True),
    # Schedules (B10): they push to any category, so only a global admin
    # changes or runs them; reading them is ``read`` (every GET but secrets),
    # a tenant seeing only those routed to its queues.
    "list_schedules": Access(READ, filtered=True),
    "get_schedule": Access(READ, filtered=True),
    "put_schedule": Access(ADMIN, global_admin=True),
    "delete_schedule": Access(ADMIN, global_admin=True),
    "run_schedule": Access(ADMIN, global_admin=True),
    # Event hooks (B12): a hook may send events of every queue to any URL,
    # so only a global admin changes them; any read token sees them (never
    # their secrets), a tenant only those limited to its own queues.
    "list_hooks": Access(READ, filtered=True),
    "get_hook": Access(READ, filtered=True),
    "put_hook": Access(ADMIN, global_admin=True),
    "delete_hook": Access(ADMIN, global_admin=True),
    # Tokens.
    "create_token": Access(ADMIN, global_admin=True),
    # Tokens are shown without their secrets (B14), so reading them is ``read``.
    "list_tokens": Access(READ, unrestricted=True),
    "get_token": Access(READ, unrestricted=True),
    "delete_token": Access(ADMIN, global_admin=True),
    "whoami": Access(ANY),
}

#: What a route missing from the table needs.
UNLISTED = Access(ADMIN, global_admin=True)


def access_of(endpoint: str) -> Access:
    """What the route ``endpoint`` needs (L{UNLISTED} when it is not in the table)."""
    return ROUTE_ACCESS.get(endpoint, UNLISTED)
