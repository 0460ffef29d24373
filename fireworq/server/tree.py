"""
The server process as one service tree (L{FireworqService}):

    FireworqService                (OrderedServices: stops children last first,
     │                              each waited for, within shutdown_timeout + 10 s)
     ├─ ProcessTuning  "tuning"    malloc arenas, gc freeze, malloc_trim, signals
     ├─ StoreService   "store"     opens the store, retrying with backoff
     ├─ APIListener    "api"       StreamServerEndpointService(serverFromString(bind))
     └─ StartAfter     "queues"    starts its children once the store is open
         ├─ leases     (MySQL)     the lease balancer's heartbeats
         ├─ QueueManager           one dispatcher per queue (lease, completions)
         ├─ Metrics                periodic job counts
         └─ Scheduler              fires schedules (MySQL: under the scheduler lease)

The API listens before the store has opened so that ``/health`` can answer
503 while the database is down; definition changes and pushes made before
the definitions are loaded wait for them (L{QueueManager.when_ready}).  The
API is stopped after the queue manager, so that pushes are still taken
while in-flight deliveries finish (up to ``shutdown_timeout``), and the
store is closed last.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, NoReturn, Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from fireworq import __version__
from fireworq.config import Config, ConfigError
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import EventFanout
from fireworq.history.record import retention_seconds
from fireworq.jobevents.recorder import EventRecorder
from fireworq.jobevents.stream import EventHub, StreamMetrics
from fireworq.lease import IQueueLease
from fireworq.logging import AccessLog, ErrorLogObserver, LogFiles, QueueLog, now_ms
from fireworq.manager import QueueManager
from fireworq.metrics import Metrics
from fireworq.store.observed import observe_stores
from fireworq.model import QueueDefinition
from fireworq.pushing import PushBatcher
from fireworq.server.listener import APIListener, endpoint_description
from fireworq.server.node import QueueParts, as_service, make_node
from fireworq.ordering import OrderedServices, StartAfter
from fireworq.server.stores import Stores, StoreService, open_stores
from fireworq.server.tuning import ProcessTuning
from fireworq.signing.service import SigningService, open_signing_keys
from fireworq.hooks.registry import HookRegistry
from fireworq.hooks.storage import open_hook_store
from fireworq.stats import QueueStats
from fireworq.inspection import Inspection
from fireworq.web.app import FireworqAPI
from fireworq.web.site import FireworqSite

#: Seconds the shutdown may take beyond ``shutdown_timeout`` (the dispatchers'
#: drain): closing the API, the leases and the store.
SHUTDOWN_GRACE = 10.0

#: Tests only: "1" lets schedules take 6-field crons (seconds first) and
#: ticks the scheduler every 0.1 s (docs/schedules.md).
TEST_SECONDS_ENV = "FIREWORQ_TEST_SCHEDULE_SECONDS"


class StartupFailed(Exception):
    """
    The server cannot start (raised in daemon mode, where twistd's parent
    process prints the message).
    """


class FireworqService(OrderedServices):
    """
    One Fireworq server process: the root of the service tree.

    Start-up stops with one line naming the setting, and exit status 2,
    when the API cannot listen on ``bind`` or the ``pid`` file cannot be
    written (L{startup_failed}).

    @param stores: the stores to use (default: those of the configured driver).
    @param daemon: whether twistd daemonized the process (then a failure
        to start is raised as L{StartupFailed}, for twistd to report,
        rather than printed to a standard error that is gone).
    @param tune: whether to change process-wide settings (gc, malloc,
        signal handlers); unit tests of the tree pass False.
    """

    _log = Logger()

    def __init__(
        self,
        config: Config,
        reactor: Any = None,
        stores: Optional[Stores] = None,
        daemon: bool = False,
        tune: bool = True,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        super().__init__(reactor, stop_timeout=config.shutdown_timeout + SHUTDOWN_GRACE)
        self.config = config
        self.reactor = reactor
        self.daemon = daemon
        self.node = make_node(config)
        self.log_files = LogFiles(reactor)
        self.error_observer = ErrorLogObserver(
            self.log_files.open_error_log(config.error_log), config.error_log_level
        )
        # First child: the malloc arena limit is set before any thread starts.
        self.tuning = ProcessTuning(reactor, self.log_files.reopen, lambda: reactor.stop(), tune=tune)
        self.stores = stores if stores is not None else open_stores(config, reactor)
        # Signing keys (B11) live beside the definitions, in the same database.
        self.signing = SigningService(
            open_signing_keys(self.stores.repository),
            reactor,
            refresh_interval=config.config_refresh_interval / 1000.0,
            overlap=config.signing_overlap,
        )
        self.stats = QueueStats(reactor, now_ms)
        self.metrics = Metrics(clock=reactor, driver=config.driver)
        # Every user of the stores below gets them through this wrapper, which
        # counts failed calls as DB errors.
        observe_stores(self.stores, self.metrics.db_error)
        self.store = StoreService(self.stores, reactor, config.driver)
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
        # Job events (live events of GET /events; hooks): made only while listened to.
        self.event_recorder = EventRecorder(reactor, keeps_history=self._keeps_history)
        self.events.add(self.event_recorder)
        self.balancer: Any = None
        if self.stores.leases is not None:
            from fireworq.lease import LeaseBalancer

            self.balancer = LeaseBalancer(
                self.stores.leases, self.node, reactor, ttl_ms=config.lease_ttl, now=time.monotonic
            )
        self.queue_parts = QueueParts(
            config, self.stores, self.node, self.events, reactor, self.balancer, signing=self.signing
        )
        default = None
        if config.queue_default:
            default = QueueDefinition(
                name=config.queue_default,
                polling_interval=config.queue_default_polling_interval,
                max_workers=config.queue_default_max_workers,
            )
        self.pusher = PushBatcher(self.stores.jobs, reactor, concurrency=self.stores.push_concurrency)
        self.manager = QueueManager(
            store=self.stores.jobs,
            repository=self.stores.repository,
            pusher=self.pusher,
            make_dispatcher=self.queue_parts.make_dispatcher,
            events=self.events,
            stats=self.stats,
            clock=reactor,
            default_queue=default,
            refresh_interval=config.config_refresh_interval / 1000.0,
        )
        self.manager.setName("queue-manager")
        self.metrics.manager = self.manager
        self.metrics.setName("metrics")
        # The API looks at stored data through this, never through the stores.
        self.inspection = Inspection(self.stores.jobs, self.stores.repository, self.manager)
        self.metrics.inspection = self.inspection
        self.api = FireworqAPI(self.manager, self.inspection, config, self.metrics)
        self.api.signing = self.signing
        # Event hooks (B12): definitions beside the queues'; the job store's
        # event_hooks follows them; the _hooks deliverer signs with them.
        self.hooks = HookRegistry(
            open_hook_store(self.stores.repository),
            self.stores.jobs,
            self.manager,
            reactor,
            refresh_interval=config.config_refresh_interval / 1000.0,
            job_lifetime=config.job_lifetime,
        )
        self.queue_parts.hooks = self.hooks
        self.api.hooks = self.hooks
        self.scheduler = self._make_scheduler(config, reactor)
        self.api.scheduler = self.scheduler
        self.event_hub = EventHub(
            self.event_recorder, reactor, self._queue_stats, metrics=StreamMetrics(self.metrics.registry)
        )
        self.api.event_hub = self.event_hub
        root = self.api.resource()
        #: The node's token registry when auth is on (see fireworq/auth/).
        self.tokens: Any = None
        if config.auth:
            from fireworq.auth.wiring import build_auth

            self.tokens, root = build_auth(config, self.stores, self.api, root, self.metrics, reactor)
        self.site = FireworqSite(
            root,
            AccessLog(self.log_files.open(config.access_log, 1), config.access_log_tag),
            config.max_request_body,
            config.keep_alive,
            header_timeout=config.request_header_timeout,
            body_timeout=config.request_body_timeout,
            max_connections=config.max_connections,
            reactor=reactor,
        )
        description = config.bind_endpoint or endpoint_description(config.bind_host, config.bind_port)
        # --workers N: one of N processes of this host (fireworq/server/workers.py,
        # imported only then).
        self.slot: Any = None
        shared_port = None
        if config.workers > 1:
            from fireworq.server.workers import ReusePortEndpoint, Siblings, slot_from_environment

            self.slot = slot_from_environment(config)
            if self.slot is not None:
                shared_port = ReusePortEndpoint(reactor, config.bind_host, config.bind_port)
                self.manager.siblings = Siblings(self.slot, reactor, self.manager.wake)
        self.web = APIListener(reactor, description, self.site, endpoint=shared_port)
        self.after_store = StartAfter(self.store.opened, started=self.tuning.booted, name="queues")

        self.tuning.setServiceParent(self)
        self.store.setServiceParent(self)
        if self.manager.siblings is not None:
            as_service("siblings", self.manager.siblings).setServiceParent(self)
        self.web.setServiceParent(self)
        self.after_store.setServiceParent(self)
        if self.balancer is not None:
            as_service("leases", self.balancer).setServiceParent(self.after_store)
        # Signing keys load once the store is open; deliveries wait for that.
        self.signing.setServiceParent(self.after_store)
        # Hooks load before the queue manager starts dispatching and taking
        # pushes, so that no event of the first moments goes unmatched (the
        # _hooks queue is defined through the manager once it is ready).
        self.hooks.setServiceParent(self.after_store)
        self.manager.setServiceParent(self.after_store)
        self.metrics.setServiceParent(self.after_store)
        if self.scheduler is not None:
            # Added after the queue manager, so it stops before it.
            self.scheduler.setServiceParent(self.after_store)
        if self.tokens is not None:
            self.tokens.setServiceParent(self.after_store)

    def _keeps_history(self, queue_name: str) -> bool:
        """Whether the queue keeps finished jobs (B8): its job events show state and attempts."""
        return retention_seconds(self.manager.defined(queue_name), self.config.job_lifetime) > 0

    def _queue_stats(self) -> Dict[str, Dict[str, Any]]:
        """The stats of every defined queue, as C{GET /queues/stats} shows them (for live events)."""
        return {q.name: self.manager.queue_stats(q.name) for q in self.manager.definitions()}

    def _make_scheduler(self, config: Config, reactor: Any) -> Any:
        """The schedules' firing service (B10), or None when the stores have no schedules."""
        if self.stores.schedules is None:
            return None
        from fireworq.schedules.metrics import ScheduleMetrics
        from fireworq.schedules.scheduler import NoJobs, Scheduler
        from fireworq.web.schedules import make_job

        lease = None
        if self.stores.leases is not None:
            from fireworq.lease import LeaseKeeper
            from fireworq.schedules.mysql import SCHEDULER_LEASE

            lease = LeaseKeeper(
                SCHEDULER_LEASE, self.stores.leases, NoJobs(), self.node,
                clock=reactor, ttl_ms=config.lease_ttl, now=time.monotonic,
            )
        # Tests only: 6-field crons (seconds first) and a 0.1 s tick, so a
        # fault test can watch a per-second schedule (docs/schedules.md).
        seconds = os.environ.get(TEST_SECONDS_ENV) == "1"
        return Scheduler(
            self.stores.schedules, self.manager, make_job, reactor,
            lease=lease, metrics=ScheduleMetrics(self.metrics.registry),
            tick=0.1 if seconds else 0.5,
            refresh_interval=config.config_refresh_interval / 1000.0,
            allow_seconds=seconds,
        )

    # -- twistd integration --------------------------------------------------

    def setServiceParent(self, parent: Any) -> None:
        """
        Attach to the twistd application, registering our JSON error-log
        observer on it so that twistd logs through it.
        """
        super().setServiceParent(parent)
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.error_observer)

    # -- the parts of one queue (see QueueParts) ---------------------------------

    def make_lease(self, queue_name: str, drain: Any = None) -> IQueueLease:
        """This node's lease on ``queue_name`` (L{QueueParts.make_lease})."""
        return self.queue_parts.make_lease(queue_name, drain)

    def make_dispatcher(self, definition: QueueDefinition) -> QueueDispatcher:
        """The dispatcher of one queue (L{QueueParts.make_dispatcher})."""
        return self.queue_parts.make_dispatcher(definition)

    # -- lifecycle -----------------------------------------------------------

    def startup_failed(self, error: ConfigError) -> NoReturn:
        """
        Stop start-up because of ``error``: one line on the original
        standard error and exit status 2 (in daemon mode, L{StartupFailed}
        for twistd to report, and the line in the error log).

        Log lines still buffered for a standard stream (twistd's start-up
        lines) are discarded first, deliberately: otherwise the interpreter
        writes them out at exit, after the one line (Python 3.13 does).
        """
        message = f"fireworq: {error}"
        if self.daemon:
            self._log.critical("{problem}", problem=message)
            self.log_files.flush()
            # twistd's parent prints about 60 characters of this: the essentials.
            raise StartupFailed(f"{error.name}={error.value!r}: {error.problem}") from None
        self.log_files.discard_standard_streams()
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
        """Start the children in order (listening now unless already), then log."""
        try:
            super().startService()
        except CannotListenError as e:  # not listening yet: no privilegedStartService
            self._cannot_listen(e)
        self._write_pid()
        self.log_files.start()
        self._log.info(
            "Fireworq {version} ({driver} driver) listening on {address}",
            version=__version__,
            driver=self.config.driver,
            address=self.address,
        )

    @property
    def port(self) -> int:
        """The TCP port the API listens on (the real one when bound to 0; 0 for unix:)."""
        listening = self.web.port
        if listening is not None:
            return getattr(listening.getHost(), "port", self.config.bind_port)
        return self.config.bind_port

    @property
    def address(self) -> str:
        """Where the API listens, for messages: host:port, or the endpoint description."""
        if self.config.bind_endpoint:
            return self.config.bind_endpoint
        return f"{self.config.bind_host}:{self.port}"

    def stopService(self) -> "Deferred[None]":
        """Stop the children last first (see the module docstring), then close the logs."""
        if self.manager.running:
            self._log.info("Shutting down: finishing in-flight deliveries")
        d = super().stopService()
        d.addBoth(self._closed)
        return d

    def _closed(self, _: object) -> None:
        self._remove_pid()
        self._log.info("Fireworq stopped")
        self.log_files.close()

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
