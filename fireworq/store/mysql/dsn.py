"""
Data source names in the Go MySQL driver's syntax (A8):

    [user[:password]@][net[(address)]]/dbname[?param=value&...]

with ``net`` ``tcp`` (address ``host:port``, default ``localhost:3306``) or
``unix`` (address a socket path).  The parameters this server honours are
``charset``, ``timeout`` (connect), ``readTimeout`` and ``writeTimeout`` (Go
durations such as ``5s`` or ``500ms``) and ``tls`` (``true``,
``skip-verify``, ``false``); others are accepted and ignored.
"""

from __future__ import annotations

import re
from typing import Dict, Optional
from urllib.parse import unquote

import attr

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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

    def masked(self, original: str) -> str:
        """``original`` with the password replaced by ``***``."""
        if not self.password:
            return original
        at = original.rfind("@", 0, original.rfind("/"))
        head = original[:at]
        user = head.split(":", 1)[0]
        return f"{user}:***{original[at:]}"


def _duration(name: str, text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"parameter {name}={text!r} is not a duration like 5s or 500ms")
    return float(match.group(1)) * _UNITS[match.group(2)]


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
    )
