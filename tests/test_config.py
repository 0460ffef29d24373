"""Unit tests of settings: defaults, environment, options and validation."""

from __future__ import annotations

import os
import socket

from twisted.trial.unittest import SynchronousTestCase

from fireworq import __version__
from fireworq.config import SETTINGS, ConfigError, load
from fireworq.preflight import check_resources
from fireworq.store.mysql.dsn import parse_dsn
from fireworq.tap import Options


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

    def test_settings_show_resolved_defaults(self):
        settings = load({}, {}).settings()
        self.assertEqual(settings["dispatch_user_agent"], f"Fireworq/{__version__}")
        self.assertEqual(settings["keep_alive"], "false")
        self.assertEqual(settings["dispatch_keep_alive"], "false")
        self.assertEqual(settings["error_log_level"], "info")
        self.assertEqual(settings["queue_log_level"], "info")
        self.assertEqual(settings["bind"], "127.0.0.1:8080")
        self.assertEqual(settings["queue_default_max_workers"], "20")
        # A log on a standard stream stays "", which is what gives it back.
        self.assertEqual(settings["access_log"], "")

    def test_settings_show_inherited_and_normalised_values(self):
        config = load(
            {
                "mysql_dsn": "u:pw@tcp(db:3306)/fw",
                "keep_alive": "yes",
                "queue_log_level": "3",
                "queue_default_max_workers": " 7",
                "bind": "[::1]:9000",
            },
            {"DEBUG": "1"},
        )
        settings = config.settings()
        self.assertEqual(settings["mysql_dsn"], "u:***@tcp(db:3306)/fw")
        self.assertEqual(settings["queue_mysql_dsn"], "u:***@tcp(db:3306)/fw")
        self.assertEqual(settings["repository_mysql_dsn"], "u:***@tcp(db:3306)/fw")
        self.assertEqual((settings["keep_alive"], settings["dispatch_keep_alive"]), ("true", "true"))
        self.assertEqual((settings["queue_log_level"], settings["error_log_level"]), ("error", "debug"))
        self.assertEqual(settings["queue_default_max_workers"], "7")
        self.assertEqual(settings["bind"], "[::1]:9000")
        self.assertNotIn("pw", "".join(settings.values()))

    def test_settings_mask_separate_dsns(self):
        config = load({"queue_mysql_dsn": "q:qpw@tcp(a)/q", "repository_mysql_dsn": "r:rpw@tcp(b)/r"}, {})
        settings = config.settings()
        self.assertEqual(settings["queue_mysql_dsn"], "q:***@tcp(a)/q")
        self.assertEqual(settings["repository_mysql_dsn"], "r:***@tcp(b)/r")
        self.assertEqual(settings["mysql_dsn"], "")

    def test_help_tells_every_default(self):
        help_text = " ".join(str(Options()).split())
        for setting in SETTINGS:
            if setting.default:
                self.assertIn(f"(default: {setting.default})", help_text, setting.name)
        self.assertIn("(default: Fireworq/<version>)", help_text)
        self.assertIn("(default: none)", help_text)


def no_dns(*args):
    raise AssertionError(f"resolved {args!r}")


class CheckResourcesTests(SynchronousTestCase):
    """check_resources: the host, log, pid and sqlite files named by settings."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.missing = os.path.join(self.dir, "missing")

    def check(self, options, resolve=no_dns):
        options = dict(options)
        options.setdefault("driver", "in-memory")
        check_resources(load(options, {}), resolve=resolve)

    def assertBad(self, name, options, words, resolve=no_dns):
        with self.assertRaises(ConfigError) as caught:
            self.check(options, resolve)
        self.assertEqual(caught.exception.name, name)
        text = str(caught.exception)
        self.assertIn(f"--{name.replace('_', '-')}", text)
        self.assertIn(words, text)
        self.assertNotIn("\n", text)

    def test_good_settings_pass_and_create_log_files(self):
        logs = {name: os.path.join(self.dir, f"{name}.log") for name in ("access_log", "queue_log", "error_log")}
        self.check(
            dict(logs, pid=os.path.join(self.dir, "x.pid"), driver="sqlite",
                 sqlite_path=os.path.join(self.dir, "db.sqlite3"))
        )
        for path in logs.values():
            self.assertTrue(os.path.isfile(path))
        # Neither the pid file nor the database is created by the check.
        self.assertFalse(os.path.exists(os.path.join(self.dir, "x.pid")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "db.sqlite3")))

    def test_log_file_that_cannot_be_opened(self):
        for name in ("access_log", "queue_log", "error_log"):
            self.assertBad(name, {name: os.path.join(self.missing, "x.log")}, "cannot open the file for appending")
            self.assertBad(name, {name: self.dir}, "cannot open the file for appending")

    def test_pid_in_missing_directory(self):
        self.assertBad("pid", {"pid": os.path.join(self.missing, "x.pid")}, f"the directory {self.missing} does not exist")
        self.assertBad("pid", {"pid": self.dir}, "is a directory")

    def test_sqlite_path_in_missing_directory(self):
        path = os.path.join(self.missing, "db.sqlite3")
        self.assertBad("sqlite_path", {"driver": "sqlite", "sqlite_path": path}, "does not exist")
        self.assertBad("sqlite_path", {"driver": "sqlite", "sqlite_path": self.dir}, "is a directory")
        # Only the sqlite driver uses the file.
        self.check({"driver": "in-memory", "sqlite_path": path})

    def test_unwritable_directories(self):
        # A directory everybody may enter and nobody may write to, on a path
        # an unprivileged user can reach.
        import shutil
        import tempfile

        directory = tempfile.mkdtemp(prefix="fireworq-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.chmod(directory, 0o555)
        self.addCleanup(os.chmod, directory, 0o700)

        def check() -> None:
            self.assertBad("pid", {"pid": os.path.join(directory, "x.pid")}, "is not writable")
            self.assertBad(
                "sqlite_path", {"driver": "sqlite", "sqlite_path": os.path.join(directory, "db")}, "is not writable"
            )

        if os.geteuid() != 0:
            check()
            return
        # Root may write to any directory: check as an unprivileged user, in
        # a child process (the check only reads the file system).
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                check()
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0, "the check as user 65534 failed (see above)")

    def test_literal_bind_addresses_are_not_resolved(self):
        for bind in ("127.0.0.1:0", "[::1]:0", ":8080", "0.0.0.0:1"):
            self.check({"bind": bind})

    def test_bind_host_names_must_resolve(self):
        asked = []

        def resolve(host, port, family, kind):
            asked.append((host, port, kind))
            return [(socket.AF_INET, kind, 6, "", ("10.0.0.1", port))]

        self.check({"bind": "api.example:9000"}, resolve)
        self.assertEqual(asked, [("api.example", 9000, socket.SOCK_STREAM)])

        def unknown(*args):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        self.assertBad("bind", {"bind": "nowhere.invalid:9000"}, "cannot resolve the host 'nowhere.invalid'", unknown)
        self.assertBad("bind", {"bind": "empty.example:9000"}, "has no address", lambda *a: [])


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
