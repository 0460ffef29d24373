"""
Building the auth parts of a server process (``--auth``): the node's
L{TokenRegistry} over the driver's token store, and the L{AuthGate} in
front of the API's root resource.
"""

from __future__ import annotations

from typing import Any, Tuple

from twisted.logger import Logger

from fireworq.auth.gate import AuthGate
from fireworq.auth.limits import Limiter
from fireworq.auth.registry import TokenRegistry
from fireworq.auth.storage import open_token_store


_log = Logger()


def build_auth(config: Any, stores: Any, api: Any, root: Any, metrics: Any, reactor: Any) -> Tuple[TokenRegistry, AuthGate]:
    """
    The registry (a service: run it once the store is open) and the gate
    to serve instead of ``root``.  ``api.auth`` is set to the registry
    (the token routes use it).
    """
    if not config.admin_token:
        _log.warn(
            "Authentication is on without admin_token: only tokens already stored are accepted"
            + (" (none can exist with the in-memory store)" if config.driver == "in-memory" else "")
        )
    limiter = Limiter(reactor.seconds)
    registry = TokenRegistry(
        open_token_store(config, stores.repository, reactor),
        config.admin_token or None,
        reactor,
        config.config_refresh_interval / 1000.0,
        on_change=limiter.forget,
    )
    api.auth = registry
    gate = AuthGate(root, api.app.url_map, registry, limiter, metrics, metrics_public=config.metrics_public)
    return registry, gate
