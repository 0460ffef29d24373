"""
L{MySQLServerMixin}: the servers a L{tests.support.cases.ServerTestCase}
starts use the ``mysql`` driver on a database made for the test (on the
throwaway MariaDB server of tests/support/mariadb.py), so a test that
restarts a server finds its jobs again.
"""

from __future__ import annotations

from typing import Any

from tests.support.mariadb import database_for

#: A restarted server (a new node id) takes a killed one's queues over once
#: their leases expire: a short ttl keeps the restart tests quick.
LEASE_TTL_MS = "1000"


class MySQLServerMixin:
    """Mixed in before a ServerTestCase: ``mysql_dsn`` and a short ``lease_ttl`` by default."""

    driver = "mysql"
    #: The prefix of the test's database name.
    database_name = "e2e"

    def setUp(self) -> Any:
        result = super().setUp()  # type: ignore[misc]
        # Registered before any server starts: cleanups run last-in first-out,
        # so the servers are killed before the database is dropped.
        self.database = database_for(self, self.database_name)
        return result

    def server(self, **settings: Any) -> Any:
        settings.setdefault("mysql_dsn", self.database.dsn)
        settings.setdefault("lease_ttl", LEASE_TTL_MS)
        return super().server(**settings)  # type: ignore[misc]
