"""
Process tuning as a service of its own: malloc arenas, the garbage
collector, returning freed memory, and the signal handlers of the process.

It is the first child of the service tree: the malloc arena limit is set
when it is built (before the database pool starts threads); the collector
is tuned when the tree starts, after everything loaded at start-up exists;
freed heap pages go back to the system once the store has opened
(L{ProcessTuning.booted}).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import signal
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime

#: Seconds after the store opened before freed memory is handed back.
RELEASE_DELAY = 2.0


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def tune_garbage_collector() -> None:
    """
    Make Python's cyclic garbage collector cheap for a long-running server:
    everything loaded at start-up (modules, classes, the application) is
    moved out of its reach, and collections of the youngest generation run
    after 50,000 net allocations instead of 700.  The server's hot paths
    create many short-lived objects (Deferreds, requests, jobs) that
    reference counting frees at once; with the default thresholds the
    collector ran several times per request batch and scanned every job in
    flight each time (docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def release_free_memory() -> None:
    """
    Hand memory freed after start-up back to the operating system (glibc
    keeps freed heap pages otherwise), so that an idle server's resident
    size is what it really uses.
    """
    gc.collect()
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def limit_malloc_arenas(arenas: int = 2) -> None:
    """
    Let at most ``arenas`` glibc malloc arenas serve the process's threads
    (the database pool's among them).  By default every thread that meets
    contention gets an arena of its own, whose freed pages stay resident;
    with a few arenas memory stays flat under load (docs/performance.md).
    """
    try:
        _libc().mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


class ProcessTuning(Service):
    """
    Memory settings and signal handlers of the server process.

    @param reopen_logs: called (in the reactor thread) on SIGUSR1.
    @param interrupt: called (in the reactor thread) on SIGINT when the
        shell started the process with SIGINT ignored.
    @param tune: whether to change process-wide settings at all (unit tests
        of the tree pass False).
    """

    name = "tuning"

    def __init__(
        self,
        reactor: IReactorTime,
        reopen_logs: Callable[[], None],
        interrupt: Callable[[], None],
        tune: bool = True,
    ) -> None:
        self._reactor = reactor
        self._reopen_logs = reopen_logs
        self._interrupt = interrupt
        self._tune = tune
        self._release: Optional[IDelayedCall] = None
        if tune:
            limit_malloc_arenas()

    def startService(self) -> None:
        super().startService()
        if self._tune:
            tune_garbage_collector()
            self._install_signals()

    def booted(self) -> None:
        """The store opened: give memory freed by start-up back soon."""
        if self._tune and self.running and self._release is None:
            self._release = self._reactor.callLater(RELEASE_DELAY, release_free_memory)

    def stopService(self) -> None:
        super().stopService()
        if self._release is not None and self._release.active():
            self._release.cancel()
        self._release = None

    def _install_signals(self) -> None:
        call = getattr(self._reactor, "callFromThread", None)
        if call is None:
            return

        def reopen(signum: int, frame: Any) -> None:
            call(self._reopen_logs)

        def interrupt(signum: int, frame: Any) -> None:
            call(self._interrupt)

        try:
            signal.signal(signal.SIGUSR1, reopen)
            # A shell starts background jobs with SIGINT ignored, and then the
            # reactor leaves it alone; SIGINT must still shut down gracefully.
            if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
                signal.signal(signal.SIGINT, interrupt)
        except (ValueError, AttributeError):  # not the main thread, or no SIGUSR1
            pass
