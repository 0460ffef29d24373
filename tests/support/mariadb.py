"""
A throwaway MariaDB server for the tests.

The MySQL tests never use a server that happens to run on the machine.  They
either start their own ``mariadbd`` from a fresh data directory in a temporary
directory, on a free loopback port and a unix socket, or -- when
``FIREWORQ_TEST_MYSQL_DSN`` is set (Go DSN syntax, e.g.
``root:pw@tcp(127.0.0.1:3306)/fireworq_test``) -- use that server, creating
and dropping databases of their own on it.

One server is shared by every test of a trial process (L{shared_server}:
started on first use, stopped at exit); each test class or test gets a fresh
database from L{fresh_database}.  Fault tests that stop, kill, pause or
restart the database start a server of their own with L{private_server}, so
that the other tests never see it go away.

When neither ``mariadbd`` nor ``FIREWORQ_TEST_MYSQL_DSN`` is available the
tests fail (they do not skip) with L{MariaDBUnavailable}, whose message says
how to fix it: CI requires the MySQL tests to run.

Blocking calls (PyMySQL, ``subprocess``, polling with a deadline) are fine
here: this module runs in test set-up and tear-down, never in the reactor
thread of the code under test while it runs.
"""

from __future__ import annotations

import atexit
import functools
import getpass
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from typing import Callable, List, Optional, Sequence, TypeVar

import pymysql

from fireworq.store.mysql.dsn import DSN, parse_dsn
from tests.support.ports import free_port

#: The environment variable naming an existing server to test against.
ENV_DSN = "FIREWORQ_TEST_MYSQL_DSN"

#: The account the tests connect as on a server of ours.  It has exactly the
#: privileges docs/production.md asks for, so the tests prove they suffice.
TEST_USER = "fireworq"
TEST_PASSWORD = "fireworq-test"
TEST_GRANTS = "CREATE, SELECT, INSERT, UPDATE, DELETE"

_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class MariaDBUnavailable(Exception):
    """No database server can be had for the MySQL tests; the message says why."""


def _which(names: Sequence[str]) -> Optional[str]:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for directory in _SEARCH_DIRS:
            path = os.path.join(directory, name)
            if os.access(path, os.X_OK):
                return path
    return None


def find_mariadbd() -> Optional[str]:
    """The server binary: ``mariadbd`` (or ``mysqld``) on PATH or in an sbin."""
    return _which(("mariadbd", "mysqld"))


def find_install_db() -> Optional[str]:
    """The data directory initialiser: ``mariadb-install-db`` or ``mysql_install_db``."""
    return _which(("mariadb-install-db", "mysql_install_db"))




def _find_prctl() -> Optional[Callable[..., int]]:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


#: Resolved before any fork: the child must not import or load anything.
_prctl = _find_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """
    In the child, between fork and exec: a session of its own (a ^C of the
    tests does not reach it) and SIGKILL when the thread that started it
    dies (Linux), so a killed test run leaves no server behind.
    """
    os.setsid()
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_names = itertools.count(1)


def unique_database_name(prefix: str = "fwq") -> str:
    """A database name no other test (or test process) uses."""
    return f"{prefix}_{os.getpid()}_{next(_names)}_{uuid.uuid4().hex[:6]}"


class TestDatabase:
    """A database made for one test (or test class), dropped by L{drop}."""

    def __init__(self, server: "_Server", name: str) -> None:
        self.server = server
        self.name = name
        #: The Go-syntax DSN of the database, over TCP.
        self.dsn = server.dsn(name)

    def drop(self) -> None:
        """Drop the database (no error if the server is gone or it is absent)."""
        try:
            self.server.drop_database(self.name)
        except pymysql.MySQLError:
            pass


