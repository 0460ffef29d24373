"""
TLS (B15) with real processes and a throwaway CA made in the test
(tests/support/certs.py, the ``cryptography`` package):

  - the API served over ``ssl:`` (``bind`` as a Twisted endpoint
    description) and over ``unix:``;
  - deliveries to an ``https://`` worker whose certificate the throwaway CA
    signed: accepted with ``dispatch_ca_file``, refused (a failed attempt
    whose message says certificate) without it or for the wrong host name.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile

import httpx
from twisted.internet import ssl as twisted_ssl
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread

from tests.support.cases import ServerTestCase
from tests.support.certs import ThrowawayCA
from tests.support.polling import wait_until
from tests.support.server import FireworqProcess
from tests.support.worker import Worker


def _get(url: str, **client: object) -> "tuple[int, object]":
    with httpx.Client(timeout=5, **client) as c:
        response = c.get(url)
        return response.status_code, response.json()


def _post(url: str, body: object, **client: object) -> "tuple[int, object]":
    with httpx.Client(timeout=5, **client) as c:
        response = c.post(url, content=json.dumps(body).encode())
        return response.status_code, response.json()


class APIOverTLSTests(ServerTestCase):
    """``bind=ssl:…`` serves the API over TLS; ``bind=unix:…`` over a Unix socket."""

    def setUp(self):
        super().setUp()
        self.ca = ThrowawayCA(os.path.join(self.workdir, "ca"))

    def spawn(self, bind: str, **settings: str) -> FireworqProcess:
        settings.update(
            driver="sqlite",
            sqlite_path=os.path.join(self.workdir, "fireworq.sqlite3"),
            queue_default="default",
            queue_default_polling_interval="100",
            bind=bind,
        )
        server = FireworqProcess(self.workdir, settings)
        self.addCleanup(server.kill)
        server.spawn()
        return server

    def probe(self, server, call):
        def healthy():
            if server.process.poll() is not None:
                raise AssertionError("server exited:\n" + server.stderr()[-3000:])
            d = deferToThread(call)
            d.addCallbacks(lambda r: r[0] == 200, lambda f: False)
            return d

        return wait_until(healthy, 30, 0.1, lambda: "the server over TLS:\n" + server.stderr()[-2000:])

    @inlineCallbacks
    def test_ssl_bind(self):
        cert = self.ca.issue(["localhost"], ips=("127.0.0.1",))
        server = FireworqProcess(self.workdir)  # for a free port
        port = server.port
        server = self.spawn(
            f"ssl:{port}:interface=127.0.0.1:privateKey={cert.key_path}:certKey={cert.cert_path}"
        )
        trusted = ssl.create_default_context(cafile=self.ca.ca_path)
        base = f"https://localhost:{port}"
        yield self.probe(server, lambda: _get(base + "/health", verify=trusted))
        code, job = yield deferToThread(
            _post, base + "/job/tls", {"url": self.worker.url("/success"), "payload": {"a": 1}}, verify=trusted
        )
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        self.assertEqual(json.loads(self.worker.deliveries[0].body), {"a": 1})
        # Plain HTTP is not answered, and a client without the CA refuses the server.
        untrusted = ssl.create_default_context()
        with self.assertRaises(httpx.ConnectError) as caught:
            yield deferToThread(_get, base + "/health", verify=untrusted)
        self.assertIn("certificate", str(caught.exception).lower())
        with self.assertRaises(httpx.HTTPError):
            yield deferToThread(_get, f"http://127.0.0.1:{port}/health")
        # The start-up line says where it listens (log files are flushed periodically).
        yield wait_until(lambda: f"ssl:{port}" in server.stderr() + server.stdout(), 10)

    @inlineCallbacks
    def test_unix_bind(self):
        # A short path: Unix socket paths are limited to about 100 bytes.
        directory = tempfile.mkdtemp(prefix="fwq")
        self.addCleanup(lambda: os.path.exists(directory) and _remove_tree(directory))
        path = os.path.join(directory, "api.sock")
        server = self.spawn(f"unix:{path}")
        transport = lambda: httpx.HTTPTransport(uds=path)  # noqa: E731
        yield self.probe(server, lambda: _get("http://fireworq/health", transport=transport()))
        code, job = yield deferToThread(
            _post, "http://fireworq/job/sock", {"url": self.worker.url("/success")}, transport=transport()
        )
        self.assertEqual(code, 200, job)
        yield self.delivered(1)
        code, queues = yield deferToThread(_get, "http://fireworq/queues", transport=transport())
        self.assertEqual([q["name"] for q in queues], ["default"])


def _remove_tree(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def start_tls_worker(test: ServerTestCase) -> None:
    """Give ``test`` a throwaway CA (``test.ca``) and a worker over TLS (``test.tls_worker``) for localhost."""
    test.ca = ThrowawayCA(os.path.join(test.workdir, "ca"))
    cert = test.ca.issue(["localhost"])
    with open(cert.cert_path, "rb") as c, open(cert.key_path, "rb") as k:
        tls = twisted_ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
    test.tls_worker = Worker()
    test.tls_worker.start(tls=tls)
    test.addCleanup(test.tls_worker.stop)


class HTTPSWorkerTests(ServerTestCase):
    """Deliveries to an https worker check its certificate (service-identity)."""

    def setUp(self):
        super().setUp()
        start_tls_worker(self)

    @inlineCallbacks
    def failure_of(self, server, url):
        """Push one job without retries to ``url``; fire with its failure-log entry."""
        code, job = yield self.push(server, "c", url=url)
        self.assertEqual(code, 200, job)

        def failed():
            d = server.call("GET", "/queue/default/failed")
            d.addCallback(lambda r: r[1]["failed_jobs"] and r[1]["failed_jobs"][0])
            return d

        return (yield wait_until(failed, 20))

    @inlineCallbacks
    def test_private_ca_accepted(self):
        server = yield self.server(dispatch_ca_file=self.ca.ca_path)
        code, job = yield self.push(server, "c", url=self.tls_worker.url("/success", host="localhost"), payload=[1])
        self.assertEqual(code, 200, job)
        yield wait_until(lambda: self.tls_worker.deliveries, 20)
        self.assertEqual(self.tls_worker.deliveries[0].body, b"[1]")

        def done():
            d = server.call("GET", "/queue/default/stats")
            d.addCallback(lambda r: r[1]["total_successes"] == 1)
            return d

        yield wait_until(done, 20)
        # Plain http workers still work beside it.
        yield self.push(server, "c", url=self.worker.url("/success"))
        yield self.delivered(1)

    @inlineCallbacks
    def test_unknown_ca_refused(self):
        server = yield self.server()
        failure = yield self.failure_of(server, self.tls_worker.url("/success", host="localhost"))
        self.assertEqual(self.tls_worker.deliveries, [])
        message = failure["result"]["message"]
        self.assertIn("certificate", message.lower())
        self.assertEqual(failure["result"]["code"], 0)

    @inlineCallbacks
    def test_wrong_host_name_refused(self):
        server = yield self.server(dispatch_ca_file=self.ca.ca_path)
        # The certificate names localhost only; 127.0.0.1 is not in it.
        failure = yield self.failure_of(server, self.tls_worker.url("/success", host="127.0.0.1"))
        self.assertEqual(self.tls_worker.deliveries, [])
        self.assertIn("certificate", failure["result"]["message"].lower())

    @inlineCallbacks
    def test_bad_ca_file_stops_start(self):
        path = os.path.join(self.workdir, "not-a-ca.pem")
        with open(path, "w") as f:
            f.write("hello\n")
        server = FireworqProcess(self.workdir, {"driver": "in-memory", "dispatch_ca_file": path})
        server.spawn()
        self.addCleanup(server.kill)
        status = yield wait_until(lambda: server.process.poll() is not None and (server.process.returncode,), 20)
        self.assertEqual(status[0], 2)
        self.assertIn("dispatch_ca_file", server.stderr())
        self.assertIn("no PEM certificate", server.stderr())


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


class LazyTLSTests(ServerTestCase):
    """
    A server without an ``ssl:`` bind does not load pyOpenSSL and
    ``cryptography`` (about 13 MB) until its first https delivery, and that
    delivery works (fireworq/tlsdefer.py).
    """

    def setUp(self):
        super().setUp()
        start_tls_worker(self)

    @inlineCallbacks
    def test_loaded_on_first_https_delivery(self):
        if not os.path.exists("/proc/self/maps"):
            self.skipTest("needs /proc")
        server = yield self.server(dispatch_ca_file=self.ca.ca_path)
        yield self.push(server, "c", url=self.worker.url("/success"))
        yield self.delivered(1)
        self.assertNotIn("cryptography", _maps(server.process.pid))
        code, job = yield self.push(server, "c", url=self.tls_worker.url("/success", host="localhost"))
        self.assertEqual(code, 200, job)
        yield wait_until(lambda: self.tls_worker.deliveries, 20)
        self.assertIn("cryptography", _maps(server.process.pid))
