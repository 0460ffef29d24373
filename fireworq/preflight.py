"""
Checks made once at start-up, before the server starts, of what the
settings name outside the process: the ``bind`` host resolves, every log
file can be opened for appending (it is created if missing), the ``pid``
file can be written and the ``sqlite_path`` database can be created or
opened.  L{fireworq.config.load} only parses values; these look at the
host the server runs on.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any, Callable

from fireworq.config import Config, ConfigError


#: The signature of L{socket.getaddrinfo}, replaceable in tests.
Resolver = Callable[..., Any]


def check_resources(config: Config, resolve: Resolver = socket.getaddrinfo) -> None:
    """
    Check what the settings of ``config`` name outside the process, before
    the server starts: the ``bind`` host resolves, every log file can be
    opened for appending (it is created if missing), the ``pid`` file can be
    written and the ``sqlite_path`` database can be created or opened.
    L{fireworq.config.load} only parses values; this looks at the host it runs on (and
    creates the log files), so the server calls it once, at start-up.

    @param resolve: L{socket.getaddrinfo}, or a stand-in.
    @raise ConfigError: for the first setting that cannot be used.
    """
    _check_bind_host(config, resolve)
    for name in ("error_log", "access_log", "queue_log"):
        path = getattr(config, name)
        if path:
            _check_appendable(name, path)
    if config.pid:
        _check_writable_file("pid", config.pid, "pid file")
    if config.driver == "sqlite":
        _check_writable_file("sqlite_path", config.sqlite_path, "database")


def _check_bind_host(config: Config, resolve: Resolver) -> None:
    if config.bind_endpoint:  # checked when parsed; listening tells the rest
        return
    host = config.bind_host
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        found = resolve(host, config.bind_port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise ConfigError("bind", config.raw.get("bind", host), f"cannot resolve the host {host!r}: {reason}")
    if not found:
        raise ConfigError("bind", config.raw.get("bind", host), f"the host {host!r} has no address")


def _check_appendable(name: str, path: str) -> None:
    """Open ``path`` for appending (creating it) and close it again."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise ConfigError(name, path, f"cannot open the file for appending: {e.strerror or e}")


def _check_writable_file(name: str, path: str, what: str) -> None:
    """
    ``path`` is a file the server creates or rewrites, with companions in
    its directory (a sqlite database's journal and lock files): its
    directory must exist and be writable, and the file, when it exists,
    must be a writable regular file.  Nothing is created.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(name, path, f"the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(name, path, f"the directory {directory} is not writable")
    if os.path.isdir(path):
        raise ConfigError(name, path, f"is a directory, not a {what} file")
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(name, path, f"the {what} file is not writable")
