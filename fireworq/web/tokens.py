"""
Token management (``--auth``): ``POST /tokens``, ``GET /tokens``,
``GET /token/{id}`` and ``DELETE /token/{id}``.  The secret is in the
answer of the ``POST`` only; nothing else shows it or its hash.  With
auth off there are no tokens: these routes answer 404 saying so.
"""

from __future__ import annotations

from typing import Any, List, Optional

from fireworq.auth.access import token_of
from fireworq.auth.tokens import InvalidToken, Token, parse_token_request
from fireworq.web.body import json_object
from fireworq.web.errors import ApiError, bad_request, not_found
from fireworq.web.routes import app, json_response


def _found(token: Optional[Token], token_id: str) -> Token:
    if token is None:
        raise not_found(f"no token has the id {token_id!r}")
    return token


class TokenRoutes:
    """Routes that make, show and revoke API tokens."""

    #: The node's L{fireworq.auth.registry.TokenRegistry} (None: auth is off).
    auth: Any = None

    def _registry(self) -> Any:
        if self.auth is None:
            raise ApiError(404, "the server runs without authentication (setting auth): there are no tokens")
        return self.auth

    @app.route("/tokens", methods=["POST"])
    def create_token(self, request: Any) -> Any:
        registry = self._registry()
        try:
            token, secret = parse_token_request(json_object(self.read_body(request)), registry.now_ms())
        except InvalidToken as e:
            raise bad_request(str(e))
        d = registry.create(token)

        def answer(token: Token) -> bytes:
            request.setResponseCode(201)
            out = {"id": token.id, "token": secret}
            out.update(token.to_json())
            request.setHeader(b"Cache-Control", b"no-store")
            return json_response(request, out)

        d.addCallback(answer)
        return d

    @app.route("/tokens", methods=["GET"])
    def list_tokens(self, request: Any) -> Any:
        d = self._registry().tokens()

        def answer(tokens: List[Token]) -> bytes:
            return json_response(request, [t.to_json() for t in tokens])

        d.addCallback(answer)
        return d

    @app.route("/whoami", methods=["GET"])
    def whoami(self, request: Any) -> Any:
        """The request's own token, without its secret (what the console may show and do)."""
        self._registry()
        token = token_of(request)
        if token is None:  # pragma: no cover - the gate always sets it
            raise ApiError(401, "a bearer token is required")
        return json_response(request, token.to_json())

    @app.route("/token/<token_id>", methods=["GET"])
    def get_token(self, request: Any, token_id: str) -> Any:
        d = self._registry().find(token_id)
        d.addCallback(lambda t: json_response(request, _found(t, token_id).to_json()))
        return d

    @app.route("/token/<token_id>", methods=["DELETE"])
    def delete_token(self, request: Any, token_id: str) -> Any:
        d = self._registry().revoke(token_id)
        d.addCallback(lambda t: json_response(request, _found(t, token_id).to_json()))
        return d
