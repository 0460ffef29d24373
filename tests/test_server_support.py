"""
The test-server helper (tests/support/server.py) binds port 0 and learns
the real port from the server's start-up line, so that suites running side
by side (make test-all, several Pythons) never race for a port picked in
advance; a restart of the same server binds that port again.
"""

from __future__ import annotations

import os

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.support.server import FireworqProcess


class PortZeroTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.workdir = os.path.abspath(self.mktemp())

    @inlineCallbacks
    def test_binds_port_zero_and_learns_the_port(self):
        server = FireworqProcess(self.workdir, {"driver": "in-memory"})
        self.addCleanup(server.kill)
        yield server.start()
        self.assertEqual(server.environment()["FIREWORQ_BIND"], f"127.0.0.1:{server.port}")
        with open(server.stderr_path, encoding="utf-8") as f:
            self.assertIn(f"listening on 127.0.0.1:{server.port}", f.read())
        code, body = yield server.call("GET", "/health")
        self.assertEqual(code, 200)
        # A restart binds the learned port again.
        port = server.port
        yield server.stop()
        yield server.start()
        self.assertEqual(server.port, port)
        code, _ = yield server.call("GET", "/health")
        self.assertEqual(code, 200)

    def test_spawn_asks_for_port_zero(self):
        server = FireworqProcess(self.workdir, {"driver": "in-memory"})
        self.assertEqual(server.environment()["FIREWORQ_BIND"], "127.0.0.1:0")

    def test_settings_that_need_a_known_port_get_one(self):
        for settings in ({"error_log": "x.log"}, {"workers": "2"}):
            server = FireworqProcess(self.workdir, settings)
            bind = server.environment()["FIREWORQ_BIND"]
            self.assertNotEqual(bind, "127.0.0.1:0", settings)

    def test_port_read_before_start_is_picked(self):
        server = FireworqProcess(self.workdir, {"driver": "in-memory"})
        port = server.port
        self.assertGreater(port, 0)
        self.assertEqual(server.environment()["FIREWORQ_BIND"], f"127.0.0.1:{port}")
