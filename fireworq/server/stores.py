"""
The store of the configured driver, and the service that opens it.

L{StoreService} opens the store when the tree starts and never gives up on
an unavailable database: it retries by the one backoff policy
(L{fireworq.backoff}) while the API answers 503.  The services that need an
open store (leases, queue manager, metrics) wait for L{StoreService.opened}
(see L{fireworq.server.ordering.StartAfter}).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import attr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq.backoff import Backoff
from fireworq.config import Config
from fireworq.lease.interface import ILeaseStore
from fireworq.store.interface import IJobStore, IRepository


@attr.s(auto_attribs=True)
class Stores:
    """The store of a driver: jobs, definitions and (MySQL only) leases."""

    jobs: IJobStore
    repository: IRepository
    leases: Optional[ILeaseStore] = None
    #: How many pushes may be written concurrently.
    push_concurrency: int = 1
    #: The schedules (B10) of the driver (L{fireworq.schedules.model.ISchedules}), or None.
    schedules: Optional[Any] = None

    def _parts(self) -> list:
        parts = [self.jobs]
        for extra in (self.repository, self.leases, self.schedules):
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


def open_mysql(
    queue_dsn: str,
    repository_dsn: Optional[str],
    reactor: Any,
    driver: Optional[str] = None,
    pool_size: Optional[int] = None,
    fence_grabs: bool = True,
    clock: Optional[Callable[[], int]] = None,
) -> Tuple[Any, Any, Any]:
    """
    The three MySQL stores: (job store, repository, lease store).

    The job store and repository come from the store layer
    (L{fireworq.store.mysql.open_mysql_stores}, same parameters); the
    lease store from the lease package (L{fireworq.lease.mysql.open_lease_store}),
    which sits above the store layer -- so they are put together here.

    @raise ValueError: for a bad DSN or an unavailable driver.
    """
    from fireworq.lease.mysql import open_lease_store
    from fireworq.store.mysql import DEFAULT_POOL_SIZE, open_mysql_stores

    jobs, repository = open_mysql_stores(
        queue_dsn,
        repository_dsn,
        reactor,
        driver=driver,
        pool_size=DEFAULT_POOL_SIZE if pool_size is None else pool_size,
        fence_grabs=fence_grabs,
        clock=clock,
    )
    return jobs, repository, open_lease_store(queue_dsn, reactor, driver=driver)


def open_stores(config: Config, reactor: Any) -> Stores:
    """Create (not yet start) the stores of the configured driver."""
    window_ms = config.idempotency_window * 1000
    if config.driver == "in-memory":
        from fireworq.store.memory import MemoryJobStore, MemoryRepository

        from fireworq.schedules.memory import MemorySchedules

        return Stores(MemoryJobStore(idempotency_window_ms=window_ms), MemoryRepository(),
                      schedules=MemorySchedules())
    if config.driver == "sqlite":
        from fireworq.store.sqlite import open_sqlite

        jobs, repository = open_sqlite(config.sqlite_path, reactor=reactor)
        jobs.idempotency_window_ms = window_ms
        from fireworq.schedules.sqlite import SqliteSchedules

        return Stores(jobs, repository, schedules=SqliteSchedules(jobs.db))
    jobs, repository, leases = open_mysql(
        config.queue_mysql_dsn, config.repository_mysql_dsn, reactor
    )
    jobs.idempotency_window_ms = window_ms
    from fireworq.schedules.mysql import MySQLSchedules

    # The schedule rows share the job pool: they live beside the job tables.
    return Stores(jobs, repository, leases, push_concurrency=4, schedules=MySQLSchedules(jobs._pool))


class StoreService(Service):
    """
    Opens L{Stores} when started (retrying with backoff until it opens or
    the service stops) and closes them when stopped.

    @param backoff: the retry state (default: 0.5 s doubling up to 5 s, so that
        the server is ready within about 5 s of the database coming up).
    """

    name = "store"
    _log = Logger()

    def __init__(
        self, stores: Stores, clock: IReactorTime, driver: str = "", backoff: Optional[Backoff] = None
    ) -> None:
        self.stores = stores
        self._clock = clock
        self._driver = driver
        self._retry = backoff or Backoff(clock, initial=0.5, maximum=5.0)
        self._opening: Optional[Deferred] = None
        self.open = False
        self._waiters: List[Deferred] = []

    def opened(self) -> "Deferred[None]":
        """Fire once the store is open (at once if it is)."""
        if self.open:
            return succeed(None)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    def startService(self) -> None:
        super().startService()
        self._try()

    def _try(self) -> None:
        if not self.running:
            return
        d = self._opening = self.stores.start()
        d.addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, _: object) -> None:
        self._opening = None
        self._retry.reset()
        if not self.running:
            return
        self.open = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _failed(self, failure: Failure) -> None:
        self._opening = None
        if not self.running:
            return
        delay = self._retry.schedule(self._try)
        self._log.error(
            "Cannot open the {driver} store: {error}; retrying in {delay:.1f}s",
            driver=self._driver,
            error=failure.getErrorMessage(),
            delay=delay,
        )

    def stopService(self) -> "Deferred[None]":
        """Stop retrying; close the store (after an open attempt under way)."""
        super().stopService()
        self._retry.cancel()
        self.open = False
        # Waiters never fire: what waited for the store does not start.
        self._waiters = []
        d = self._opening if self._opening is not None else succeed(None)
        # An open under way finishes (or fails) before the store is closed.
        waited: Deferred = Deferred()
        d.addBoth(lambda _: waited.callback(None))
        waited.addCallback(lambda _: self.stores.stop())
        return waited
