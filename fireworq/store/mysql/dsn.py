"""
Data source names in the Go MySQL driver's syntax (A8):

    [user[:password]@][net[(address)]]/dbname[?param=value&...]

with ``net`` ``tcp`` (address ``host:port``, default ``localhost:3306``) or
``unix`` (address a socket path).  As in the Go driver:

  - ``timeout`` (connect), ``readTimeout`` and ``writeTimeout`` are Go
    durations (``5s``, ``500ms``, ``1m30s``);
  - ``tls`` is ``true``, ``skip-verify``, ``preferred`` or ``false``;
  - ``charset`` is accepted, but text is always exchanged as utf8mb4: the
    tables are binary, and the original server stored the UTF-8 bytes of
    every string whatever the connection's character set;
  - a parameter that is not one of the driver's own options is a session
    system variable, set with ``SET <name>=<value>`` on every new connection
    (``wait_timeout=600``, ``sql_mode='...'``).  The store then sets what it
    relies on: READ COMMITTED, the UTC time zone, the lock wait timeout, and
    ``STRICT_TRANS_TABLES`` added to ``sql_mode``; ``autocommit`` is refused
    (each unit of work must be one transaction);
  - the driver's other options (``parseTime``, ``loc``, ...) are accepted and
    have no effect here.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple
from urllib.parse import unquote

import attr

_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?(?:ns|us|\u00b5s|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|\u00b5s|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

#: Parameters of the Go driver itself: everything else in a DSN's query is a
#: session system variable.
DRIVER_OPTIONS = frozenset({
    "allowAllFiles", "allowCleartextPasswords", "allowFallbackToPlaintext",
    "allowNativePasswords", "allowOldPasswords", "charset", "checkConnLiveness",
    "clientFoundRows", "collation", "columnsWithAlias", "connectionAttributes",
    "interpolateParams", "loc", "maxAllowedPacket", "multiStatements", "parseTime",
    "readTimeout", "rejectReadOnly", "serverPubKey", "timeTruncate", "timeout", "tls",
    "writeTimeout",
})

_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: System variables the store's transactions depend on: a DSN may not set them.
CONTROLLED_VARIABLES = frozenset({"autocommit"})


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DSN:
    """A parsed data source name."""

    user: str = ""
    password: str = ""
    net: str = "tcp"
    host: str = "localhost"
    port: int = 3306
    unix_socket: Optional[str] = None
    database: str = ""
    charset: str = "utf8mb4"
    connect_timeout: Optional[float] = None
    read_timeout: Optional[float] = None
    write_timeout: Optional[float] = None
    tls: str = "false"
    params: Dict[str, str] = attr.ib(factory=dict)
    #: Session system variables to set on every connection, in DSN order.
    variables: Tuple[Tuple[str, str], ...] = ()

    def masked(self, original: str) -> str:
        """``original`` with the password replaced by ``***``."""
        if not self.password:
            return original
        at = original.rfind("@", 0, original.rfind("/"))
        head = original[:at]
        user = head.split(":", 1)[0]
        return f"{user}:***{original[at:]}"


def _duration(name: str, text: str) -> float:
    if not _DURATION.match(text):
        raise ValueError(f"parameter {name}={text!r} is not a duration like 5s, 500ms or 1m30s")
    return sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def _variables(params: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    variables = []
    for name, value in params.items():
        if name in DRIVER_OPTIONS:
            continue
        if not _VARIABLE_NAME.match(name):
            raise ValueError(f"parameter {name!r} is neither a driver option nor a system variable name")
        if name.lower() in CONTROLLED_VARIABLES:
            raise ValueError(
                f"parameter {name} cannot be set: every unit of work of the server is one transaction"
            )
        if not value or ";" in value:
            raise ValueError(f"parameter {name}={value!r} is not a value a system variable can be set to")
        variables.append((name, value))
    return tuple(variables)


def parse_dsn(text: str) -> DSN:
    """
    Parse a Go-style DSN.

    @raise ValueError: with a message naming what is wrong.
    """
    if not text:
        raise ValueError("the DSN is empty")
    slash = text.rfind("/")
    if slash < 0:
        raise ValueError("the DSN has no '/dbname' part (user:pass@tcp(host:port)/dbname)")
    head, tail = text[:slash], text[slash + 1 :]
    database, _, query = tail.partition("?")
    if not database:
        raise ValueError("the DSN names no database after '/'")

    user = password = ""
    at = head.rfind("@")
    if at >= 0:
        credentials, head = head[:at], head[at + 1 :]
        user, _, password = credentials.partition(":")

    net, host, port, socket = "tcp", "localhost", 3306, None
    if head:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", head)
        if not match:
            raise ValueError(f"cannot read the network part {head!r}; expected tcp(host:port) or unix(/path)")
        net, address = match.group(1), match.group(2) or ""
        if net == "tcp":
            if address:
                if address.startswith("["):
                    end = address.find("]")
                    if end < 0:
                        raise ValueError(f"bad IPv6 address {address!r}")
                    host, rest = address[1:end], address[end + 1 :]
                    port_text = rest[1:] if rest.startswith(":") else ""
                else:
                    host, _, port_text = address.rpartition(":")
                    if not _:
                        host, port_text = address, ""
                if port_text:
                    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                        raise ValueError(f"bad port {port_text!r} in the DSN")
                    port = int(port_text)
                host = host or "localhost"
        elif net == "unix":
            if not address:
                raise ValueError("unix() needs a socket path")
            socket = address
        else:
            raise ValueError(f"unknown network {net!r}; use tcp or unix")

    params: Dict[str, str] = {}
    if query:
        for pair in query.split("&"):
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"parameter {key!r} has no value")
            params[unquote(key)] = unquote(value)

    tls = params.get("tls", "false")
    if tls not in ("true", "false", "skip-verify", "preferred"):
        raise ValueError(f"parameter tls={tls!r} must be true, false, skip-verify or preferred")
    charset = params.get("charset", "utf8mb4").split(",")[0]
    return DSN(
        user=user,
        password=password,
        net=net,
        host=host,
        port=port,
        unix_socket=socket,
        database=database,
        charset=charset,
        connect_timeout=_duration("timeout", params["timeout"]) if "timeout" in params else None,
        read_timeout=_duration("readTimeout", params["readTimeout"]) if "readTimeout" in params else None,
        write_timeout=_duration("writeTimeout", params["writeTimeout"]) if "writeTimeout" in params else None,
        tls=tls,
        params=params,
        variables=_variables(params),
    )
