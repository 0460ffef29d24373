"""
Idempotency keys of pushed jobs in MySQL (protocol B7): one table per
queue, ``fireworq_jq_idem(<key>)``, whose primary key is the idempotency
key, so that two pushes of one key -- from two nodes at the same moment --
never both store a job: the second one's INSERT waits for the first one's
transaction and then finds its row (a unique index, not a read-then-write).

The functions run inside the caller's push transaction on a DB-API cursor
(PyMySQL or mysqlclient, C{%s} placeholders), in this order:

  1. L{claim_keys}: free the given keys whose window ended, claim those not
     in use, and report for every key either that this transaction claimed
     it (C{None}) or the L{Replay} of the push that holds it;
  2. the caller inserts the jobs of the claimed keys;
  3. L{record_keys}: store each claimed key's job id and push answer.

The lease holder of the queue calls L{delete_expired} now and then.
L{Replay} is shared with the other stores (L{fireworq.store.idempotency}).  The
design and its reasons are in docs/storage.md ("Idempotency keys").
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from fireworq.store.idempotency import Replay
from fireworq.store.mysql.schema import NOW_MS, table_key

#: Characters of a key (fireworq.joboptions.values.IDEMPOTENCY_KEY_MAX) in bytes of UTF-8.
KEY_MAX_BYTES = 4 * 255

#: Rows one L{delete_expired} call deletes at most.
DELETE_BATCH = 1000


def idempotency_table(queue_name: str) -> str:
    """The quoted name of the queue's key table (as long as the failure log's name)."""
    return f"`fireworq_jq_idem({table_key(queue_name)})`"


def idempotency_ddl(queue_name: str) -> str:
    """CREATE TABLE IF NOT EXISTS of the queue's key table."""
    return f"""
CREATE TABLE IF NOT EXISTS {idempotency_table(queue_name)} (
  `idempotency_key` VARBINARY({KEY_MAX_BYTES}) NOT NULL,
  `job_id` BIGINT UNSIGNED NULL,
  `created_at` BIGINT UNSIGNED NOT NULL,
  `expires_at` BIGINT UNSIGNED NOT NULL,
  `answer` MEDIUMBLOB NULL,
  PRIMARY KEY (`idempotency_key`),
  KEY `expiry` (`expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=binary"""


def _ordered(keys: Sequence[str]) -> Tuple[bytes, ...]:
    """The distinct keys as stored (UTF-8), in index order: concurrent batches lock them in one order."""
    return tuple(sorted({key.encode("utf-8") for key in keys}))


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def claim_keys(
    cursor: Any, queue_name: str, keys: Sequence[str], window_ms: int, now: str = NOW_MS
) -> Dict[str, Optional[Replay]]:
    """
    Claim ``keys`` for the caller's transaction: each key maps to C{None}
    when this transaction now holds it (store its job, then
    L{record_keys}), or to the L{Replay} of the push that used it within
    the last ``window_ms``.  A key that another transaction is claiming
    makes this call wait until that transaction ends (then it is a replay,
    or ours if that transaction rolled back).

    @param now: SQL of the current time in ms (the database clock).
    """
    stored = _ordered(keys)
    if not stored:
        return {}
    table = idempotency_table(queue_name)
    marks = _marks(len(stored))
    cursor.execute(
        f"DELETE FROM {table} WHERE idempotency_key IN ({marks}) AND expires_at <= {now}", stored
    )
    rows = ", ".join([f"(%s, {now}, {now} + {int(window_ms)})"] * len(stored))
    cursor.execute(
        f"INSERT INTO {table} (idempotency_key, created_at, expires_at) VALUES {rows} "
        "ON DUPLICATE KEY UPDATE idempotency_key = idempotency_key",
        stored,
    )
    cursor.execute(
        f"SELECT idempotency_key, job_id, answer FROM {table} WHERE idempotency_key IN ({marks}) FOR UPDATE",
        stored,
    )
    found: Dict[bytes, Optional[Replay]] = {}
    for key, job_id, answer in cursor.fetchall():
        key = bytes(key)
        if job_id is None:
            found[key] = None
        else:
            text = bytes(answer).decode("utf-8") if answer is not None else "{}"
            found[key] = Replay(int(job_id), text)
    missing = [key for key in stored if key not in found]
    if missing:
        raise RuntimeError(f"idempotency keys not claimed: {missing!r}")
    return {key.decode("utf-8"): found[key] for key in stored}


def record_keys(cursor: Any, queue_name: str, records: Sequence[Tuple[str, int, str]]) -> None:
    """
    Store, for each key this transaction claimed, the id of the job it
    stored and its push answer (JSON text without C{"id"}).
    """
    if not records:
        return
    table = idempotency_table(queue_name)
    rows = ", ".join(["(%s, %s, 0, 0, %s)"] * len(records))
    args: list = []
    for key, job_id, answer in sorted(records, key=lambda r: r[0].encode("utf-8")):
        args += [key.encode("utf-8"), job_id, answer.encode("utf-8")]
    # Every row exists (claimed above): this only sets job_id and answer.
    cursor.execute(
        f"INSERT INTO {table} (idempotency_key, job_id, created_at, expires_at, answer) VALUES {rows} "
        "ON DUPLICATE KEY UPDATE job_id = VALUES(job_id), answer = VALUES(answer)",
        args,
    )


def delete_expired(cursor: Any, queue_name: str, now: str = NOW_MS, batch: int = DELETE_BATCH) -> int:
    """Delete up to ``batch`` keys whose window ended; return how many (call again while it is ``batch``)."""
    cursor.execute(
        f"DELETE FROM {idempotency_table(queue_name)} WHERE expires_at <= {now} "
        f"ORDER BY expires_at LIMIT {int(batch)}"
    )
    return int(cursor.rowcount)
