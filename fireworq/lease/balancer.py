"""
L{LeaseBalancer}: spreads the queues' leases over the live nodes.

All L{LeaseKeeper <fireworq.lease.keeper.LeaseKeeper>}s of a node share one
balancer.  It records a heartbeat row per node, and with N live nodes and Q
queues a node takes a free lease only while it holds fewer than
L{fair_share} = ceil(Q / N) -- unless the lease has stayed free for a grace
period (availability first) -- and gives up leases beyond its share, after
its dispatcher drained them, when another live node has room.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fireworq.lease.interface import DEFAULT_TTL_MS, ILeaseStore
from fireworq.store.interface import NodeInfo
from fireworq.timers import Periodic

if TYPE_CHECKING:
    from fireworq.lease.keeper import LeaseKeeper

#: Why a keeper may take a free lease: this node is below its share ...
SHARE = "share"
#: ... or the lease has been free for the grace period.
GRACE = "grace"

#: A clock in seconds (C{time.monotonic} with the real reactor).
Clock = Callable[[], float]


def fair_share(queues: int, nodes: int) -> int:
    """The most leases one node should hold: ceil(queues / nodes)."""
    return math.ceil(queues / max(1, nodes)) if queues > 0 else 0


class LeaseBalancer:
    """
    Spreads the queues' leases over the live nodes; one per node, shared by
    all of its L{LeaseKeeper}s.

    The policy is a pure function of what the last heartbeat saw (live node
    ids and how many leases each holds), the keepers registered here and
    the clock, so it can be tested with a fake lease store and
    L{task.Clock}:

      - share = ceil(Q / N) for Q registered queues and N live nodes;
      - a keeper may take a free lease while this node holds (or is taking)
        fewer than share leases (L{SHARE}), or once the lease has been seen
        free for C{grace} seconds (L{GRACE}); before the first heartbeat
        answered, only the grace rule applies;
      - after each heartbeat, when this node holds more than share and some
        other live node holds fewer, the excess is given up: the keepers of
        the last queue names (sorted) L{relinquish <LeaseKeeper.relinquish>}
        -- except leases taken by the grace rule, which nobody else wanted:
        they stay until the set of live nodes changes;
      - when this node holds fewer than share, its idle keepers try at once.

    @param leases: the lease store (heartbeat rows).
    @param node: this server process.
    @param clock: schedules heartbeats.
    @param ttl_ms: the lease time-to-live; a heartbeat row lives as long.
    @param grace: seconds a lease may stay free before any node takes it
        regardless of shares (default: ttl).
    @param interval: seconds between heartbeats (default ttl / 3).
    @param now: the clock, in seconds (default C{clock.seconds}).
    """

    _log = Logger()

    def __init__(
        self,
        leases: ILeaseStore,
        node: NodeInfo,
        clock: IReactorTime,
        ttl_ms: int = DEFAULT_TTL_MS,
        grace: Optional[float] = None,
        interval: Optional[float] = None,
        now: Optional[Clock] = None,
    ) -> None:
        self.node = node
        self.ttl_ms = int(ttl_ms)
        self.grace = ttl_ms / 1000.0 if grace is None else grace
        self.interval = ttl_ms / 3000.0 if interval is None else interval
        self._leases = leases
        self._clock = clock
        self._now: Clock = now or clock.seconds
        self._keepers: Dict[str, "LeaseKeeper"] = {}
        #: Live node id -> leases held, from the latest heartbeat (None
        #: before the first one answered).
        self.live: Optional[Dict[str, int]] = None
        self._loop: Optional[Periodic] = None
        self._beating: Optional[Deferred] = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Begin the heartbeats."""
        if self._loop is not None:
            return
        self._loop = Periodic(self.interval, self._beat, clock=self._clock, name="lease heartbeat")
        self._loop.startService()

    def stop(self) -> Deferred:
        """Stop the heartbeats and mark this node gone (best effort)."""
        if self._loop is None:
            return succeed(None)
        self._loop.stopService()
        self._loop = None
        d = self._leases.heartbeat(self.node, 0)
        d.addErrback(lambda f: None)
        d.addCallback(lambda _: None)
        return d

    def register(self, keeper: "LeaseKeeper") -> None:
        """A keeper of this node starts."""
        self._keepers[keeper.queue_name] = keeper

    def unregister(self, keeper: "LeaseKeeper") -> None:
        """A keeper of this node stops."""
        if self._keepers.get(keeper.queue_name) is keeper:
            del self._keepers[keeper.queue_name]

    # -- policy -------------------------------------------------------------------------

    def nodes(self) -> int:
        """Live nodes, this one included."""
        live = self.live or {}
        return len(live) + (0 if self.node.id in live else 1)

    def share(self) -> int:
        """The most leases this node should hold now."""
        return fair_share(len(self._keepers), self.nodes())

    def holding(self) -> int:
        """Leases this node holds or is taking."""
        return sum(1 for keeper in self._keepers.values() if keeper.occupies())

    def take_reason(self, keeper: "LeaseKeeper", free_for: float) -> Optional[str]:
        """
        Whether ``keeper`` may try to take its lease, seen free for
        ``free_for`` seconds: L{SHARE}, L{GRACE} or None (not now).
        """
        if self.live is not None and self.holding() < self.share():
            return SHARE
        if free_for >= self.grace:
            return GRACE
        return None

    def may_take(self, keeper: "LeaseKeeper", free_for: float) -> bool:
        """Whether ``keeper`` may try to take its lease (L{take_reason})."""
        return self.take_reason(keeper, free_for) is not None

    def excess(self) -> List["LeaseKeeper"]:
        """
        The keepers this node should give up now (maybe none): beyond the
        share, not already draining, not taken by the grace rule, the last
        queue names first.
        """
        share = self.share()
        movable = sorted(
            (k for k in self._keepers.values() if k.occupies() and not k.draining() and not k.sticky),
            key=lambda k: k.queue_name,
        )
        extra = len(movable) - share
        if extra <= 0 or not self._others_have_room(share):
            return []
        return movable[-extra:]

    def _others_have_room(self, share: int) -> bool:
        return any(count < share for node_id, count in (self.live or {}).items() if node_id != self.node.id)

    # -- heartbeat -----------------------------------------------------------------------

    def _beat(self) -> None:
        if self._beating is not None:
            return
        d = self._leases.heartbeat(self.node, self.ttl_ms)
        self._beating = d

        def seen(live: Dict[str, int]) -> None:
            if self.live is None or set(live) != set(self.live):
                # New members may take what nobody took before.
                for keeper in self._keepers.values():
                    keeper.sticky = False
            self.live = dict(live)
            self.rebalance()

        def failed(failure: Failure) -> None:
            self._log.warn("Cannot record this node's heartbeat: {why}", why=failure.getErrorMessage())

        def done(_: object) -> None:
            self._beating = None

        d.addCallbacks(seen, failed)
        d.addBoth(done)

    def rebalance(self) -> None:
        """Act on the latest heartbeat: give up the excess, or take more."""
        for keeper in self.excess():
            keeper.relinquish()
        if self.holding() < self.share():
            for keeper in sorted(self._keepers.values(), key=lambda k: k.queue_name):
                if not keeper.occupies():
                    keeper.poke()
