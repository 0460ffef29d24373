"""
Connections to workers, over real HTTP on loopback (A8's ``dispatch_*``
settings, A1's timeout):

  - the pool the service builds for a queue reuses one connection with
    ``dispatch_keep_alive``, opens one per delivery (``Connection: close``)
    without it, closes idle ones after ``dispatch_idle_conn_timeout`` and
    keeps max(max_workers, ``dispatch_max_conns_per_host``) per host;
  - a worker that sends its headers and part of its body and then stalls
    gets the timeout failure *and* its connection closed.

The deliverers are the ones L{FireworqService.make_dispatcher} builds from a
loaded configuration, driven directly (the dispatcher is not started).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional, Set

import attr
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Site

from fireworq.config import load
from fireworq.dispatch.delivery import HTTPDeliverer
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.model import Job, QueueDefinition
from fireworq.service import FireworqService, Stores
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess
from tests.support.worker import Worker

#: Seconds a connection may take to be seen closed once it should be.
CLOSE_DEADLINE = 5.0


@attr.s(auto_attribs=True, frozen=True)
class Seen:
    """One request as the worker saw it."""

    connection: int
    peer_port: int
    connection_header: Optional[str]


class _TrackedChannel(HTTPChannel):
    """An HTTP connection that tells its L{ConnectionWorker} it opened and closed."""

    serial = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.serial = self.factory.worker.opened()

    def connectionLost(self, reason: Failure) -> None:
        self.factory.worker.closed(self.serial)
        super().connectionLost(reason)


class _Answer(Resource):
    isLeaf = True

    def __init__(self, worker: "ConnectionWorker") -> None:
        super().__init__()
        self.worker = worker

    def render_POST(self, request: Any) -> bytes:
        header = request.requestHeaders.getRawHeaders(b"connection")
        self.worker.requests.append(
            Seen(
                request.channel.serial,
                request.getClientAddress().port,
                header[0].decode("latin-1").lower() if header else None,
            )
        )
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"status": "success"}).encode()


class ConnectionWorker:
    """
    A worker on loopback that answers success and records, per request, the
    connection it came on (a serial number) and its peer port; and which
    connections are open.
    """

    def __init__(self) -> None:
        self.requests: List[Seen] = []
        self.open: Set[int] = set()
        self.lost: List[int] = []
        self._serials = 0
        site = Site(_Answer(self))
        site.protocol = _TrackedChannel
        site.worker = self  # type: ignore[attr-defined]
        site.noisy = False
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")

    def opened(self) -> int:
        """Note a new connection; its serial number."""
        self._serials += 1
        self.open.add(self._serials)
        return self._serials

    def closed(self, serial: int) -> None:
        """Note that connection ``serial`` closed."""
        self.open.discard(serial)
        self.lost.append(serial)

    def url(self) -> str:
        """Where to deliver."""
        return f"http://127.0.0.1:{self.port.getHost().port}/work"

    def connections(self, since: int = 0) -> List[int]:
        """The connection of each request from the ``since``-th on."""
        return [seen.connection for seen in self.requests[since:]]


def job(url: str, id: int = 1, timeout: int = 0) -> Job:
    """A job for ``url``."""
    return Job(
        id=id,
        category="c",
        url=url,
        payload="{}",
        status="grabbed",
        created_at=1,
        next_try=1,
        timeout=timeout,
        fail_count=0,
        retry_count=0,
        retry_delay=0,
    )


class ConnectionTestCase(TestCase):
    """Builds deliverers the way the service does and cleans everything up."""

    timeout = 60

    def service(self, **settings: str) -> FireworqService:
        """A FireworqService (not started) configured with ``settings``."""
        logs = self.mktemp()
        os.makedirs(logs)
        options: Dict[str, Optional[str]] = {
            "driver": "in-memory",
            "queue_log": os.path.join(logs, "queue.log"),
            "access_log": os.path.join(logs, "access.log"),
            "error_log": os.path.join(logs, "error.log"),
        }
        options.update(settings)
        service = FireworqService(
            load(options, environ={}),
            reactor=reactor,
            stores=Stores(MemoryJobStore(), MemoryRepository()),
        )
        self.addCleanup(service.log_files.close)
        return service

    def dispatcher(self, max_workers: int = 1, **settings: str) -> QueueDispatcher:
        """The (unstarted) dispatcher the service makes for queue "q"."""
        made = self.service(**settings).make_dispatcher(
            QueueDefinition(name="q", polling_interval=200, max_workers=max_workers)
        )
        self.addCleanup(made.deliverer.close)
        return made

    def deliverer(self, max_workers: int = 1, **settings: str) -> HTTPDeliverer:
        """The deliverer of such a dispatcher."""
        deliverer = self.dispatcher(max_workers, **settings).deliverer
        assert isinstance(deliverer, HTTPDeliverer)
        return deliverer

    def worker(self) -> ConnectionWorker:
        """A started L{ConnectionWorker}, all its connections closed at the end."""
        worker = ConnectionWorker()

        @inlineCallbacks
        def stop() -> Any:
            yield worker.port.stopListening()
            yield wait_until(
                lambda: not worker.open,
                CLOSE_DEADLINE,
                message=lambda: f"worker connections {worker.open} to close",
            )

        # Cleanups run last first: make the worker before the deliverers, so
        # that this runs after their close().
        self.addCleanup(stop)
        return worker

    @inlineCallbacks
    def deliver_all(self, deliverer: HTTPDeliverer, url: str, count: int) -> Any:
        """Start ``count`` deliveries at once; check they all succeed."""
        results = yield gatherResults(
            [deliverer.deliver("q", job(url, id=i + 1)) for i in range(count)]
        )
        self.assertEqual({r.status for r in results}, {"success"}, results)


class KeepAliveTests(ConnectionTestCase):
    """``dispatch_keep_alive`` (default: ``keep_alive``)."""

    @inlineCallbacks
    def test_keep_alive_reuses_one_connection(self) -> Any:
        worker = self.worker()
        deliverer = self.deliverer(dispatch_keep_alive="true")
        for i in range(3):
            result = yield deliverer.deliver("q", job(worker.url(), id=i + 1))
            self.assertEqual(result.status, "success")
        self.assertEqual(len(set(worker.connections())), 1, worker.requests)
        self.assertEqual(len({seen.peer_port for seen in worker.requests}), 1)
        self.assertEqual([seen.connection_header for seen in worker.requests], [None] * 3)
        self.assertEqual(len(worker.open), 1)

    @inlineCallbacks
    def test_keep_alive_follows_keep_alive_by_default(self) -> Any:
        worker = self.worker()
        deliverer = self.deliverer(keep_alive="true")
        for i in range(2):
            yield deliverer.deliver("q", job(worker.url(), id=i + 1))
        self.assertEqual(len(set(worker.connections())), 1, worker.requests)

    @inlineCallbacks
    def test_without_keep_alive_each_delivery_has_its_connection(self) -> Any:
        worker = self.worker()
        deliverer = self.deliverer(dispatch_keep_alive="false")
        for i in range(3):
            result = yield deliverer.deliver("q", job(worker.url(), id=i + 1))
            self.assertEqual(result.status, "success")
        self.assertEqual(len(set(worker.connections())), 3, worker.requests)
        self.assertEqual(len({seen.peer_port for seen in worker.requests}), 3)
        self.assertEqual([seen.connection_header for seen in worker.requests], ["close"] * 3)
        yield wait_until(
            lambda: len(worker.lost) == 3,
            CLOSE_DEADLINE,
            message=lambda: f"3 closed connections (closed: {worker.lost})",
        )


class IdleTimeoutTests(ConnectionTestCase):
    """``dispatch_idle_conn_timeout``."""

    @inlineCallbacks
    def test_idle_connection_is_closed_after_the_timeout(self) -> Any:
        timing = self.worker()
        forever = self.worker()
        timed = self.deliverer(dispatch_keep_alive="true", dispatch_idle_conn_timeout="1")
        untimed = self.deliverer(dispatch_keep_alive="true", dispatch_idle_conn_timeout="0")
        yield untimed.deliver("q", job(forever.url()))
        result = yield timed.deliver("q", job(timing.url()))
        idle_since = time.monotonic()
        self.assertEqual(result.status, "success")
        self.assertEqual(len(timing.open), 1)
        yield wait_until(
            lambda: not timing.open,
            1 + CLOSE_DEADLINE,
            message="the idle connection to close",
        )
        self.assertGreater(time.monotonic() - idle_since, 0.5)
        # Idle as long, without a timeout: still open.
        self.assertEqual(len(forever.open), 1)


class ConnectionsPerHostTests(ConnectionTestCase):
    """
    The pool keeps max(max_workers, ``dispatch_max_conns_per_host``) idle
    connections per host: after more deliveries than that at once, as many
    next deliveries at once find a connection, and only that many.
    """

    burst = 8

    @inlineCallbacks
    def assert_keeps(self, worker: ConnectionWorker, deliverer: HTTPDeliverer, kept: int) -> Any:
        """Check that ``deliverer``'s pool keeps ``kept`` connections to ``worker``."""
        yield self.deliver_all(deliverer, worker.url(), self.burst)
        first = set(worker.connections())
        self.assertEqual(len(first), self.burst)
        yield wait_until(
            lambda: len(worker.lost) == self.burst - kept,
            CLOSE_DEADLINE,
            message=lambda: f"{self.burst - kept} connections closed (closed: {worker.lost})",
        )
        yield self.deliver_all(deliverer, worker.url(), self.burst)
        second = set(worker.connections(since=self.burst))
        self.assertEqual(len(second & first), kept, (first, second))
        self.assertEqual(len(second - first), self.burst - kept)

    def test_max_workers_above_conns_per_host(self) -> Any:
        worker = self.worker()
        return self.assert_keeps(
            worker,
            self.deliverer(
                max_workers=5, dispatch_keep_alive="true", dispatch_max_conns_per_host="2"
            ),
            5,
        )

    def test_conns_per_host_above_max_workers(self) -> Any:
        worker = self.worker()
        return self.assert_keeps(
            worker,
            self.deliverer(
                max_workers=2, dispatch_keep_alive="true", dispatch_max_conns_per_host="3"
            ),
            3,
        )

    def test_more_workers_keep_more_connections(self) -> Any:
        worker = self.worker()
        dispatcher = self.dispatcher(
            max_workers=2, dispatch_keep_alive="true", dispatch_max_conns_per_host="3"
        )
        dispatcher.reconfigure(QueueDefinition(name="q", polling_interval=200, max_workers=6))
        return self.assert_keeps(worker, dispatcher.deliverer, 6)

    def test_fewer_workers_keep_conns_per_host(self) -> Any:
        worker = self.worker()
        dispatcher = self.dispatcher(
            max_workers=5, dispatch_keep_alive="true", dispatch_max_conns_per_host="3"
        )
        dispatcher.reconfigure(QueueDefinition(name="q", polling_interval=200, max_workers=1))
        return self.assert_keeps(worker, dispatcher.deliverer, 3)


