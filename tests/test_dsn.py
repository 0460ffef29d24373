"""
Go-syntax data source names (protocol A8): durations, system variables and
the character set, as the Go MySQL driver reads them.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from fireworq.store.mysql.driver import available_drivers
from fireworq.store.mysql.dsn import parse_dsn


class DurationTests(SynchronousTestCase):
    def test_go_durations(self) -> None:
        for text, seconds in (("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("1h", 3600.0),
                              ("1.5s", 1.5), ("250us", 0.00025), ("2m0.5s", 120.5)):
            dsn = parse_dsn(f"u@tcp(db:3306)/fw?timeout={text}")
            self.assertAlmostEqual(dsn.connect_timeout, seconds, msg=text)

    def test_bad_durations_name_the_parameter(self) -> None:
        for text in ("5", "s", "5 s", "1x", "-1s", ""):
            with self.assertRaises(ValueError) as caught:
                parse_dsn(f"u@tcp(db:3306)/fw?readTimeout={text}")
            self.assertIn("readTimeout", str(caught.exception))


class VariableTests(SynchronousTestCase):
    def test_unknown_parameters_are_system_variables_in_order(self) -> None:
        dsn = parse_dsn(
            "u@tcp(db)/fw?parseTime=true&wait_timeout=600&timeout=5s&sql_mode=%27ANSI%27&loc=Local"
        )
        self.assertEqual(dsn.variables, (("wait_timeout", "600"), ("sql_mode", "'ANSI'")))

    def test_driver_options_are_not_variables(self) -> None:
        dsn = parse_dsn("u@tcp(db)/fw?charset=latin1&collation=utf8mb4_bin&tls=false&interpolateParams=true")
        self.assertEqual(dsn.variables, ())

    def test_bad_variables_are_refused(self) -> None:
        for query in ("wait-timeout=1", "x=1;DROP%20TABLE%20queue", "sql_mode=", "autocommit=1", "AUTOCOMMIT=0"):
            with self.assertRaises(ValueError, msg=query):
                parse_dsn(f"u@tcp(db)/fw?{query}")


class CharsetTests(SynchronousTestCase):
    def test_text_is_always_utf8mb4(self) -> None:
        """The tables are binary; the original stored UTF-8 bytes whatever the charset."""
        dsn = parse_dsn("u@tcp(db)/fw?charset=latin1")
        drivers = available_drivers()
        self.assertTrue(drivers)
        for driver in drivers:
            self.assertEqual(driver.connect_kwargs(dsn)["charset"], "utf8mb4", driver.name)
