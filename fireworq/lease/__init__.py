"""
The lease: which node may dispatch each queue, in one package.

  - L{interface}: L{IQueueLease} (what a dispatcher sees), L{ILeaseStore}
    (lease rows), L{LeaseGrant}, L{LeaseListener};
  - L{sole}: L{SoleLease}, the lease of a single-node store (always ours);
  - L{keeper}: L{LeaseKeeper}, one queue's lease row kept by this node
    (MySQL), with a monotonic deadline that fences grabs and deliveries;
  - L{balancer}: L{LeaseBalancer} and L{fair_share}: heartbeats and the
    spread of leases over the live nodes;
  - L{mysql}: L{MySQLLeaseStore}, the lease and node rows in MySQL.

The SQL of L{mysql} is loaded only when that module is imported (it needs
the MySQL pool), so single-node servers never import a MySQL driver.
"""

from fireworq.lease.balancer import LeaseBalancer, fair_share
from fireworq.lease.interface import (
    DEFAULT_TTL_MS,
    ILeaseStore,
    IQueueLease,
    LeaseGrant,
    LeaseListener,
)
from fireworq.lease.keeper import LeaseKeeper
from fireworq.lease.sole import SoleLease

__all__ = [
    "DEFAULT_TTL_MS",
    "ILeaseStore",
    "IQueueLease",
    "LeaseBalancer",
    "LeaseGrant",
    "LeaseKeeper",
    "LeaseListener",
    "SoleLease",
    "fair_share",
]
