"""
Canaries for L{fireworq.dispatch.internals}, the one module of deliveries
that depends on names Twisted does not publish, and for the public-API
replacements of what used to reach into private names (quiet pool
connections, a plain C{IResponse} instead of treq's private response type).

If one of these fails after a Twisted or treq upgrade, read the message: it
says what moved and what to update.  Do not skip them.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import TransportProxyProducer

from fireworq.dispatch import internals
from fireworq.dispatch.client import collect
from fireworq.dispatch.delivery import make_http_client, make_pool
from tests.support.polling import wait_until

MOVED = (
    "twisted.web._newclient.TransportProxyProducer no longer keeps the transport it "
    "wraps as {name}: a Twisted upgrade changed it, and abort_response_connection now "
    "falls back to loseConnection, so a stalled worker's socket stays open (until its "
    "unsent request bytes drain, which may be never).  Update "
    "fireworq/dispatch/internals.py (PROXIED_TRANSPORT)."
).format(name=internals.PROXIED_TRANSPORT)


class _Transport:
    aborted = lost = False

    def abortConnection(self) -> None:
        self.aborted = True

    def loseConnection(self) -> None:
        self.lost = True


class TransportProxyProducerCanaryTests(SynchronousTestCase):
    """What L{internals.abort_response_connection} relies on."""

    def test_proxy_keeps_the_transport_under_the_known_name(self) -> None:
        transport = _Transport()
        proxy = TransportProxyProducer(transport)
        self.assertIs(getattr(proxy, internals.PROXIED_TRANSPORT, None), transport, MOVED)

    def test_proxy_offers_no_public_abort(self) -> None:
        """
        When Twisted gives the proxy an abortConnection of its own, the
        private reach is no longer needed: call that instead and delete it.
        """
        self.assertFalse(
            hasattr(TransportProxyProducer(_Transport()), "abortConnection"),
            "TransportProxyProducer has a public abortConnection now: use it in "
            "fireworq/dispatch/internals.py and drop the private attribute.",
        )

    def test_abort_aborts_the_wrapped_transport(self) -> None:
        transport = _Transport()
        internals.abort_response_connection(TransportProxyProducer(transport))
        self.assertEqual((transport.aborted, transport.lost), (True, False), MOVED)

    def test_abort_after_the_response_is_a_no_op(self) -> None:
        transport = _Transport()
        proxy = TransportProxyProducer(transport)
        proxy.stopProxying()
        internals.abort_response_connection(proxy)
        self.assertEqual((transport.aborted, transport.lost), (False, False))

    def test_abort_without_a_transport(self) -> None:
        internals.abort_response_connection(None)


class _StallingWorker(Protocol):
    """
    Answers the first bytes of a request with headers and part of a (long)
    body, then stops reading: the client's unsent request bytes stay unsent.
    L{trickle} writes one more body byte -- how a worker that does not read
    notices that the client has gone.
    """

    def __init__(self, workers: List["_StallingWorker"]) -> None:
        self.lost = False
        workers.append(self)

    def dataReceived(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n{\"status\""
        )
        self.transport.pauseProducing()

    def trickle(self) -> bool:
        """Write a byte; whether the connection has been lost."""
        if not self.lost:
            self.transport.write(b" ")
        return self.lost

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


class RealConnectionCanaryTests(TestCase):
    """The abort and the quiet pool, over real sockets."""

    def setUp(self) -> None:
        self.workers: List[_StallingWorker] = []
        factory = Factory.forProtocol(lambda: _StallingWorker(self.workers))
        factory.noisy = False
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self._close_workers)
        self.pool = make_pool(reactor, True, 2, 0)
        self.addCleanup(self.pool.closeCachedConnections)
        self.http = make_http_client(reactor, self.pool)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/"

    def _close_workers(self) -> Any:
        for worker in self.workers:
            if not worker.lost:
                worker.transport.abortConnection()
        return wait_until(lambda: all(w.lost for w in self.workers), timeout=10)

    @inlineCallbacks
    def test_cancelled_body_read_closes_a_stalled_connection(self) -> Any:
        """
        A worker that answered, then stopped reading a large request and
        sending its body: cancelling the read (a delivery timeout) must close
        the socket even though request bytes are still unsent.
        """
        response = yield self.http.post(self.url, data=b"x" * (64 * 1024 * 1024), headers={})
        chunks: List[bytes] = []
        reading = collect(response, chunks.append)
        yield wait_until(lambda: chunks, timeout=10, message="the first body bytes")
        reading.cancel()
        self.failureResultOf(reading)
        [worker] = self.workers
        yield wait_until(worker.trickle, timeout=10, message=MOVED)

    @inlineCallbacks
    def test_worker_connections_are_not_logged(self) -> Any:
        """Pool connections do not log "Starting factory" (Factory.noisy off)."""
        events: List[str] = []

        def observe(event: dict) -> None:
            events.append(str(event.get("log_format", "")))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        response = yield self.http.post(self.url, data=b"{}", headers={})
        self.assertEqual(response.code, 200)
        reading = collect(response, lambda data: None)
        reading.cancel()
        self.failureResultOf(reading)
        self.assertEqual([e for e in events if "factory" in e.lower()], [])

    @inlineCallbacks
    def test_responses_are_plain_iresponses(self) -> Any:
        """The client answers with twisted.web's IResponse, not treq's private type."""
        from twisted.web.iweb import IResponse

        response = yield self.http.post(self.url, data=b"{}", headers={})
        self.assertTrue(IResponse.providedBy(response))
        self.assertNotIn("treq", type(response).__module__)
        reading = collect(response, lambda data: None)
        reading.cancel()
        self.failureResultOf(reading)



class _Recorder(Protocol):
    """Records each request's bytes and answers it with an empty success."""

    def __init__(self, requests: List[bytes]) -> None:
        self.requests = requests
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[: end + 4]
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(self.buffer) < end + 4 + length:
            return
        self.requests.append(self.buffer[: end + 4 + length])
        self.buffer = self.buffer[end + 4 + length :]
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")


