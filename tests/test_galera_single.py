"""
Issue 19 on one plain MariaDB server (no Galera): a real ``twistd
fireworq`` finds out at start that its server is not a Galera node, says
``mysql_galera: off`` in ``GET /settings`` (docs/config.md,
docs/production.md) and logs no Galera line.  The Galera side of the same
detection is in tests/test_galera.py.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.support.server import FireworqProcess
from tests.test_e2e import STOPPED_BY_SIGTERM


class PlainServerTests(TestCase):
    """One MariaDB server: the store is not on Galera, and says so."""

    timeout = 90

    @inlineCallbacks
    def test_settings_say_galera_is_off(self) -> Any:
        from tests.support.mariadb import shared_server, unique_database_name

        mysql = shared_server()
        name = unique_database_name("plain")
        mysql.execute(f"CREATE DATABASE `{name}`")
        self.addCleanup(lambda: mysql.execute(f"DROP DATABASE IF EXISTS `{name}`"))
        server = FireworqProcess(os.path.abspath(self.mktemp()), {"driver": "mysql", "mysql_dsn": mysql.dsn(name)})
        self.addCleanup(server.kill)
        yield server.start()
        code, settings = yield server.call("GET", "/settings")
        self.assertEqual(code, 200, settings)
        self.assertEqual(settings["mysql_galera"], "off")
        self.assertNotIn("Galera node", server.stdout() + server.stderr())
        status = yield server.stop()
        self.assertIn(status, STOPPED_BY_SIGTERM)
