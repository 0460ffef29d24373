"""
Free TCP ports for the servers the tests start.

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range,
which every outgoing connection and every server bound to port 0 also draws
from; with several trial workers running at once (``make test`` runs
``trial -j``), a port picked that way and used a moment later (a restarted
Galera node's IST port, say) is sometimes taken by then.  So a port is
picked at random *below* the ephemeral range, where only another explicit
pick can land, and checked to be free.
"""

from __future__ import annotations

import random
import socket

#: Where the picks come from when the kernel's range cannot be read.
_FALLBACK_EPHEMERAL_START = 32768
_LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` that nothing listens on right now, outside the ephemeral range."""
    top = _ephemeral_start() - 1
    if top <= _LOWEST:  # an unusual range: let the kernel choose
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(_LOWEST, top)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port found between {_LOWEST} and {top}")
