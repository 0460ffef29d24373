"""
L{LeaseKeeper}: this node's L{IQueueLease} on one queue, kept in a lease
row of an L{ILeaseStore} (MySQL, protocol B2).

Every ttl/3 the keeper takes or renews the queue's lease row (one
conditional statement on the database clock).  It reports the lease held
only while it can prove it: a renewal proves the lease until (the local
monotonic time the request was I{sent}) + ttl - a safety margin, and
L{LeaseKeeper.held} and L{LeaseKeeper.proven} compare the clock with that
deadline on every call -- so a process that was paused past its expiry
sees False before any answer arrives, and no other node can have taken the
lease before our deadline passed.  On taking a lease over it first returns
the previous holder's grabbed jobs to ``claimed`` (L{IJobStore.recover}),
then tells its listeners; the lease epoch is the ``grabber_id`` of every
job grabbed under it.

A node's keepers share one L{LeaseBalancer <fireworq.lease.balancer>},
which decides when a free lease may be taken and which leases to give up.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from fireworq.lease.balancer import GRACE, SHARE, Clock, LeaseBalancer
from fireworq.lease.interface import DEFAULT_TTL_MS, ILeaseStore, IQueueLease, LeaseGrant, LeaseListener
from fireworq.lease.original import original_lock_name
from fireworq.store.interface import IJobStore, NodeInfo
from fireworq.timers import Periodic

__all__ = ["DEFAULT_TTL_MS", "LeaseKeeper"]


@implementer(IQueueLease)
class LeaseKeeper:
    """
    This node's lease on one queue, kept in a lease row.

    @param queue_name: the queue.
    @param leases: the lease rows.
    @param jobs: the job store, to recover a previous holder's jobs.
    @param node: this server process.  Its id must be unique to the process
        (not reused by a restarted one): a lease re-taken by the same id
        keeps its epoch, so jobs grabbed under it are not recovered.
    @param clock: schedules renewals (the reactor, or a L{task.Clock}).
    @param ttl_ms: how long a lease lasts without renewal (``lease_ttl``).
    @param balancer: the node's L{LeaseBalancer}, or None to always take a
        free lease.
    @param margin: seconds the local deadline keeps short of the lease's
        expiry (default ttl / 10): covers the time between L{held} saying
        yes and the database seeing the grab.
    @param now: the clock L{held} reads, in seconds.  Default
        C{clock.seconds}; give C{time.monotonic} with the real reactor, so
        that a change of the wall clock cannot stretch a lease.
    @param drain: called when the balancer takes the lease away: fire when
        no delivery of the queue is in flight any more (the dispatcher
        stopped grabbing when told False).  The row is released only then,
        so the next holder does not recover jobs still being delivered.
    @param drain_timeout: the most seconds to wait for C{drain} (default
        10 x ttl).
    """

    _log = Logger()

    def __init__(
        self,
        queue_name: str,
        leases: ILeaseStore,
        jobs: IJobStore,
        node: NodeInfo,
        clock: IReactorTime,
        ttl_ms: int = DEFAULT_TTL_MS,
        balancer: Optional["LeaseBalancer"] = None,
        margin: Optional[float] = None,
        now: Optional[Clock] = None,
        drain: Optional[Callable[[], Deferred]] = None,
        drain_timeout: Optional[float] = None,
    ) -> None:
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        self.queue_name = queue_name
        self.node = node
        self.ttl_ms = int(ttl_ms)
        self._leases = leases
        self._jobs = jobs
        self._clock = clock
        self._now: Clock = now or clock.seconds
        self._ttl = ttl_ms / 1000.0
        self._margin = self._ttl / 10 if margin is None else margin
        #: Seconds between renewals (and attempts to take the lease).
        self.interval = self._ttl / 3
        self._balancer = balancer
        self._drain = drain
        self._drain_timeout = self._ttl * 10 if drain_timeout is None else drain_timeout
        self._listeners: List[LeaseListener] = []
        self._loop: Optional[Periodic] = None
        self._running = False
        #: The latest grant: we believe the row is ours (possibly expired
        #: locally, then the next renewal tells).
        self._grant: Optional[LeaseGrant] = None
        self._deadline = float("-inf")
        self._expiry: Optional[IDelayedCall] = None
        self._active = False
        self._recovered_epoch: Optional[int] = None
        self._request: Optional[Deferred] = None
        self._taking = False
        self._recovering: Optional[Deferred] = None
        self._draining = False
        self._free_since: Optional[float] = None
        #: Taken by the grace rule (nobody else took it): not given up for
        #: the balance until the set of live nodes changes.
        self.sticky = False
        self._taking_by_grace = False
        #: The connection id of an original node holding the queue's lock,
        #: as last checked (then this node neither takes nor renews).
        self.original_holder: Optional[int] = None

    # -- IQueueLease ------------------------------------------------------------------

    @property
    def grabber_id(self) -> int:
        """The epoch of the lease (0 when none was granted yet)."""
        return self._grant.epoch if self._grant is not None else 0

    def held(self) -> bool:
        return self._active and not self._draining and self._now() < self._deadline

    def proven(self, grabber_id: int) -> bool:
        """
        Whether the lease of epoch ``grabber_id`` is provably ours now: the
        last renewal of that epoch was I{sent} less than ttl - margin ago on
        this node's clock.  Stays true while the lease is handed over for the
        balance (its grabbed jobs are delivered before the row is released).
        """
        grant = self._grant
        return (
            self._running
            and grant is not None
            and grant.epoch == grabber_id
            and self._now() < self._deadline
        )

    def subscribe(self, listener: LeaseListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        if self._balancer is not None:
            self._balancer.register(self)
        self._loop = Periodic(self.interval, self._tick, clock=self._clock, name=f"lease {self.queue_name}")
        self._loop.startService()

    def stop(self) -> Deferred:
        if not self._running:
            return succeed(None)
        self._running = False
        if self._loop is not None:
            self._loop.stopService()
        self._loop = None
        if self._balancer is not None:
            self._balancer.unregister(self)
        self._cancel_expiry()
        self._set_active(False)
        waiting = [d for d in (self._request, self._recovering) if d is not None]
        d: Deferred = succeed(None)
        for pending in waiting:
            d.addCallback(lambda _, p=pending: _settled(p))
        d.addCallback(lambda _: self._release_row())
        return d

    def holder(self) -> Deferred:
        return self._leases.holder(self.queue_name)

    # -- for the balancer ---------------------------------------------------------

    def occupies(self) -> bool:
        """Whether this keeper holds (or is taking) the lease row."""
        return self._grant is not None or self._taking

    def draining(self) -> bool:
        """Whether the lease is being given up for the balance."""
        return self._draining

    def poke(self) -> None:
        """Try now (take or renew) rather than at the next tick."""
        if self._running and self._request is None:
            self._tick()

    def relinquish(self) -> Deferred:
        """
        Give the lease up for the balance: tell the listeners False at once,
        wait for C{drain}, then release the row.
        """
        if not self._running or self._grant is None or self._draining:
            return succeed(None)
        self._log.info("Giving the lease of queue {queue} to a less busy node", queue=self.queue_name)
        self._draining = True
        self._set_active(False)
        d = maybeDeferred(self._drain) if self._drain is not None else succeed(None)
        d.addTimeout(self._drain_timeout, self._clock)
        d.addErrback(lambda f: self._log.warn(
            "Queue {queue} did not drain before its lease was released: {why}",
            queue=self.queue_name, why=f.getErrorMessage(),
        ))

        def release(_: object) -> Deferred:
            waiting = self._request
            d2 = _settled(waiting) if waiting is not None else succeed(None)
            d2.addCallback(lambda _: self._release_row() if self._draining else None)
            return d2

        d.addCallback(release)
        return d

    # -- the cycle ------------------------------------------------------------------------

    def _tick(self) -> None:
        try:
            self._step()
        except Exception:
            self._log.failure("Lease cycle of queue {queue} failed", queue=self.queue_name)

    def _step(self) -> None:
        if not self._running or self._request is not None:
            return
        # First, whether an original (Go) Fireworq node dispatches the queue
        # from the same database (its GET_LOCK election knows nothing of our
        # lease rows): then neither take nor renew.  A check of its own, so
        # that the claim stays one statement.
        d = self._leases.original_lock_holder(self.queue_name)
        self._request = d
        d.addCallbacks(
            self._original_checked, self._original_check_failed, callbackArgs=(d,), errbackArgs=(d,)
        )

    def _original_checked(self, holder: Optional[int], d: Deferred) -> None:
        if self._request is d:
            self._request = None
        if not self._running:
            return
        if holder is not None:
            self._defer_to_original(holder)
            return
        if self.original_holder is not None:
            self._log.info(
                "Queue {queue}: the original Fireworq released its lock {lock}; "
                "this node may dispatch the queue again",
                queue=self.queue_name, lock=original_lock_name(self.queue_name),
            )
            self.original_holder = None
        self._claim_step()

    def _original_check_failed(self, failure: Failure, d: Deferred) -> None:
        if self._request is d:
            self._request = None
        # Nothing is proven this round: held() turns False at the deadline.
        self._log.warn(
            "Cannot renew the lease of queue {queue}: {why}",
            queue=self.queue_name, why=failure.getErrorMessage(),
        )

    def _defer_to_original(self, holder: int) -> None:
        """An original node holds the queue's lock: leave the queue to it."""
        if self.original_holder is None:
            self._log.warn(
                "Queue {queue}: an original Fireworq node holds its lock {lock} (database "
                "connection {holder}) and dispatches it; this node does not dispatch the "
                "queue while that lock is held",
                queue=self.queue_name, lock=original_lock_name(self.queue_name), holder=holder,
            )
        self.original_holder = holder
        self._free_since = None
        if self._grant is not None:
            self._release_row()

    def _claim_step(self) -> None:
        if self._grant is not None:
            self._acquire()
            return
        reason = self._take_reason()
        if reason is not None:
            self._acquire(by_grace=reason == GRACE)
        else:
            self._probe()

    def _take_reason(self) -> Optional[str]:
        if self._balancer is None:
            return SHARE
        free_for = 0.0 if self._free_since is None else self._now() - self._free_since
        return self._balancer.take_reason(self, free_for)

    def _acquire(self, by_grace: bool = False) -> None:
        sent_at = self._now()
        self._taking = self._grant is None
        self._taking_by_grace = self._taking and by_grace
        d = self._leases.acquire(self.queue_name, self.node, self.ttl_ms)
        self._request = d
        d.addCallbacks(self._granted, self._acquire_failed, callbackArgs=(sent_at,))
        d.addBoth(self._request_done, d)

    def _request_done(self, result: object, d: Deferred) -> object:
        if self._request is d:
            self._request = None
            self._taking = False
        return None

    def _acquire_failed(self, failure: Failure) -> None:
        # Nothing is proven: held() turns False when the deadline passes.
        self._log.warn(
            "Cannot renew the lease of queue {queue}: {why}",
            queue=self.queue_name, why=failure.getErrorMessage(),
        )

    def _granted(self, grant: Optional[LeaseGrant], sent_at: float) -> None:
        if grant is None:
            if self._grant is not None:
                self._log.info("Lost the lease of queue {queue} to another node", queue=self.queue_name)
            self._lose()
            return
        if not self._running:
            self._grant = grant  # stop() releases it
            return
        previous = self._grant
        self._grant = grant
        self._free_since = None
        if previous is None:
            self.sticky = self._taking_by_grace
        self._deadline = sent_at + self._ttl - self._margin
        self._schedule_expiry()
        if previous is None:
            self._log.info(
                "Took the lease of queue {queue} (epoch {epoch})", queue=self.queue_name, epoch=grant.epoch
            )
        if self._draining:
            return
        if grant.taken_over or grant.epoch != self._recovered_epoch:
            self._set_active(False)
            if self._now() < self._deadline:
                self._recover(grant.epoch)
            else:
                # The answer came after the grant's own deadline (a claim
                # that stalled, e.g. in a Galera view change): another node
                # may hold the queue by now, so recover nothing; the next
                # renewal either proves the lease in time or loses it.
                self._log.warn(
                    "Lease of queue {queue} (epoch {epoch}) granted too late to use; "
                    "not recovering under it",
                    queue=self.queue_name, epoch=grant.epoch,
                )
        elif self._now() < self._deadline:
            self._set_active(True)

    def _recover(self, epoch: int) -> None:
        if self._recovering is not None:
            return
        d = self._jobs.recover(self.queue_name, epoch)
        self._recovering = d

        def recovered(count: int) -> None:
            if count:
                self._log.info(
                    "Recovered {count} job(s) of queue {queue} grabbed by the previous holder",
                    count=count, queue=self.queue_name,
                )
            self._recovered_epoch = epoch
            grant = self._grant
            if (self._running and not self._draining and grant is not None
                    and grant.epoch == epoch and self._now() < self._deadline):
                self._set_active(True)

        def failed(failure: Failure) -> None:
            self._log.warn(
                "Cannot recover the grabbed jobs of queue {queue}; will retry: {why}",
                queue=self.queue_name, why=failure.getErrorMessage(),
            )

        def done(_: object) -> None:
            self._recovering = None

        d.addCallbacks(recovered, failed)
        d.addBoth(done)

    def _probe(self) -> None:
        sent_at = self._now()
        d = self._leases.holder(self.queue_name)
        self._request = d

        def seen(holder: Optional[NodeInfo]) -> None:
            if holder is not None:
                self._free_since = None
                return
            if self._free_since is None:
                self._free_since = sent_at

        def failed(failure: Failure) -> None:
            self._log.warn(
                "Cannot see who holds the lease of queue {queue}: {why}",
                queue=self.queue_name, why=failure.getErrorMessage(),
            )

        d.addCallbacks(seen, failed)
        d.addBoth(self._request_done, d)
        d.addCallback(lambda _: self._take_reason() is not None and self.poke())

    def _lose(self) -> None:
        self._grant = None
        self.sticky = False
        self._draining = False
        self._cancel_expiry()
        self._set_active(False)

    def _release_row(self) -> Deferred:
        grant, self._grant = self._grant, None
        self.sticky = False
        self._draining = False
        self._cancel_expiry()
        self._set_active(False)
        if grant is None:
            return succeed(None)
        d = self._leases.release(self.queue_name, self.node)
        d.addErrback(lambda f: self._log.warn(
            "Cannot release the lease of queue {queue} (it will expire): {why}",
            queue=self.queue_name, why=f.getErrorMessage(),
        ))
        return d

    # -- the deadline ---------------------------------------------------------------

    def _schedule_expiry(self) -> None:
        self._cancel_expiry()
        delay = max(0.0, self._deadline - self._now())
        self._expiry = self._clock.callLater(delay, self._expired)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _expired(self) -> None:
        self._expiry = None
        if self._now() >= self._deadline and self._active:
            self._log.warn(
                "The lease of queue {queue} expired before it could be renewed", queue=self.queue_name
            )
            self._set_active(False)
        elif self._active:
            self._schedule_expiry()

    def _set_active(self, active: bool) -> None:
        if active == self._active:
            return
        self._active = active
        for listener in list(self._listeners):
            try:
                listener(active)
            except Exception:
                self._log.failure("Lease listener of queue {queue} failed", queue=self.queue_name)


def _settled(d: Deferred) -> Deferred:
    """A Deferred firing (with None) once ``d`` has, without touching its result."""
    waiter: Deferred = Deferred()

    def fire(result: object) -> object:
        if not waiter.called:
            waiter.callback(None)
        return result

    d.addBoth(fire)
    return waiter
