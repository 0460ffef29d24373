"""
The DB-API driver behind the MySQL store: PyMySQL or mysqlclient (MySQLdb).

Both are used the same way (``%s`` placeholders, ``lastrowid``,
``rowcount`` = rows changed); this module hides the rest: how a L{DSN}
becomes connect arguments, and which errors mean "the connection is gone"
or "try again" rather than "this statement is wrong".

The default is mysqlclient when it is installed -- measured faster and
lighter on this process's CPU (bench/mysql_driver.py, numbers in
docs/performance.md) -- and PyMySQL (pure Python, always installed)
otherwise.  ``FIREWORQ_MYSQL_DRIVER=pymysql|mysqlclient`` or the ``driver``
argument of L{fireworq.store.mysql.open_mysql_stores} chooses explicitly.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Optional, Tuple

import attr

from fireworq.store.mysql.dsn import DSN

#: Seconds to wait for a connection when the DSN gives no ``timeout``: an
#: unreachable database must turn into a 503 quickly, not hang requests.
DEFAULT_CONNECT_TIMEOUT = 5.0

#: Seconds to wait for an answer when the DSN gives no ``readTimeout`` /
#: ``writeTimeout``: a frozen database server must not hold pool threads
#: forever.  Every query of the store is small, so this is generous.
DEFAULT_IO_TIMEOUT = 30.0

#: The environment variable choosing the driver when no argument does.
ENV_DRIVER = "FIREWORQ_MYSQL_DRIVER"


class ErrorKind:
    """How the pool treats a driver error."""

    #: The connection is unusable (server gone, restarted, killed it, or it
    #: cannot be reached): drop it; the work may be tried again once.
    LOST = "lost"
    #: The server rolled the transaction back because it waited too long for
    #: a lock (1205); the connection is fine and the work may be tried again
    #: once (each try may wait the whole lock wait timeout).
    TRANSIENT = "transient"
    #: The transaction lost a conflict and was rolled back: a deadlock on
    #: one server, or on Galera a certification conflict with a transaction
    #: of another node (both are error 1213).  The outcome is known (nothing
    #: was applied) even when it surfaces at COMMIT, so the work may be tried
    #: again, a bounded number of times.
    CONFLICT = "conflict"
    #: The server refuses work for now (read-only, too many connections).
    REFUSED = "refused"
    #: Anything else the driver raised: a fault in the statement or the data.
    OTHER = "other"


# Client-side error codes (CR_*) and server codes that mean the connection
# is gone: can't connect (2002, 2003, 2005), server has gone away (2006),
# lost connection (2013, 2055), commands out of sync after a failure (2014),
# server shutdown in progress (1053), connection killed (1927 MariaDB,
# 1317 query interrupted), disconnected for inactivity (4031 MySQL 8).
_LOST_CODES = frozenset({1053, 1317, 1927, 2002, 2003, 2005, 2006, 2013, 2014, 2055, 4031})
# Lock wait timeout (1205).
_TRANSIENT_CODES = frozenset({1205})
# Deadlock found, which is also how Galera reports a certification
# conflict or a transaction aborted by a replicated one (1213).
_CONFLICT_CODES = frozenset({1213})
# Too many connections (1040), read-only server (1290, 1792, 1836),
# WSREP/Galera not ready (1047).
_REFUSED_CODES = frozenset({1040, 1047, 1290, 1792, 1836})


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Driver:
    """One DB-API module and how to talk to it."""

    #: ``pymysql`` or ``mysqlclient``.
    name: str
    #: The module adbapi imports.
    module: str

    def dbapi(self) -> Any:
        """The imported DB-API module."""
        return __import__(self.module)

    def connect_kwargs(self, dsn: DSN) -> Dict[str, Any]:
        """Keyword arguments of the module's ``connect()`` for ``dsn``."""
        connect_timeout = dsn.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        read_timeout = dsn.read_timeout or DEFAULT_IO_TIMEOUT
        write_timeout = dsn.write_timeout or DEFAULT_IO_TIMEOUT
        kwargs: Dict[str, Any] = dict(
            user=dsn.user,
            password=dsn.password,
            database=dsn.database,
            charset="utf8mb4",  # the tables are binary: always send UTF-8 (see dsn.py)
            autocommit=False,
        )
        if dsn.unix_socket:
            kwargs["unix_socket"] = dsn.unix_socket
        else:
            kwargs["host"] = dsn.host
            kwargs["port"] = dsn.port
        if self.name == "pymysql":
            kwargs.update(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
            )
            if dsn.tls == "false":
                kwargs["ssl_disabled"] = True
            elif dsn.tls == "true":
                kwargs["ssl"] = {"verify_mode": True}
            elif dsn.tls == "skip-verify":
                kwargs["ssl"] = {"check_hostname": False, "verify_mode": False}
        else:
            # mysqlclient takes whole seconds.
            kwargs.update(
                connect_timeout=max(1, math.ceil(connect_timeout)),
                read_timeout=max(1, math.ceil(read_timeout)),
                write_timeout=max(1, math.ceil(write_timeout)),
            )
            kwargs["ssl_mode"] = {
                "false": "DISABLED",
                "true": "VERIFY_IDENTITY",
                "skip-verify": "REQUIRED",
                "preferred": "PREFERRED",
            }[dsn.tls]
        return kwargs

    def error_code(self, error: BaseException) -> Optional[int]:
        """The MySQL error number of a driver error, if it has one."""
        args = getattr(error, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        return None

    def is_driver_error(self, error: BaseException) -> bool:
        """Whether ``error`` comes from the driver (or the socket under it)."""
        module = self.dbapi()
        return isinstance(error, (module.Error, OSError))

    def classify(self, error: BaseException) -> Optional[str]:
        """
        The L{ErrorKind} of ``error``, or None when it is not a driver error
        at all (a bug in the caller, which must not be hidden).
        """
        if not self.is_driver_error(error):
            return None
        if isinstance(error, OSError):
            return ErrorKind.LOST
        module = self.dbapi()
        code = self.error_code(error)
        if code in _LOST_CODES:
            return ErrorKind.LOST
        if code in _CONFLICT_CODES:
            return ErrorKind.CONFLICT
        if code in _TRANSIENT_CODES:
            return ErrorKind.TRANSIENT
        if code in _REFUSED_CODES:
            return ErrorKind.REFUSED
        if isinstance(error, module.InterfaceError):
            # "(0, '')": the connection was closed under us.
            return ErrorKind.LOST
        if isinstance(error, module.OperationalError) and (code is None or code >= 2000):
            # Other client-side (CR_*) errors are about the connection.
            return ErrorKind.LOST
        return ErrorKind.OTHER

    def describe(self, error: BaseException) -> str:
        """A one-line description of a driver error for logs and 503s."""
        code = self.error_code(error)
        args = getattr(error, "args", ())
        message = str(args[1]) if len(args) > 1 else ("" if code is not None else str(error))
        if not message:
            return f"the connection was closed ({type(error).__name__})"
        return f"MySQL error {code}: {message}" if code else f"{type(error).__name__}: {message}"


PYMYSQL = Driver(name="pymysql", module="pymysql")
MYSQLCLIENT = Driver(name="mysqlclient", module="MySQLdb")

_DRIVERS = {"pymysql": PYMYSQL, "mysqlclient": MYSQLCLIENT, "mysqldb": MYSQLCLIENT}

#: The drivers used when none is asked for, best first (the measured
#: winner, see docs/performance.md); the first one installed is used.
DEFAULT_DRIVERS = ("mysqlclient", "pymysql")


def get_driver(name: Optional[str] = None) -> Driver:
    """
    The driver called ``name`` (``pymysql`` or ``mysqlclient``); without a
    name, the one in C{FIREWORQ_MYSQL_DRIVER}, else the first installed of
    L{DEFAULT_DRIVERS}.

    @raise ValueError: for an unknown name or a driver that is not installed.
    """
    chosen = (name or os.environ.get(ENV_DRIVER) or "").lower()
    if not chosen:
        # The first installed one; the others are not imported (PyMySQL
        # alone, with the cryptography it loads, is ~11 MB of a server's RSS).
        for candidate in (_DRIVERS[name] for name in DEFAULT_DRIVERS):
            try:
                candidate.dbapi()
            except ImportError:
                continue
            return candidate
        raise ValueError("no MySQL driver is installed: pip install mysqlclient (or PyMySQL)")
    driver = _DRIVERS.get(chosen)
    if driver is None:
        raise ValueError(f"unknown MySQL driver {chosen!r}; use pymysql or mysqlclient")
    try:
        driver.dbapi()
    except ImportError as e:
        raise ValueError(
            f"MySQL driver {driver.name} is not installed ({e}); "
            + ("pip install mysqlclient (needs libmariadb-dev and pkg-config to build)"
               if driver is MYSQLCLIENT else "pip install PyMySQL")
        )
    return driver


def available_drivers() -> Tuple[Driver, ...]:
    """The drivers that can be imported here, preferred first."""
    found = []
    for driver in (_DRIVERS[name] for name in DEFAULT_DRIVERS):
        try:
            driver.dbapi()
        except ImportError:
            continue
        found.append(driver)
    return tuple(found)
