"""
The end-to-end tests of L{tests.test_e2e}, run against the ``mysql`` driver:
the real ``twistd fireworq`` process on a fresh database of the throwaway
MariaDB server (tests/support/mariadb.py), a real worker, HTTP over loopback.

Every test class of tests/test_e2e.py is subclassed here with
L{MySQLServerMixin}, which points the servers a test starts at one database
made for that test (so a test that restarts the server finds its jobs
again).  No test is excluded: none of them depends on the sqlite store (the
few that start a server of their own with the in-memory driver, or none at
all, check driver-independent start-up behaviour and run here as well).

These tests fail rather than skip when no MariaDB can be had.
"""

from __future__ import annotations

from tests import test_e2e
from tests.support.mysql_cases import MySQLServerMixin

class MySQLDeliveryTests(MySQLServerMixin, test_e2e.DeliveryTests):
    """L{test_e2e.DeliveryTests} on MySQL."""


class MySQLQueueBehaviourTests(MySQLServerMixin, test_e2e.QueueBehaviourTests):
    """L{test_e2e.QueueBehaviourTests} on MySQL."""


class MySQLBadInputTests(MySQLServerMixin, test_e2e.BadInputTests):
    """L{test_e2e.BadInputTests} on MySQL."""


class MySQLInspectionTests(MySQLServerMixin, test_e2e.InspectionTests):
    """L{test_e2e.InspectionTests} on MySQL."""


class MySQLLifecycleTests(MySQLServerMixin, test_e2e.LifecycleTests):
    """L{test_e2e.LifecycleTests} on MySQL (restarts reuse the test's database)."""

