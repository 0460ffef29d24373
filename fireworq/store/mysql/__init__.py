"""
The ``mysql`` driver: jobs, definitions and leases in MySQL or MariaDB,
table-compatible with the original Fireworq (protocol A9, B2).

Build the job store and the repository with L{open_mysql_stores}; each
has C{start()} (create tables if missing) and C{stop()}.  Modules:

  - L{dsn}: Go-syntax data source names;
  - L{driver}: PyMySQL / mysqlclient behind one face;
  - L{pool}: the adbapi pool: session set-up, recycling, retry once,
    L{StoreUnavailable <fireworq.store.interface.StoreUnavailable>};
  - L{schema}: table names and DDL;
  - L{jobs}: the job store, made of one mixin per job: L{tables} (a
    queue's tables), L{push}, L{grab} (grab, release, recover),
    L{complete}, L{control} (purge, cancel, retry a failed job, expired
    keys), L{inspection} (look-ups, listings, counts), L{history} (kept
    finished jobs); L{clock}: a transaction's time;
  - L{repository}: the definitions;
  - the lease store lives with the rest of the lease concept, in
    L{fireworq.lease.mysql} (a layer above this one: nothing here imports
    it); L{fireworq.server.stores.open_mysql} builds all three stores.

The settings parse DSNs with L{dsn} whatever the driver, so this package
imports its stores (and Twisted's adbapi) only when one is first used: a
server with the sqlite or in-memory store never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from fireworq.lazy import lazy_attributes

if TYPE_CHECKING:
    from fireworq.store.mysql.jobs import MySQLJobStore
    from fireworq.store.mysql.pool import MySQLPool
    from fireworq.store.mysql.repository import MySQLRepository

#: Connections (= threads) of the pool for job tables and definitions.
#: The server's traffic arrives batched (one multi-row push, one grab and one
#: completion batch per queue at a time), so a few connections keep the
#: database busy; more add GIL contention in this process and connections on
#: the server (nodes x pool size) without more throughput.  The measurements
#: are in docs/performance.md.
DEFAULT_POOL_SIZE = 8

#: Connections of the lease pool: renewals (one per queue every ttl/3) and
#: heartbeats must never wait behind job traffic, so they have their own.
LEASE_POOL_SIZE = 2

__all__ = [
    "DEFAULT_POOL_SIZE",
    "LEASE_POOL_SIZE",
    "MySQLJobStore",
    "MySQLPool",
    "MySQLRepository",
    "open_mysql_stores",
    "open_pool",
]

#: The stores, imported on first use: name -> module.
_LAZY = {
    "MySQLJobStore": "fireworq.store.mysql.jobs",
    "MySQLPool": "fireworq.store.mysql.pool",
    "MySQLRepository": "fireworq.store.mysql.repository",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


def open_pool(
    dsn: str, reactor: Any, size: int = DEFAULT_POOL_SIZE, driver: Optional[str] = None, name: str = "mysql"
) -> MySQLPool:
    """
    A L{MySQLPool} for a Go-syntax DSN.

    @param driver: C{pymysql} or C{mysqlclient}; default: see
        L{get_driver <fireworq.store.mysql.driver.get_driver>}.
    @raise ValueError: for a bad DSN or an unavailable driver.
    """
    from fireworq.store.mysql.driver import Driver, get_driver
    from fireworq.store.mysql.dsn import parse_dsn
    from fireworq.store.mysql.pool import MySQLPool

    chosen: Driver = get_driver(driver)
    return MySQLPool(parse_dsn(dsn), chosen, size=size, reactor=reactor, name=name)


def open_mysql_stores(
    queue_dsn: str,
    repository_dsn: Optional[str],
    reactor: Any,
    driver: Optional[str] = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    fence_grabs: bool = True,
    clock: Optional[Callable[[], int]] = None,
) -> "Tuple[MySQLJobStore, MySQLRepository]":
    """
    Build the MySQL job store and repository.

    Nothing connects until a store is used (C{start()} creates the tables).
    The repository shares the job store's pool when both DSNs are the same
    (or C{repository_dsn} is None/empty).  The lease store is built above
    this layer, with the lease concept (L{fireworq.lease.mysql.open_lease_store});
    L{fireworq.server.stores.open_mysql} builds all three.

    @param queue_dsn: DSN of the job tables (C{queue_mysql_dsn} or
        C{mysql_dsn}).
    @param repository_dsn: DSN of the definition tables.
    @param reactor: the reactor (results arrive in its thread).
    @param driver: C{pymysql} or C{mysqlclient}; None for the default.
    @param pool_size: connections of the job (and shared) pool.
    @param fence_grabs: see L{MySQLJobStore}; keep it on when dispatch goes
        through L{fireworq.lease.keeper.LeaseKeeper} (it must be off if grabs
        are not made under lease epochs).
    @param clock: tests only; see L{MySQLJobStore}.
    @raise ValueError: for a bad DSN or an unavailable driver.
    """
    job_pool = open_pool(queue_dsn, reactor, size=pool_size, driver=driver, name="mysql-jobs")
    if repository_dsn and repository_dsn != queue_dsn:
        repository_pool = open_pool(repository_dsn, reactor, size=max(2, pool_size // 4), driver=driver,
                                    name="mysql-repository")
    else:
        repository_pool = job_pool
    from fireworq.store.mysql.jobs import MySQLJobStore
    from fireworq.store.mysql.repository import MySQLRepository

    return MySQLJobStore(job_pool, fence_grabs=fence_grabs, clock=clock), MySQLRepository(repository_pool)