class _Server:
    """What L{MariaDBServer} and L{ExternalServer} have in common."""

    #: Whether the tests may stop, kill and restart this server.
    can_restart = False

    def admin_connect(self, database: Optional[str] = None) -> pymysql.connections.Connection:
        """A blocking PyMySQL connection with the right to create databases."""
        raise NotImplementedError()

    def dsn(self, database: str, params: str = "") -> str:
        """The Go-syntax DSN of ``database`` on this server."""
        raise NotImplementedError()

    def execute(self, sql: str, args=None, database: Optional[str] = None) -> List[tuple]:
        """Run one statement as the administrator; return its rows."""
        conn = self.admin_connect(database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, args)
                rows = list(cursor.fetchall())
            conn.commit()
            return rows
        finally:
            conn.close()

    def create_database(self, name: str) -> None:
        """Create an empty database (utf8mb4 by default, like production)."""
        self.execute(f"CREATE DATABASE {_quote_ident(name)} CHARACTER SET utf8mb4")

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists."""
        self.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")

    def fresh_database(self, prefix: str = "fwq") -> TestDatabase:
        """Create a database with a unique name; see L{TestDatabase}."""
        name = unique_database_name(prefix)
        self.create_database(name)
        return TestDatabase(self, name)

    def kill_connections(self, database: str) -> int:
        """
        KILL every connection using ``database`` (as a server restart would
        drop them); fire with how many were killed.
        """
        conn = self.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = %s AND id <> CONNECTION_ID()",
                    (database,),
                )
                ids = [row[0] for row in cursor.fetchall()]
                for thread_id in ids:
                    try:
                        cursor.execute(f"KILL {int(thread_id)}")
                    except pymysql.MySQLError:
                        pass  # already gone
            return len(ids)
        finally:
            conn.close()


class ExternalServer(_Server):
    """The server named by C{FIREWORQ_TEST_MYSQL_DSN}; never restarted."""

    def __init__(self, dsn_text: str) -> None:
        try:
            self._dsn: DSN = parse_dsn(dsn_text)
        except ValueError as e:
            raise MariaDBUnavailable(f"{ENV_DSN} is not a valid DSN: {e}")

    def admin_connect(self, database: Optional[str] = None) -> pymysql.connections.Connection:
        d = self._dsn
        kwargs = dict(user=d.user, password=d.password, charset="utf8mb4", connect_timeout=10)
        if d.unix_socket:
            kwargs["unix_socket"] = d.unix_socket
        else:
            kwargs.update(host=d.host, port=d.port)
        if database:
            kwargs["database"] = database
        return pymysql.connect(**kwargs)

    def dsn(self, database: str, params: str = "") -> str:
        d = self._dsn
        credentials = d.user + (":" + d.password if d.password else "")
        if d.unix_socket:
            net = f"unix({d.unix_socket})"
        else:
            host = f"[{d.host}]" if ":" in d.host else d.host
            net = f"tcp({host}:{d.port})"
        return f"{credentials}@{net}/{database}" + (f"?{params}" if params else "")

    def check(self) -> None:
        """Fail with L{MariaDBUnavailable} unless the server answers."""
        try:
            self.execute("SELECT 1")
        except pymysql.MySQLError as e:
            raise MariaDBUnavailable(f"the server in {ENV_DSN} does not answer: {e}")


class MariaDBServer(_Server):
    """
    A ``mariadbd`` of our own with its data directory in a temporary directory.

    @param durable: True keeps every commit on disk
        (``innodb_flush_log_at_trx_commit=1``, the production setting; needed
        by tests that kill the server and count what survived); False trades
        that for speed (``=2``, no doublewrite).
    @param extra_args: more ``mariadbd`` options, e.g.
        ``["--innodb-autoinc-lock-mode=2"]`` or ``["--wait-timeout=2"]``.
    """

    can_restart = True

    def __init__(
        self,
        durable: bool = True,
        extra_args: Sequence[str] = (),
        base_dir: Optional[str] = None,
    ) -> None:
        self.durable = durable
        self.extra_args = list(extra_args)
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="fwq-mariadb-")
        self.datadir = os.path.join(self.base_dir, "data")
        #: Temporary files of the server (and of mariadb-install-db's
        #: bootstrap server) go here, not to the shared /tmp: servers of
        #: parallel test runs clashed over temporary table files there.
        self.tmpdir = os.path.join(self.base_dir, "tmp")
        self.socket = os.path.join(self.base_dir, "mysqld.sock")
        self.log_path = os.path.join(self.base_dir, "mariadbd.log")
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._initialised = False

    # -- life cycle -------------------------------------------------------

    def _server_args(self) -> List[str]:
        args = [
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={os.path.join(self.base_dir, 'mariadbd.pid')}",
            f"--log-error={self.log_path}",
            "--skip-name-resolve",
            "--performance-schema=OFF",
            "--max-connections=500",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]
        if self.durable:
            args += ["--innodb-flush-log-at-trx-commit=1"]
        else:
            args += ["--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0"]
        if os.geteuid() == 0:
            args.append(f"--user={self.run_as()}")
        return args + self.extra_args

    def run_as(self) -> str:
        """The account the server runs as when the tests run as root."""
        return getpass.getuser()

    def _initialise(self) -> None:
        install = find_install_db()
        if install is None:
            raise MariaDBUnavailable(
                "mariadb-install-db (or mysql_install_db) is missing; "
                "run tests/support/ensure-mariadb or set " + ENV_DSN
            )
        os.makedirs(self.tmpdir, exist_ok=True)
        command = [
            install,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            "--innodb-log-file-size=16M",
            "--innodb-buffer-pool-size=32M",
        ]
        if os.geteuid() == 0:
            command.append(f"--user={self.run_as()}")
        with open(os.path.join(self.base_dir, "install-db.log"), "wb") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=120)
        if result.returncode != 0:
            raise MariaDBUnavailable(
                f"{install} failed (exit {result.returncode}); see "
                f"{os.path.join(self.base_dir, 'install-db.log')}"
            )

    def start(self, timeout: float = 60.0) -> None:
        """
        Start the server (initialising the data directory the first time) and
        wait until it accepts connections.  A restart keeps the data
        directory and the port.

        The server is killed when the thread that started it ends: start it
        from the main thread or from a long-lived one (the reactor's thread
        pool is fine, C{threads.deferToThread(server.restart)}).
        """
        if self.process is not None and self.process.poll() is None:
            return
        binary = find_mariadbd()
        if binary is None:
            raise MariaDBUnavailable(
                "mariadbd is not installed (not on PATH nor in /usr/sbin); "
                "run tests/support/ensure-mariadb or set " + ENV_DSN
            )
        if not self._initialised:
            self._initialise()
        first = self.port is None
        for attempt in range(3 if first else 1):
            if first:
                self.port = free_port()
            try:
                self._spawn(binary, timeout)
                break
            except MariaDBUnavailable:
                if not first or attempt == 2:
                    raise
        if not self._initialised:
            self._initialised = True
            self._setup_account()

    def _spawn(self, binary: str, timeout: float) -> None:
        log = open(os.path.join(self.base_dir, "mariadbd.out"), "ab")
        try:
            self.process = subprocess.Popen(
                [binary] + self._server_args(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        last_error: Optional[Exception] = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MariaDBUnavailable(
                    f"mariadbd exited with {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                self._root_connect().close()
                return
            except pymysql.MySQLError as e:
                last_error = e
                time.sleep(0.05)
        self._signal(signal.SIGKILL)
        self._reap(10)
        raise MariaDBUnavailable(
            f"mariadbd did not accept connections within {timeout:.0f}s ({last_error}):\n{self.log_tail()}"
        )

    def _setup_account(self) -> None:
        for host in ("127.0.0.1", "localhost"):
            self.execute(f"CREATE USER IF NOT EXISTS '{TEST_USER}'@'{host}' IDENTIFIED BY '{TEST_PASSWORD}'")
            self.execute(f"GRANT {TEST_GRANTS} ON *.* TO '{TEST_USER}'@'{host}'")

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def _reap(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self, timeout: float = 60.0) -> None:
        """Shut the server down cleanly (SIGTERM) and wait for it to exit."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        self._reap(timeout)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        self._signal(signal.SIGKILL)
        self._reap(30)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang rather than fail."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo L{pause}."""
        self._signal(signal.SIGCONT)

    def restart(self, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop (or with C{kill=True}, SIGKILL) and start again: same data, same port."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.kill() if not self.durable else self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 25) -> str:
        """The end of the server's error log, for failure messages."""
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no error log)"

    # -- connections --------------------------------------------------------

    def _root_connect(self, database: Optional[str] = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=self.socket,
            user="root",
            password="",
            database=database,
            charset="utf8mb4",
            connect_timeout=5,
        )

    def admin_connect(self, database: Optional[str] = None) -> pymysql.connections.Connection:
        return self._root_connect(database)

    def dsn(self, database: str, params: str = "") -> str:
        """
        The DSN of ``database`` as the server would be configured with it:
        the test account over TCP (C{user:pass@tcp(127.0.0.1:port)/db}).
        """
        return (
            f"{TEST_USER}:{TEST_PASSWORD}@tcp(127.0.0.1:{self.port})/{database}"
            + (f"?{params}" if params else "")
        )

    def unix_dsn(self, database: str, params: str = "") -> str:
        """Like L{dsn}, over the unix socket (C{unix(/path)})."""
        return (
            f"{TEST_USER}:{TEST_PASSWORD}@unix({self.socket})/{database}"
            + (f"?{params}" if params else "")
        )


