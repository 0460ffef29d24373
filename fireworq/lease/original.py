"""
What this server knows of the original (Go) Fireworq's leader election,
for running beside it on one database during a migration.

The original elects the node that dispatches a queue with a MySQL user
lock, C{GET_LOCK('fireworq_jq(<queue>)', 10)} on a connection of its own,
and re-checks it every second with C{IS_USED_LOCK(name) = CONNECTION_ID()}
(jobqueue/mysql/activator.go in fireworq/fireworq).  It knows nothing of
our lease rows, so our nodes look at its lock instead: see
L{fireworq.lease.mysql.MySQLLeaseStore.original_lock_holder}.
"""

from __future__ import annotations

#: The longest user lock name MySQL (5.7 and later) and MariaDB accept, in
#: characters: the original cannot hold a lock of a longer name, so the
#: queues of such names need no check.
MAX_LOCK_NAME = 64

#: The errors of a lock name the server refuses: MySQL's
#: ER_USER_LOCK_WRONG_NAME and MariaDB's ER_TOO_LONG_IDENT.
WRONG_LOCK_NAME_ERRORS = frozenset({3057, 1059})


def original_lock_name(queue_name: str) -> str:
    """
    The name of the MySQL user lock by which the original Fireworq elects
    the node dispatching ``queue_name`` (C{activator.lockName()}).
    """
    return f"fireworq_jq({queue_name})"
