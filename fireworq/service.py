"""
The server process as one Twisted service: it opens the store chosen by the
configuration, starts the queue manager (which runs one dispatcher per
queue), serves the HTTP API and writes the logs.

Start-up never gives up on an unavailable database: the API answers 503
until the store opens and the definitions are loaded.  Shutdown stops
grabbing, keeps serving pushes while in-flight deliveries finish (up to
``shutdown_timeout``), then closes the API and the store.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import random
import signal
import socket
import sys
import time
from typing import Any, NoReturn, Optional

import attr
from twisted.application.internet import TCPServer
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from fireworq import __version__
from fireworq.config import Config, ConfigError
from fireworq.dispatch.delivery import HTTPDeliverer, make_http_client, make_pool
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease import ILeaseStore, IQueueLease, SoleLease
from fireworq.events import EventFanout
from fireworq.logging import AccessLog, ErrorLogObserver, LogFiles, QueueLog, log_failure, now_ms
from fireworq.manager import QueueManager
from fireworq.metrics import Metrics, observe_stores
from fireworq.model import QueueDefinition
from fireworq.pushing import PushBatcher
from fireworq.stats import QueueStats
from fireworq.store.interface import IJobStore, IRepository, NodeInfo
from fireworq.web.app import FireworqAPI
from fireworq.web.site import FireworqSite


@attr.s(auto_attribs=True)
class Stores:
    """The store of a driver: jobs, definitions and (MySQL only) leases."""

    jobs: IJobStore
    repository: IRepository
    leases: Optional[ILeaseStore] = None
    #: How many pushes may be written concurrently.
    push_concurrency: int = 1

    def _parts(self) -> list:
        parts = [self.jobs]
        for extra in (self.repository, self.leases):
            if extra is not None and all(extra is not p for p in parts) and hasattr(extra, "start"):
                parts.append(extra)
        return parts

    def start(self) -> "Deferred[None]":
        """Open the store (and the repository and leases, when separate objects)."""
        d: Deferred = succeed(None)
        for part in self._parts():
            d.addCallback(lambda _, p=part: p.start())
        return d

    def stop(self) -> "Deferred[None]":
        """Close the store."""
        d: Deferred = succeed(None)
        for part in reversed(self._parts()):
            d.addBoth(lambda _, p=part: p.stop())
        return d


def open_stores(config: Config, reactor: Any) -> Stores:
    """Create (not yet start) the stores of the configured driver."""
    if config.driver == "in-memory":
        from fireworq.store.memory import MemoryJobStore, MemoryRepository

        return Stores(MemoryJobStore(), MemoryRepository())
    if config.driver == "sqlite":
        from fireworq.store.sqlite import open_sqlite

        jobs, repository = open_sqlite(config.sqlite_path, reactor=reactor)
        return Stores(jobs, repository)
    from fireworq.store.mysql import open_mysql

    jobs, repository, leases = open_mysql(
        config.queue_mysql_dsn, config.repository_mysql_dsn, reactor
    )
    return Stores(jobs, repository, leases, push_concurrency=4)


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
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
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
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


def make_node(config: Config) -> NodeInfo:
    """This process as a node: a fresh id per start, the host name."""
    host = socket.gethostname()
    unique = "%06x" % random.SystemRandom().getrandbits(24)
    return NodeInfo(id=f"{host}:{config.bind_port}:{os.getpid()}:{unique}", host=host)


class StartupFailed(Exception):
    """
    The server cannot start (raised in daemon mode, where twistd's parent
    process prints the message).
    """


class FireworqService(MultiService):
    """
    One Fireworq server process.

    Start-up stops with one line naming the setting, and exit status 2,
    when the API cannot listen on ``bind`` or the ``pid`` file cannot be
    written (L{startup_failed}).
    """

    _log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any = None,
        stores: Optional[Stores] = None,
        daemon: bool = False,
    ) -> None:
        """
        @param daemon: whether twistd daemonized the process (then a failure
            to start is raised as L{StartupFailed}, for twistd to report,
            rather than printed to a standard error that is gone).
        """
        super().__init__()
        limit_malloc_arenas()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self.daemon = daemon
        self.node = make_node(config)
        self.log_files = LogFiles(reactor)
        self.error_observer = ErrorLogObserver(
            self.log_files.open_error_log(config.error_log), config.error_log_level
        )
        self.stores = stores if stores is not None else open_stores(config, reactor)
        self.stats = QueueStats(reactor, now_ms)
        self.metrics = Metrics(self)
        # Every user of the stores below gets them through this wrapper, which
        # counts failed calls as DB errors.
        observe_stores(self.stores, self.metrics.db_error)
        self.events = EventFanout(
            [
                self.stats,
                QueueLog(
                    self.log_files.open(config.queue_log, 1),
                    config.queue_log_tag,
                    config.queue_log_level,
                ),
                self.metrics,
            ]
        )
        self._grabber_id = int(time.time() * 1000)
        default = None
        if config.queue_default:
            default = QueueDefinition(
                name=config.queue_default,
                polling_interval=config.queue_default_polling_interval,
                max_workers=config.queue_default_max_workers,
            )
        self.pusher = PushBatcher(
            self.stores.jobs, reactor, concurrency=self.stores.push_concurrency
        )
        self.manager = QueueManager(
            store=self.stores.jobs,
            repository=self.stores.repository,
            pusher=self.pusher,
            make_dispatcher=self.make_dispatcher,
            events=self.events,
            stats=self.stats,
            clock=reactor,
            default_queue=default,
            refresh_interval=config.config_refresh_interval / 1000.0,
        )
        self.api = FireworqAPI(self.manager, config, self.metrics)
        self.site = FireworqSite(
            self.api.resource(),
            AccessLog(self.log_files.open(config.access_log, 1), config.access_log_tag),
            config.max_request_body,
            config.keep_alive,
            reactor=reactor,
        )
        self.web = TCPServer(
            config.bind_port, self.site, interface=config.bind_host, reactor=reactor
        )
        self.web.setServiceParent(self)
        self.metrics.setServiceParent(self)
        self.balancer: Any = None
        if self.stores.leases is not None:
            from fireworq.lease import LeaseBalancer

            self.balancer = LeaseBalancer(
                self.stores.leases,
                self.node,
                reactor,
                ttl_ms=config.lease_ttl,
                now=time.monotonic,
            )
        self._boot_call: Any = None
        self._stopping = False

    # -- twistd integration --------------------------------------------------

    def setServiceParent(self, parent: Any) -> None:
        """
        Attach to the twistd application, registering our JSON error-log
        observer on it so that twistd logs through it.
        """
        super().setServiceParent(parent)
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.error_observer)

    # -- the parts of one queue --------------------------------------------------

    def make_lease(self, queue_name: str, drain: Any = None) -> IQueueLease:
        """
        This node's lease on ``queue_name``; ``drain`` fires when the queue's
        dispatcher has nothing in flight (so a lease given up to balance the
        nodes is released only then).
        """
        if self.stores.leases is None:
            return SoleLease(
                queue_name, self.stores.jobs, self.node, self._grabber_id, self.reactor
            )
        from fireworq.lease import LeaseKeeper

        return LeaseKeeper(
            queue_name,
            self.stores.leases,
            self.stores.jobs,
            self.node,
            clock=self.reactor,
            ttl_ms=self.config.lease_ttl,
            balancer=self.balancer,
            now=time.monotonic,
            drain=drain,
        )

    def make_dispatcher(self, definition: QueueDefinition) -> QueueDispatcher:
        """The dispatcher of one queue, with its own worker connection pool."""
        config = self.config
        pool = make_pool(
            self.reactor,
            persistent=config.dispatch_keep_alive,
            max_per_host=max(config.dispatch_max_conns_per_host, definition.max_workers),
            idle_timeout=config.dispatch_idle_conn_timeout,
        )
        deliverer = HTTPDeliverer(
            make_http_client(self.reactor, pool),
            config.dispatch_user_agent,
            self.reactor,
            pool=pool,
            min_idle_per_host=config.dispatch_max_conns_per_host,
        )
        made: list = []
        dispatcher = QueueDispatcher(
            definition,
            self.stores.jobs,
            self.make_lease(definition.name, drain=lambda: made[0].when_idle()),
            deliverer,
            self.events,
            self.reactor,
            shutdown_timeout=config.shutdown_timeout,
        )
        made.append(dispatcher)
        return dispatcher

    # -- lifecycle -----------------------------------------------------------

    def startup_failed(self, error: ConfigError) -> NoReturn:
        """
        Stop start-up because of ``error``: one line on the original
        standard error and exit status 2 (in daemon mode, L{StartupFailed}
        for twistd to report, and the line in the error log).
        """
        message = f"fireworq: {error}"
        if self.daemon:
            self._log.critical("{problem}", problem=message)
            self.log_files.flush()
            # twistd's parent prints about 60 characters of this: the essentials.
            raise StartupFailed(f"{error.name}={error.value!r}: {error.problem}") from None
        stream = sys.__stderr__
        if stream is not None:
            stream.write(message + "\n")
            stream.flush()
        raise SystemExit(2)

    def _cannot_listen(self, error: CannotListenError) -> NoReturn:
        reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
        self.startup_failed(
            ConfigError("bind", self.config.raw.get("bind", ""), f"cannot listen: {reason}")
        )

    def privilegedStartService(self) -> None:
        """Listen on ``bind`` (twistd calls this before it sheds privileges)."""
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            self._cannot_listen(e)

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as e:  # not listening yet: no privilegedStartService
            self._cannot_listen(e)
        self._write_pid()
        tune_garbage_collector()
        self.log_files.start()
        self._install_signals()
        self._log.info(
            "Fireworq {version} ({driver} driver) listening on {host}:{port}",
            version=__version__,
            driver=self.config.driver,
            host=self.config.bind_host,
            port=self.port,
        )
        self._boot()

    @property
    def port(self) -> int:
        """The TCP port the API listens on (the real one when bound to 0)."""
        listening = getattr(self.web, "_port", None)
        if listening is not None:
            return listening.getHost().port
        return self.config.bind_port

    def _boot(self) -> None:
        self._boot_call = None
        if self._stopping:
            return
        d = self.stores.start()

        def started(_: object) -> None:
            if self._stopping:
                return
            if self.balancer is not None:
                self.balancer.start()
            self.manager.setServiceParent(self)
            self.reactor.callLater(2.0, release_free_memory)

        def failed(failure: Failure) -> None:
            self._log.error(
                "Cannot open the {driver} store: {error}; retrying in 2s",
                driver=self.config.driver,
                error=failure.getErrorMessage(),
            )
            if not self._stopping:
                self._boot_call = self.reactor.callLater(2.0, self._boot)

        d.addCallbacks(started, failed)

    def stopService(self) -> Deferred:
        self._stopping = True
        self.running = 0
        if self._boot_call is not None and self._boot_call.active():
            self._boot_call.cancel()
        d: Deferred = succeed(None)
        if self.manager.running:
            self._log.info("Shutting down: finishing in-flight deliveries")
            d = maybeDeferred(self.manager.stopService)
            d.addTimeout(self.config.shutdown_timeout + 10, self.reactor)
            d.addErrback(log_failure(self._log, "Error while stopping the dispatchers"))
        if self.metrics.running:
            d.addBoth(lambda _: self.metrics.stopService())
        if self.balancer is not None:
            d.addBoth(lambda _: self.balancer.stop())
        d.addBoth(lambda _: maybeDeferred(self.web.stopService))
        d.addBoth(lambda _: self.stores.stop())
        d.addErrback(log_failure(self._log, "Error while closing the store"))
        d.addBoth(self._closed)
        return d

    def _closed(self, _: object) -> None:
        self._remove_pid()
        self._log.info("Fireworq stopped")
        self.log_files.close()

    def _install_signals(self) -> None:
        def reopen(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self.log_files.reopen)

        def interrupt(signum: int, frame: Any) -> None:
            self.reactor.callFromThread(self.reactor.stop)

        try:
            signal.signal(signal.SIGUSR1, reopen)
            # A shell starts background jobs with SIGINT ignored, and then the
            # reactor leaves it alone; SIGINT must still shut down gracefully.
            if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
                signal.signal(signal.SIGINT, interrupt)
        except (ValueError, AttributeError):  # not the main thread, or no SIGUSR1
            pass

    def _write_pid(self) -> None:
        if self.config.pid:
            try:
                with open(self.config.pid, "w") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError as e:
                self.startup_failed(
                    ConfigError("pid", self.config.pid, f"cannot write the pid file: {e.strerror or e}")
                )

    def _remove_pid(self) -> None:
        if self.config.pid:
            try:
                os.remove(self.config.pid)
            except OSError:
                pass