T = TypeVar("T")


def started_once(start: Callable[[], T]) -> Callable[[], T]:
    """
    Make ``start`` the getter of a resource the tests of this process
    share: the first call starts it, later calls return the same one; when
    starting fails with L{MariaDBUnavailable}, every later call raises that
    error at once (no second attempt to start).
    """
    made: List[T] = []
    failed: List[MariaDBUnavailable] = []

    @functools.wraps(start)
    def shared() -> T:
        if made:
            return made[0]
        if failed:
            raise failed[0]
        try:
            value = start()
        except MariaDBUnavailable as e:
            failed.append(e)
            raise
        made.append(value)
        return value

    return shared


@started_once
def shared_server() -> _Server:
    """
    The server all MySQL tests of this process share: the one in
    C{FIREWORQ_TEST_MYSQL_DSN} if set, else a fast (non-durable) throwaway
    L{MariaDBServer} started now and stopped at exit.

    @raise MariaDBUnavailable: when neither can be had (every later call
        raises the same error at once).
    """
    text = os.environ.get(ENV_DSN, "")
    if text:
        server: _Server = ExternalServer(text)
        server.check()
        return server
    if find_mariadbd() is None:
        raise MariaDBUnavailable(
            "the MySQL tests need a database server: mariadbd is not installed "
            "(not on PATH nor in /usr/sbin) and " + ENV_DSN + " is not set. "
            "Run tests/support/ensure-mariadb (installs Debian's mariadb-server) "
            "or set " + ENV_DSN + "=user:pass@tcp(host:port)/db"
        )
    own = MariaDBServer(durable=False)
    atexit.register(own.cleanup)
    own.start()
    return own


def private_server(durable: bool = True, extra_args: Sequence[str] = ()) -> MariaDBServer:
    """
    A started server of the caller's own, for tests that stop, kill, pause or
    restart it (or need special server options).  The caller must call its
    L{MariaDBServer.cleanup} (e.g. with C{self.addCleanup}).

    @raise MariaDBUnavailable: when mariadbd is not installed.
    """
    server = MariaDBServer(durable=durable, extra_args=extra_args)
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server


def fresh_database(prefix: str = "fwq") -> TestDatabase:
    """A new empty database on the L{shared_server}; call its C{drop} after use."""
    return shared_server().fresh_database(prefix)


def database_for(testcase, prefix: str = "fwq") -> TestDatabase:
    """
    A new database on the shared server, dropped when ``testcase`` (a trial
    C{TestCase}) finishes.  Register this before anything that connects to
    the database, so that those connections close first (cleanups run last
    registered, first called).
    """
    database = fresh_database(prefix)
    testcase.addCleanup(database.drop)
    return database


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
