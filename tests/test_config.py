"""Unit tests of settings: defaults, environment, options and validation."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from fireworq import __version__
from fireworq.config import SETTINGS, ConfigError, load
from fireworq.store.mysql.dsn import parse_dsn


class LoadTests(SynchronousTestCase):
    def test_defaults(self):
        config = load({}, {})
        self.assertEqual((config.bind_host, config.bind_port), ("127.0.0.1", 8080))
        self.assertEqual(config.driver, "sqlite")
        self.assertEqual(config.queue_default, "")
        self.assertEqual(config.queue_default_polling_interval, 200)
        self.assertEqual(config.queue_default_max_workers, 20)
        self.assertEqual(config.config_refresh_interval, 1000)
        self.assertEqual(config.shutdown_timeout, 30)
        self.assertFalse(config.keep_alive)
        self.assertFalse(config.dispatch_keep_alive)
        self.assertEqual(config.dispatch_max_conns_per_host, 10)
        self.assertEqual(config.dispatch_user_agent, f"Fireworq/{__version__}")
        self.assertEqual((config.queue_log_tag, config.access_log_tag), ("fireworq.queue", "fireworq.access"))
        self.assertEqual((config.queue_log_level, config.error_log_level), ("info", "info"))
        self.assertEqual(config.lease_ttl, 3000)

    def test_environment_and_option_precedence(self):
        env = {"FIREWORQ_QUEUE_DEFAULT": "env", "FIREWORQ_QUEUE_DEFAULT_MAX_WORKERS": "7"}
        config = load({"queue_default": "opt"}, env)
        self.assertEqual(config.queue_default, "opt")
        self.assertEqual(config.queue_default_max_workers, 7)

    def test_driver_follows_dsn(self):
        self.assertEqual(load({"mysql_dsn": "u:p@tcp(db:3306)/fw"}, {}).driver, "mysql")
        config = load({}, {"FIREWORQ_QUEUE_MYSQL_DSN": "tcp(a)/q", "FIREWORQ_REPOSITORY_MYSQL_DSN": "tcp(b)/r"})
        self.assertEqual((config.driver, config.queue_mysql_dsn, config.repository_mysql_dsn), ("mysql", "tcp(a)/q", "tcp(b)/r"))
        self.assertEqual(load({"driver": "in-memory", "mysql_dsn": "tcp(a)/q"}, {}).driver, "in-memory")

    def test_dispatch_keep_alive_follows_keep_alive(self):
        self.assertTrue(load({"keep_alive": "true"}, {}).dispatch_keep_alive)
        self.assertFalse(load({"keep_alive": "true", "dispatch_keep_alive": "false"}, {}).dispatch_keep_alive)

    def test_debug_lowers_default_levels(self):
        config = load({}, {"DEBUG": "1"})
        self.assertEqual((config.queue_log_level, config.error_log_level), ("debug", "debug"))
        self.assertEqual(load({"queue_log_level": "3"}, {}).queue_log_level, "error")

    def test_ipv6_bind(self):
        config = load({"bind": "[::1]:9000"}, {})
        self.assertEqual((config.bind_host, config.bind_port), ("::1", 9000))

    def test_bad_values_name_the_setting(self):
        bad = {
            "bind": "localhost",
            "driver": "postgres",
            "queue_default_max_workers": "0",
            "queue_default_polling_interval": "fast",
            "keep_alive": "maybe",
            "shutdown_timeout": "-1",
            "error_log_level": "loud",
            "mysql_dsn": "no-slash-here",
            "queue_default": "a/b",
            "lease_ttl": "10",
        }
        for name, value in bad.items():
            with self.assertRaises(ConfigError) as caught:
                load({name: value}, {})
            self.assertIn(name, str(caught.exception))
            self.assertIn(f"--{name.replace('_', '-')}", str(caught.exception))

    def test_mysql_driver_needs_a_dsn(self):
        self.assertRaises(ConfigError, load, {"driver": "mysql"}, {})

    def test_settings_lists_every_setting_as_text(self):
        settings = load({}, {}).settings()
        self.assertEqual(set(settings), {s.name for s in SETTINGS})
        self.assertTrue(all(isinstance(v, str) for v in settings.values()))
        self.assertEqual(settings["driver"], "sqlite")


class DSNTests(SynchronousTestCase):
    def test_full(self):
        dsn = parse_dsn("user:p@ss/w@rd@tcp(db.example:3307)/fireworq?timeout=5s&readTimeout=500ms&charset=utf8mb4")
        self.assertEqual((dsn.user, dsn.password), ("user", "p@ss/w@rd"))
        self.assertEqual((dsn.host, dsn.port, dsn.database), ("db.example", 3307, "fireworq"))
        self.assertEqual((dsn.connect_timeout, dsn.read_timeout), (5.0, 0.5))

    def test_short_forms(self):
        dsn = parse_dsn("/fw")
        self.assertEqual((dsn.host, dsn.port, dsn.user), ("localhost", 3306, ""))
        self.assertEqual(parse_dsn("root@tcp(127.0.0.1)/fw").port, 3306)
        self.assertEqual(parse_dsn("root@unix(/run/mysqld.sock)/fw").unix_socket, "/run/mysqld.sock")
        self.assertEqual(parse_dsn("u@tcp([::1]:3306)/fw").host, "::1")

    def test_masking(self):
        text = "user:secret@tcp(db:3306)/fw"
        self.assertEqual(parse_dsn(text).masked(text), "user:***@tcp(db:3306)/fw")

    def test_errors(self):
        for text in ("", "nodb", "u@tcp(h:99999)/fw", "u@ssh(h)/fw", "u@tcp(h)/", "/fw?tls=maybe", "/fw?timeout=soon"):
            self.assertRaises(ValueError, parse_dsn, text)
