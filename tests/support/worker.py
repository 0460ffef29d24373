"""
A real worker for tests: an HTTP server on loopback, in the test's reactor,
that records every delivery and answers according to the URL path:

  /success          {"status":"success"}
  /failure          {"status":"failure"}
  /permanent        {"status":"permanent-failure"}
  /garbage          a body that is not JSON
  /invalid          {"status":"weird"}
  /flaky/<n>        failure for the first <n> attempts of a job, then success
  /sleep/<s>/<then> answer as /<then> after <s> seconds
  /hang             never answer
  /stall[/<code>]   send the status line (<code>, default 200), the headers
                    and the start of a JSON body, then never finish

``Worker.lost`` lists the job ids of deliveries whose connection closed
before their answer was finished (a timed-out /hang or /stall, say).
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional

import attr
from twisted.internet import reactor as default_reactor
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


@attr.s(auto_attribs=True, frozen=True)
class Delivery:
    """One request the worker received."""

    path: str
    headers: Dict[str, str]
    body: bytes
    received_at: float

    @property
    def job_id(self) -> int:
        return int(self.headers.get("x-fireworq-job-id", "0"))


class _WorkerResource(Resource):
    isLeaf = True

    def __init__(self, worker: "Worker") -> None:
        super().__init__()
        self.worker = worker

    def render_POST(self, request: Any) -> Any:
        worker = self.worker
        body = request.content.read()
        path = request.path.decode("utf-8")
        headers = {
            k.decode("latin-1").lower(): v[0].decode("utf-8", "replace")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        delivery = Delivery(path, headers, body, time.time())
        worker.deliveries.append(delivery)
        worker.current += 1
        worker.max_concurrent = max(worker.max_concurrent, worker.current)
        finished = [False]

        def done(outcome: object = None) -> None:
            if not finished[0]:
                finished[0] = True
                worker.current -= 1
                if isinstance(outcome, Failure):
                    worker.lost.append(delivery.job_id)

        request.notifyFinish().addBoth(done)
        self._answer(request, path, delivery, finished)
        return NOT_DONE_YET

    def _answer(self, request: Any, path: str, delivery: Delivery, finished: List[bool]) -> None:
        parts = [p for p in path.split("/") if p]
        kind = parts[0] if parts else "success"
        if kind == "hang":
            return
        if kind == "stall":
            request.setResponseCode(int(parts[1]) if len(parts) > 1 else 200)
            request.setHeader(b"Content-Type", b"application/json")
            request.write(b'{"status":"succ')
            return
        if kind == "sleep":
            seconds = float(parts[1])
            rest = "/" + "/".join(parts[2:])
            call = self.worker.reactor.callLater(
                seconds, lambda: finished[0] or self._answer(request, rest, delivery, finished)
            )
            self.worker.timers.append(call)
            return
        if kind == "flaky":
            failures = int(parts[1])
            attempt = int(delivery.headers.get("x-fireworq-attempt", "1"))
            kind = "failure" if attempt <= failures else "success"
        bodies = {
            "success": {"status": "success", "message": "done"},
            "failure": {"status": "failure", "message": "try again"},
            "permanent": {"status": "permanent-failure", "message": "never again"},
            "invalid": {"status": "weird"},
        }
        if kind == "garbage":
            payload = b"<html>not json</html>"
        else:
            payload = json.dumps(bodies.get(kind, bodies["success"])).encode()
        request.setHeader(b"Content-Type", b"application/json")
        request.write(payload)
        request.finish()


class Worker:
    """A recording worker on a free loopback port."""

    def __init__(self, reactor: Any = default_reactor) -> None:
        self.reactor = reactor
        self.deliveries: List[Delivery] = []
        self.current = 0
        self.max_concurrent = 0
        self.timers: List[Any] = []
        self.lost: List[int] = []
        self._port: Optional[Any] = None
        self.scheme = "http"

    def start(self, tls: Any = None) -> None:
        """
        Listen on a free port of 127.0.0.1; over TLS when ``tls`` (a server
        context factory, e.g. C{twisted.internet.ssl.CertificateOptions}) is given.
        """
        site = Site(_WorkerResource(self))
        site.noisy = False
        if tls is None:
            self._port = self.reactor.listenTCP(0, site, interface="127.0.0.1")
        else:
            self.scheme = "https"
            self._port = self.reactor.listenSSL(0, site, tls, interface="127.0.0.1")

    def stop(self) -> Deferred:
        """Stop listening and forget answers still scheduled."""
        for call in self.timers:
            if call.active():
                call.cancel()
        assert self._port is not None
        return self._port.stopListening()

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port.getHost().port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on this worker (``host`` names it, e.g. localhost for a certificate)."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def ids(self) -> List[int]:
        """Job ids of every delivery, in arrival order."""
        return [d.job_id for d in self.deliveries]