class StalledBodyTests(ConnectionTestCase):
    """A worker that sends its headers, part of its body, then nothing."""

    @inlineCallbacks
    def check_stall(self, keep_alive: str) -> Any:
        worker = Worker()
        worker.start()
        self.addCleanup(worker.stop)
        deliverer = self.deliverer(dispatch_keep_alive=keep_alive)
        started = time.monotonic()
        result = yield deliverer.deliver("q", job(worker.url("/stall/202"), id=41, timeout=1))
        self.assertGreater(time.monotonic() - started, 0.9)
        self.assertEqual((result.status, result.code), ("internal-failure", 202))
        self.assertIn("timeout", result.message)
        yield wait_until(
            lambda: worker.lost == [41],
            CLOSE_DEADLINE,
            message=lambda: f"the stalled connection to close (lost: {worker.lost})",
        )
        # The next delivery is not sent on what is left of that connection.
        result = yield deliverer.deliver("q", job(worker.url("/success"), id=42, timeout=1))
        self.assertEqual(result.status, "success")

    def test_stall_with_keep_alive(self) -> Any:
        return self.check_stall("true")

    def test_stall_without_keep_alive(self) -> Any:
        return self.check_stall("false")


class StalledBodyEndToEndTests(TestCase):
    """The same through a real server process: the failure log and the worker."""

    timeout = 120

    @inlineCallbacks
    def test_stalled_body_times_out_and_closes(self) -> Any:
        worker = Worker()
        worker.start()
        self.addCleanup(worker.stop)
        workdir = os.path.abspath(self.mktemp())
        server = FireworqProcess(
            workdir,
            {
                "driver": "in-memory",
                "queue_default": "default",
                "queue_default_polling_interval": "100",
                "dispatch_keep_alive": "true",
                "shutdown_timeout": "5",
            },
        )
        self.addCleanup(server.kill)
        yield server.start()
        code, pushed = yield server.call(
            "POST", "/job/c", {"url": worker.url("/stall/202"), "timeout": 1}
        )
        self.assertEqual(code, 200, pushed)

        def logged() -> Deferred:
            d = server.call("GET", "/queue/default/failed")
            d.addCallback(lambda answer: answer[1]["failed_jobs"])
            return d

        failed = (yield wait_until(logged, 15))[0]
        self.assertEqual(failed["result"]["status"], "internal-failure")
        self.assertEqual(failed["result"]["code"], 202)
        self.assertIn("timeout", failed["result"]["message"])
        yield wait_until(
            lambda: worker.lost == [pushed["id"]],
            CLOSE_DEADLINE,
            message=lambda: f"the stalled connection to close (lost: {worker.lost})",
        )
