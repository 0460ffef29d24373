"""
The fixture of the client's real-server tests: one real server (the
L{ServerTestCase} defaults: sqlite, a worker) and the synchronous
L{fireworq.client.Client} to it, called off the reactor thread.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks

from fireworq.client import Client, RetryPolicy
from tests.support.cases import ServerTestCase


def in_thread(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call off the reactor thread."""
    return threads.deferToThread(f, *args, **kwargs)


class ClientServerCase(ServerTestCase):
    """
    Starts one server (C{self.server}) and a L{Client} to it (C{self.client},
    two attempts per call, closed at the end); L{call} runs one of the
    client's methods in a thread.  A subclass extending C{setUp} yields
    C{super().setUp()} first.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.server = yield self.server()
        self.client = Client(self.server.url(""), retry=RetryPolicy(attempts=2, backoff=0.05))
        self.addCleanup(self.client.close)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``self.client.<method>(*args, **kwargs)`` in a thread; a Deferred of its answer."""
        return in_thread(getattr(self.client, method), *args, **kwargs)
