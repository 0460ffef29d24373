"""
L{TokenRegistry}: this node's view of the cluster's tokens.

Every token is loaded from the L{ITokenStore} when the node starts and
again every ``config_refresh_interval`` (a L{Periodic} child), so that a
token made or revoked through any node is known here within that
interval; a change made through this node applies here at once.  A
request is authenticated from memory: the SHA-256 digest of the bearer
secret is looked up in a dict and compared in constant time.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from fireworq.auth.storage import ITokenStore
from fireworq.auth.tokens import ADMIN, BOOTSTRAP_ID, Token, hash_secret, same_hash
from fireworq.readiness import NotReady
from fireworq.timers import Periodic


def _now_ms() -> int:
    return int(time.time() * 1000)


class TokenRegistry(MultiService):
    """
    The tokens this node accepts: the bootstrap admin token (from the
    ``admin_token`` setting, never stored) and the stored ones.

    @param refresh_interval: seconds between reloads of the stored tokens.
    @param on_change: called with the ids of tokens that disappeared (their
        rate buckets are dropped).
    """

    _log = Logger()

    def __init__(
        self,
        store: ITokenStore,
        bootstrap_secret: Optional[str],
        clock: object,
        refresh_interval: float,
        now_ms: Callable[[], int] = _now_ms,
        on_change: Optional[Callable[[List[str]], None]] = None,
    ) -> None:
        super().__init__()
        self.setName("tokens")
        self.store = store
        self.now_ms = now_ms
        self._on_change = on_change
        self._bootstrap: Optional[Token] = None
        if bootstrap_secret:
            self._bootstrap = Token(
                id=BOOTSTRAP_ID,
                name="bootstrap (admin_token setting)",
                scopes=frozenset([ADMIN]),
                secret_hash=hash_secret(bootstrap_secret),
            )
        self._by_hash: Dict[str, Token] = {}
        self._by_id: Dict[str, Token] = {}
        self._prepared = False
        #: Whether the stored tokens were loaded at least once.
        self.loaded = False
        Periodic(refresh_interval, self.refresh, clock=clock, name="token-refresh").setServiceParent(self)

    # -- loading ------------------------------------------------------------------

    def refresh(self) -> "Deferred[None]":
        """Load every stored token (creating the table the first time)."""
        if not self._prepared:
            d = self.store.prepare()

            def prepared(_: object) -> None:
                self._prepared = True

            d.addCallback(prepared)
        else:
            d = succeed(None)
        d.addCallback(lambda _: self.store.all())
        d.addCallback(self._replace)
        return d

    def _replace(self, tokens: List[Token]) -> None:
        gone = [token_id for token_id in self._by_id if token_id not in {t.id for t in tokens}]
        self._by_id = {t.id: t for t in tokens}
        self._by_hash = {t.secret_hash: t for t in tokens}
        if not self.loaded:
            self._log.info("Loaded {count} API tokens", count=len(tokens))
        self.loaded = True
        if gone and self._on_change is not None:
            self._on_change(gone)

    # -- authentication --------------------------------------------------------

    def authenticate(self, secret: str) -> Optional[Token]:
        """
        The token whose secret is ``secret``, or None.

        @raise NotReady: the stored tokens are not loaded yet (and the
            secret is not the bootstrap token's).
        """
        digest = hash_secret(secret)
        bootstrap = self._bootstrap
        if bootstrap is not None and same_hash(bootstrap.secret_hash, digest):
            return bootstrap
        token = self._by_hash.get(digest)
        if token is not None and same_hash(token.secret_hash, digest):
            return token
        if not self.loaded:
            raise NotReady("the server is starting (API tokens are not loaded yet); retry shortly")
        return None

    def valid(self, token_id: str) -> bool:
        """
        Whether the token ``token_id`` is still known here (not revoked):
        for requests that outlive their authentication, such as the live
        events stream, which ends once its token is revoked.
        """
        if self._bootstrap is not None and token_id == self._bootstrap.id:
            return True
        return token_id in self._by_id

    # -- management ------------------------------------------------------------

    def create(self, token: Token) -> "Deferred[Token]":
        """Store ``token``; it is accepted by this node at once."""
        d = self.store.add(token)

        def added(_: object) -> Token:
            self._by_id[token.id] = token
            self._by_hash[token.secret_hash] = token
            return token

        d.addCallback(added)
        return d

    def tokens(self) -> "Deferred[List[Token]]":
        """Every stored token, read from the store (so all nodes agree)."""
        return self.store.all()

    def find(self, token_id: str) -> "Deferred[Optional[Token]]":
        """The stored token ``token_id``, or None."""
        d = self.store.all()
        d.addCallback(lambda tokens: next((t for t in tokens if t.id == token_id), None))
        return d

    def revoke(self, token_id: str) -> "Deferred[Optional[Token]]":
        """Delete a token; this node refuses it at once, the others within the refresh interval."""
        d = self.store.remove(token_id)

        def removed(token: Optional[Token]) -> Optional[Token]:
            known = self._by_id.pop(token_id, None)
            if known is not None:
                self._by_hash.pop(known.secret_hash, None)
            if self._on_change is not None:
                self._on_change([token_id])
            return token

        d.addCallback(removed)
        return d

    def stopService(self) -> "Deferred[None]":
        d = super().stopService()
        d.addCallback(lambda _: self.store.close())
        return d
