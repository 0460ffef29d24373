"""
Operational routes: the version (A7), the effective settings, runtime
statistics of the process and the health check (B5).
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import sys
import threading
import time
from typing import Any, Dict

from fireworq import __version__
from fireworq.web.routes import app, json_response

_STARTED = time.time()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def runtime_stats() -> Dict[str, Any]:
    """Statistics of this process (the Python counterpart of the original's /stats)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "time": int(time.time() * 1000),
        "version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "os": sys.platform,
        "arch": platform.machine(),
        "pid": os.getpid(),
        "uptime_seconds": round(time.time() - _STARTED, 3),
        "cpu_num": os.cpu_count() or 1,
        "thread_num": threading.active_count(),
        "memory_rss": _rss_bytes(),
        "memory_peak_rss": usage.ru_maxrss * 1024,
        "cpu_user_seconds": usage.ru_utime,
        "cpu_system_seconds": usage.ru_stime,
        "gc_counts": list(gc.get_count()),
        "gc_collections": [s["collections"] for s in gc.get_stats()],
        "open_fds": _open_fds(),
    }


def original_locks(manager: Any) -> Dict[str, Any]:
    """
    ``{"original_locks": [queue, ...]}``: the queues this node leaves to an
    original (Go) Fireworq node that holds their election lock on the same
    database; ``{}`` when there are none (the usual case).
    """
    names = []
    for definition in manager.definitions():
        dispatcher = manager.dispatcher(definition.name)
        lease = getattr(dispatcher, "lease", None)
        if getattr(lease, "original_holder", None) is not None:
            names.append(definition.name)
    return {"original_locks": names} if names else {}


class OpsRoutes:
    """Routes for operators and monitoring."""

    @app.route("/", methods=["GET"])
    def root(self, request: Any) -> bytes:
        return self.version(request)

    @app.route("/version", methods=["GET"])
    def version(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return f"{__version__}\n".encode("ascii")

    @app.route("/settings", methods=["GET"])
    def settings(self, request: Any) -> bytes:
        settings = self.config.settings()
        inspection = self.inspection
        if inspection.driver == "mysql":
            # Not a setting: what the store found at start (docs/production.md, Galera).
            galera = inspection.galera
            settings["mysql_galera"] = galera.describe() if galera is not None else "off"
        return json_response(request, settings)

    @app.route("/stats", methods=["GET"])
    def stats(self, request: Any) -> bytes:
        return json_response(request, runtime_stats())

    @app.route("/health", methods=["GET"])
    def health(self, request: Any) -> Any:
        manager = self.manager
        inspection = self.inspection
        d = inspection.ping()

        def healthy(_: object) -> bytes:
            if not manager.ready:
                request.setResponseCode(503)
                return json_response(
                    request,
                    {
                        "status": "starting",
                        "driver": inspection.driver,
                        "message": "the store answers but queue definitions are not loaded yet",
                    },
                )
            return json_response(
                request,
                {
                    "status": "ok",
                    "driver": inspection.driver,
                    "queues": len(manager.definitions()),
                    "version": __version__,
                    **original_locks(manager),
                },
            )

        def unhealthy(failure: Any) -> bytes:
            request.setResponseCode(503)
            return json_response(
                request,
                {
                    "status": "unavailable",
                    "driver": inspection.driver,
                    "message": f"the store does not answer: {failure.getErrorMessage()}",
                },
            )

        d.addCallbacks(healthy, unhealthy)
        return d
