"""
L{AuthGate}: the site's root resource when ``--auth`` is on.  It finds the
route a request is for, and before the route runs:

  1. lets public routes through (L{fireworq.auth.policy.PUBLIC});
  2. authenticates the bearer token (none, malformed or unknown: 401 with
     ``WWW-Authenticate``, counted in ``fireworq_auth_failures_total``
     and logged, never with the token);
  3. spends a permit of the token's bucket (429 when empty; the
     ``RateLimit-*`` headers go on every answer to a limited token);
  4. checks the route's scope (403) and, for a tenant token, the queue
     named in the path (404, as for a queue that does not exist);
  5. hands the request to the API with ``request.fireworq_token`` set,
     which routes marked ``filtered`` read (L{fireworq.auth.access}).

With auth off the gate is not built at all: the API runs as before.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, RequestRedirect

from fireworq.auth.access import TOKEN_ATTRIBUTE
from fireworq.auth.limits import Limiter
from fireworq.auth.policy import ANY, Access, access_of
from fireworq.auth.registry import TokenRegistry
from fireworq.auth.tokens import ADMIN, Token
from fireworq.queue_errors import UndefinedQueue
from fireworq.readiness import NotReady
from fireworq.web.errors import write_error

#: Reasons of ``fireworq_auth_failures_total``.
REASONS = ("missing", "malformed", "unknown", "forbidden")

_REALM = b'Bearer realm="fireworq"'


class AuthGate(Resource):
    """
    The root resource in front of the API's (see the module's text).

    @param url_map: the API's werkzeug routing map (to find the endpoint).
    @param metrics: the process's L{fireworq.metrics.Metrics} or None.
    @param metrics_public: whether ``/metrics`` needs no token.
    """

    isLeaf = True
    _log = Logger()

    def __init__(
        self,
        inner: Resource,
        url_map: Map,
        registry: TokenRegistry,
        limiter: Limiter,
        metrics: Any = None,
        metrics_public: bool = False,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._map = url_map
        self.registry = registry
        self.limiter = limiter
        self.metrics_public = metrics_public
        self.failures: Any = None
        if metrics is not None:
            from prometheus_client import Counter

            self.failures = Counter(
                "fireworq_auth_failures",
                "API requests refused for their token: missing, malformed or unknown (401), "
                "or not allowed to make the call (forbidden, 403).",
                ["reason"],
                registry=metrics.registry,
            )
            for reason in REASONS:
                self.failures.labels(reason)

    # -- routing -------------------------------------------------------------------

    def endpoint(self, request: Any) -> Tuple[Optional[str], Dict[str, Any]]:
        """The endpoint the request is for and its path arguments (None when no route matches)."""
        path = request.path
        if request.method == b"POST" and path.startswith(b"/job/") and len(path) > 5:
            return "push_job", {}
        try:
            path_info = unquote_to_bytes(path).decode("utf-8")
        except UnicodeDecodeError:
            return None, {}
        adapter = self._map.bind("localhost", "/", path_info=path_info, default_method=request.method.decode("ascii", "replace"))
        try:
            endpoint, args = adapter.match()
        except (HTTPException, RequestRedirect):
            return None, {}
        return endpoint, args

    # -- answers -------------------------------------------------------------------

    def _refuse(self, request: Any, code: int, reason: str, message: str) -> bytes:
        if self.failures is not None:
            self.failures.labels(reason).inc()
        client = request.getClientAddress()
        self._log.info(
            "API request refused ({reason}): {method} {path} from {client}",
            reason=reason,
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace")[:200],
            client=getattr(client, "host", "?"),
        )
        if code == 401:
            challenge = _REALM
            if reason == "unknown":
                challenge += b', error="invalid_token"'
            elif reason == "malformed":
                challenge += b', error="invalid_request"'
            request.setHeader(b"WWW-Authenticate", challenge)
        return write_error(request, code, message)

    def _token(self, request: Any) -> Any:
        """The request's token, or the answer (bytes) refusing it."""
        header = request.getHeader(b"authorization")
        if header is None:
            return self._refuse(
                request, 401, "missing", "a bearer token is required (header Authorization: Bearer <token>)"
            )
        scheme, _, secret = header.strip().partition(b" ")
        secret = secret.strip()
        if scheme.lower() != b"bearer" or not secret:
            return self._refuse(
                request, 401, "malformed", "the Authorization header must be 'Bearer <token>'"
            )
        try:
            text = secret.decode("ascii")
        except UnicodeDecodeError:
            return self._refuse(request, 401, "unknown", "the bearer token is not valid (unknown or revoked)")
        try:
            token = self.registry.authenticate(text)
        except NotReady as e:
            request.setHeader(b"Retry-After", b"1")
            return write_error(request, 503, str(e))
        if token is None:
            return self._refuse(request, 401, "unknown", "the bearer token is not valid (unknown or revoked)")
        return token

    def _forbidden(self, request: Any, token: Token, access: Access) -> Optional[bytes]:
        """The 403 answer when ``token`` may not call the route, else None."""
        if access.global_admin and (ADMIN not in token.scopes or token.restricted):
            return self._refuse(
                request, 403, "forbidden",
                "this call needs an admin token that is not limited to some queues",
            )
        if access.unrestricted and token.restricted:
            return self._refuse(
                request, 403, "forbidden", "this call needs a token that is not limited to some queues"
            )
        if access.scope == ANY:
            return None
        if not token.allows(access.scope or ADMIN):
            scopes = ", ".join(sorted(token.scopes)) or "none"
            return self._refuse(
                request, 403, "forbidden",
                f"the token's scopes ({scopes}) do not allow this call; it needs {access.scope}",
            )
        return None

    # -- the gate ------------------------------------------------------------------

    def render(self, request: Any) -> Any:
        endpoint, args = self.endpoint(request)
        access = access_of(endpoint) if endpoint is not None else None
        if access is not None and access.scope is None:
            return self._inner.render(request)
        if endpoint == "prometheus_metrics" and self.metrics_public:
            return self._inner.render(request)
        token = self._token(request)
        if not isinstance(token, Token):
            return token
        if token.rate is not None and token.burst is not None:
            decision = self.limiter.take(token.id, token.rate, token.burst)
            for name, value in decision.headers():
                request.setHeader(name, value)
            if not decision.allowed:
                return write_error(
                    request, 429,
                    f"the token is over its rate of {token.rate:g} requests a second "
                    f"(burst {token.burst}); retry in {decision.retry_after} s",
                )
        setattr(request, TOKEN_ATTRIBUTE, token)
        if access is None:
            # No such route (404) or method (405): the API says which.
            return self._inner.render(request)
        refused = self._forbidden(request, token, access)
        if refused is not None:
            return refused
        if access.queue_arg is not None and token.restricted:
            name = args.get(access.queue_arg)
            if isinstance(name, str) and not token.sees(name):
                return write_error(request, 404, str(UndefinedQueue(name)))
        return self._inner.render(request)
