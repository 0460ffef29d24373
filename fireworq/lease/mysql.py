"""
L{MySQLLeaseStore}: queue leases and node heartbeats (protocol B2) in our
own tables ``fireworq_lease`` and ``fireworq_node``, beside the job tables
-- and a look at the original Fireworq's per-queue lock.

Every time is the database clock, so nodes whose clocks disagree still
agree on who holds a lease.  A lease is taken or renewed by I{one}
conditional statement in its own transaction, whose row count says
whether it was granted (so it stays correct on Galera, where a write is
certified on commit and a locking read protects nothing)::

    UPDATE fireworq_lease
    SET epoch = LAST_INSERT_ID(<epoch, + 1 unless the holder was me>
                               packed with <whether the holder was not me>) ...,
        taken_at = ..., holder = me, expires_at = now + ttl
    WHERE name = q AND (holder = me OR expires_at <= now)

MySQL evaluates the assignments left to right, so ``epoch`` and
``taken_at`` still see the previous holder; C{LAST_INSERT_ID(expr)} hands
the new epoch and the took-over bit back with the statement's answer (the
cursor's C{lastrowid}), without a second read.  The epoch -- the fencing
token stamped on grabbed jobs -- changes exactly when the holder changes; a
renewal, or the same node taking its own expired lease back, keeps it.  A
queue without a row gets one by a single C{INSERT ... ON DUPLICATE KEY
UPDATE} that changes nothing when another node created it first.

The original (Go) Fireworq elects a queue's dispatcher with the MySQL
user lock C{fireworq_jq(<queue>)} (C{GET_LOCK}, jobqueue/mysql/activator.go
of fireworq/fireworq); L{MySQLLeaseStore.original_lock_holder} reads it
with C{IS_USED_LOCK}, so that a node of ours sharing the database with an
original one during a migration leaves that queue to it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from fireworq.lease.interface import ILeaseStore, LeaseGrant
from fireworq.lease.original import MAX_LOCK_NAME, WRONG_LOCK_NAME_ERRORS, original_lock_name
from fireworq.store.interface import NodeInfo, StoreUnavailable
from fireworq.store.mysql.pool import MySQLPool
from fireworq.store.mysql.rows import text
from fireworq.store.mysql.schema import LEASE_DDL, NOW_MS

#: The epoch of a lease row's first holder.  It is above any 32-bit
#: CONNECTION_ID(), which the original Fireworq stored as ``grabber_id``, so
#: jobs an original server left grabbed never look like ours.
FIRST_EPOCH = 1 << 32


def _error_code(error: BaseException) -> Optional[int]:
    """The MySQL error number of a PyMySQL or mysqlclient exception."""
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


#: Milliseconds after which the heartbeat row of a node that left is deleted.
NODE_ROW_RETENTION_MS = 24 * 3600 * 1000


@implementer(ILeaseStore)
class MySQLLeaseStore:
    """
    Lease rows in MySQL.

    @param pool: a connection pool of the queue DSN.  L{open_lease_store}
        gives the lease store a small pool of its own, so that renewals
        never wait behind job traffic.
    """

    def __init__(self, pool: MySQLPool) -> None:
        self._pool = pool.retain()
        self._stopped = False

    def start(self) -> Deferred:
        """Create the lease and node tables if missing."""

        def create(cursor: Any) -> None:
            for ddl in LEASE_DDL:
                cursor.execute(ddl)

        return self._go(create, idempotent=True, what="create lease tables")

    def _go(self, work: Any, idempotent: bool, what: str, causal: bool = False) -> Deferred:
        """
        Run ``work`` on the lease pool.  Claims and renewals need no causal
        read on a Galera cluster: one made on a node that has not yet
        applied a newer write of the row fails certification and is run
        again by the pool.  Waiting for the cluster (C{causal}) would only
        slow renewals down behind replication of job traffic; it is used for
        L{holder}, which answers C{GET /queue/{q}/node}.
        """
        if self._stopped:
            return fail(StoreUnavailable(f"the MySQL lease store is stopped ({what})"))
        if causal:
            return self._pool.run(work, idempotent=idempotent, what=what, causal=True)
        return self._pool.run(work, idempotent=idempotent, what=what)

    def stop(self) -> Deferred:
        """Let go of the connection pool; later calls fail with StoreUnavailable."""
        if self._stopped:
            return succeed(None)
        self._stopped = True
        return self._pool.release()

    def acquire(self, queue_name: str, node: NodeInfo, ttl_ms: int) -> Deferred:
        ttl_ms = int(ttl_ms)

        def claim(cursor: Any) -> Optional[LeaseGrant]:
            cursor.execute(
                "UPDATE `fireworq_lease` SET "
                "epoch = LAST_INSERT_ID((IF(holder = %s, epoch, epoch + 1) << 1) | (holder <> %s)) >> 1, "
                f"taken_at = IF(holder = %s, taken_at, {NOW_MS}), "
                # GREATEST: a renewal within the same millisecond still
                # changes the row, so its row count says "granted".
                f"holder = %s, host = %s, expires_at = GREATEST({NOW_MS} + %s, expires_at + 1) "
                f"WHERE name = %s AND (holder = %s OR expires_at <= {NOW_MS})",
                (node.id, node.id, node.id, node.id, node.host, ttl_ms, queue_name, node.id),
            )
            if cursor.rowcount != 1:
                return None
            packed = int(cursor.lastrowid)
            return LeaseGrant(epoch=packed >> 1, taken_over=bool(packed & 1))

        def create(cursor: Any) -> Optional[LeaseGrant]:
            cursor.execute(
                "INSERT INTO `fireworq_lease` "
                "(name, holder, host, epoch, expires_at, taken_at) "
                f"VALUES (%s, %s, %s, %s, {NOW_MS} + %s, {NOW_MS}) "
                "ON DUPLICATE KEY UPDATE name = name",
                (queue_name, node.id, node.host, FIRST_EPOCH, ttl_ms),
            )
            if cursor.rowcount == 1:
                return LeaseGrant(epoch=FIRST_EPOCH, taken_over=True)
            return None  # another node created it first (and holds it)

        what = f"acquire the lease of {queue_name!r}"
        # Both are safe to repeat after a lost COMMIT: a repeated claim is a
        # renewal by the same node, a repeated create finds the row.
        d = self._go(claim, idempotent=True, what=what)

        def maybe_create(grant: Optional[LeaseGrant]) -> Any:
            if grant is not None:
                return grant
            return self._go(create, idempotent=True, what=what)

        d.addCallback(maybe_create)
        return d

    def original_lock_holder(self, queue_name: str) -> Deferred:
        name = original_lock_name(queue_name)
        if len(name) > MAX_LOCK_NAME:
            return succeed(None)  # the original cannot hold it either

        def work(cursor: Any) -> Optional[int]:
            try:
                cursor.execute("SELECT IS_USED_LOCK(%s)", (name,))
            except Exception as error:
                if _error_code(error) in WRONG_LOCK_NAME_ERRORS:
                    return None  # refused: the original cannot hold it either
                raise
            row = cursor.fetchone()
            return int(row[0]) if row is not None and row[0] is not None else None

        return self._go(work, idempotent=True, what=f"check the original Fireworq's lock of {queue_name!r}")

    def release(self, queue_name: str, node: NodeInfo) -> Deferred:
        def work(cursor: Any) -> None:
            cursor.execute(
                f"UPDATE `fireworq_lease` SET expires_at = {NOW_MS} - 1 "
                f"WHERE name = %s AND holder = %s AND expires_at > {NOW_MS}",
                (queue_name, node.id),
            )

        return self._go(work, idempotent=True, what=f"release the lease of {queue_name!r}")

    def holder(self, queue_name: str) -> Deferred:
        def work(cursor: Any) -> Optional[NodeInfo]:
            cursor.execute(
                f"SELECT holder, host FROM `fireworq_lease` WHERE name = %s AND expires_at > {NOW_MS}",
                (queue_name,),
            )
            row = cursor.fetchone()
            return NodeInfo(id=text(row[0]), host=text(row[1])) if row else None

        return self._go(work, idempotent=True, what=f"find the holder of {queue_name!r}", causal=True)

    def heartbeat(self, node: NodeInfo, ttl_ms: int) -> Deferred:
        def work(cursor: Any) -> Dict[str, int]:
            cursor.execute(
                f"INSERT INTO `fireworq_node` (id, host, expires_at) VALUES (%s, %s, {NOW_MS} + %s) "
                "ON DUPLICATE KEY UPDATE host = VALUES(host), expires_at = VALUES(expires_at)",
                (node.id, node.host, int(ttl_ms)),
            )
            cursor.execute(
                "SELECT n.id, (SELECT COUNT(*) FROM `fireworq_lease` l "
                f"WHERE l.holder = n.id AND l.expires_at > {NOW_MS}) "
                f"FROM `fireworq_node` n WHERE n.expires_at > {NOW_MS}"
            )
            live = {text(node_id): int(count) for node_id, count in cursor.fetchall()}
            cursor.execute(
                f"DELETE FROM `fireworq_node` WHERE expires_at < {NOW_MS} - %s",
                (NODE_ROW_RETENTION_MS,),
            )
            return live

        return self._go(work, idempotent=True, what="record a heartbeat")


def open_lease_store(queue_dsn: str, reactor: Any, driver: Optional[str] = None) -> MySQLLeaseStore:
    """
    The lease store of a MySQL server: its own pool of
    L{LEASE_POOL_SIZE <fireworq.store.mysql.LEASE_POOL_SIZE>} connections on
    the queue DSN (the lease rows live beside the job tables).

    @raise ValueError: for a bad DSN or an unavailable driver.
    """
    from fireworq.store.mysql import LEASE_POOL_SIZE, open_pool

    return MySQLLeaseStore(open_pool(queue_dsn, reactor, size=LEASE_POOL_SIZE, driver=driver, name="mysql-lease"))