class PreparedRequestCanaryTests(TestCase):
    """
    L{fireworq.dispatch.client.DeliveryClient} sends what twisted.web's
    L{Agent} sends for the same POST, byte for byte
    (L{internals.PreparedRequest} writes bytes the client prepared).
    """

    def setUp(self) -> None:
        self.requests: List[bytes] = []
        factory = Factory.forProtocol(lambda: _Recorder(self.requests))
        factory.noisy = False
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    @inlineCallbacks
    def _both(self, persistent: bool, path: str, data: bytes, headers: dict) -> Any:
        from twisted.web.client import Agent
        from twisted.web.http_headers import Headers

        from fireworq.dispatch.client import CachedEndpoints

        pool = make_pool(reactor, persistent, 2, 0)
        self.addCleanup(pool.closeCachedConnections)
        url = f"http://127.0.0.1:{self.port.getHost().port}{path}"
        ours = yield make_http_client(reactor, pool).post(url, data=data, headers=headers)
        yield collect(ours, lambda _: None)
        agent = Agent.usingEndpointFactory(reactor, CachedEndpoints(reactor), pool=pool)
        from hyperlink import EncodedURL

        encoded = EncodedURL.from_text(url).to_uri().to_text().encode("ascii")
        theirs = yield agent.request(b"POST", encoded, Headers(dict(headers)), _Body(data) if data else None)
        yield collect(theirs, lambda _: None)
        self.assertEqual(len(self.requests), 2)
        self.assertEqual(self.requests[0], self.requests[1])
        self.assertEqual(ours.request.headers, theirs.request.headers)

    def test_delivery_headers(self) -> Any:
        headers = {
            b"Content-Type": [b"application/json"],
            b"User-Agent": [b"Fireworq/1"],
            b"X-Fireworq-Job-Id": [b"12"],
            b"x-custom": [b"a\r\nb", "\u00e9"],
            b"X-CUSTOM": [b"last"],
            b"webhook-id": [b"msg_1"],
            b"Etag": [b"e"],
        }
        return self._both(True, "/work?x=1&y=\u00e9", b'{"n": 1}', headers)

    def test_without_keep_alive(self) -> Any:
        return self._both(False, "/", b"{}", {b"X-Fireworq-Queue": [b"q"]})

    def test_empty_body(self) -> Any:
        return self._both(True, "/a/b", b"", {})


class _Body:
    """A request body for Agent, written in one go."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Any:
        from twisted.internet.defer import succeed

        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
