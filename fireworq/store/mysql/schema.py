"""
Table names and DDL of the MySQL store.

The job and definition tables are the original Fireworq's (protocol A9),
with the same names, columns, types, keys and binary charset, created only
if missing, so that a database the original wrote is served as it is.  Our
own tables (leases, node heartbeats) sit beside them, and the job tables
have one column of ours at the end, ``attempts`` (L{ATTEMPTS_COLUMN}),
added to tables the original created when a queue is prepared.
"""

from __future__ import annotations

import hashlib
from typing import List, Tuple

from fireworq.names import storage_key
from fireworq.store.priority import MYSQL_GRAB_KEY, MYSQL_JOB_COLUMNS

#: MySQL's limit on the length of a table name.
IDENTIFIER_MAX = 64

#: The longest queue key that fits ``fireworq_jq_fail(<key>)`` in 64 chars.
KEY_MAX = IDENTIFIER_MAX - len("fireworq_jq_fail()")

#: Hex digits of the hash that ends a shortened key.
_HASH_DIGITS = 12


def table_key(queue_name: str) -> str:
    """
    The key of the queue's tables: the original's
    L{fireworq.names.storage_key} when it fits (up to L{KEY_MAX} = 46
    characters, which covers every queue the original could create), else
    its first 33 characters, ``_`` and 12 hex digits of its SHA-256 -- 46
    characters in all, still within ``[0-9a-z_]``.
    """
    key = storage_key(queue_name)
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_DIGITS]
    return f"{key[:KEY_MAX - _HASH_DIGITS - 1]}_{digest}"


def job_table(queue_name: str) -> str:
    """The quoted name of the queue's job table, ``fireworq_jq(<key>)``."""
    return f"`fireworq_jq({table_key(queue_name)})`"


def failure_table(queue_name: str) -> str:
    """The quoted name of the queue's failure log, ``fireworq_jq_fail(<key>)``."""
    return f"`fireworq_jq_fail({table_key(queue_name)})`"


#: Our column of the job tables (not the original's): the job's grabs, so
#: that ``X-Fireworq-Attempt`` counts a delivery cut short by a dying node.
#: It comes last with a default, so the original's statements (which name
#: their columns) ignore it; L{add_attempts_ddl} adds it to a table the
#: original created.
ATTEMPTS_COLUMN = "`attempts` INT UNSIGNED NOT NULL DEFAULT 0"


def add_attempts_ddl(queue_name: str) -> str:
    """The ALTER TABLE that gives an original job table L{ATTEMPTS_COLUMN}."""
    return f"ALTER TABLE {job_table(queue_name)} ADD COLUMN {ATTEMPTS_COLUMN}"


#: The job options columns of ours (B7, B9), each with a default or NULL-able
#: so that the original's INSERTs, which leave them out, still work; a table
#: the original created gets them (and the ``grab_priority`` index) when a
#: queue is prepared (L{fireworq.store.priority.mysql_add_columns_ddl}).
_B7_COLUMNS = ",\n  ".join(ddl for _, ddl in MYSQL_JOB_COLUMNS)


def queue_tables_ddl(queue_name: str) -> Tuple[str, str]:
    """CREATE TABLE IF NOT EXISTS statements of the queue's two tables."""
    jobs = f"""
CREATE TABLE IF NOT EXISTS {job_table(queue_name)} (
  `job_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `next_try` BIGINT UNSIGNED NOT NULL,
  `grabber_id` BIGINT UNSIGNED,
  `status` ENUM('claimed', 'grabbed') NOT NULL DEFAULT 'claimed',
  `created_at` BIGINT UNSIGNED NOT NULL,
  `retry_count` INT UNSIGNED NOT NULL DEFAULT 0,
  `retry_delay` INT UNSIGNED NOT NULL DEFAULT 0,
  `fail_count` INT UNSIGNED NOT NULL DEFAULT 0,
  `category` VARCHAR(255) NOT NULL,
  `url` BLOB,
  `payload` MEDIUMBLOB,
  `timeout` INT UNSIGNED,
  {ATTEMPTS_COLUMN},
  {_B7_COLUMNS},
  PRIMARY KEY (`job_id`),
  KEY `grab` (`status`, `next_try`),
  {MYSQL_GRAB_KEY[1]}
) ENGINE=InnoDB DEFAULT CHARSET=binary"""
    failures = f"""
CREATE TABLE IF NOT EXISTS {failure_table(queue_name)} (
  `failure_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `job_id` BIGINT UNSIGNED NOT NULL,
  `category` VARCHAR(255) NOT NULL,
  `url` BLOB,
  `payload` MEDIUMBLOB,
  `result` MEDIUMBLOB,
  `fail_count` INT UNSIGNED NOT NULL,
  `failed_at` BIGINT UNSIGNED NOT NULL,
  `created_at` BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (`failure_id`),
  KEY `creation_order` (`created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=binary"""
    return jobs, failures


#: The definition tables of the original (repository DSN).
REPOSITORY_DDL: List[str] = [
    """
CREATE TABLE IF NOT EXISTS `queue` (
  `name` VARCHAR(255) NOT NULL,
  `polling_interval` INT UNSIGNED NOT NULL,
  `max_workers` INT UNSIGNED NOT NULL,
  `job_defaults` BLOB NULL,
  `paused` TINYINT NOT NULL DEFAULT 0,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary""",
    """
CREATE TABLE IF NOT EXISTS `queue_throttle` (
  `name` VARCHAR(255) NOT NULL,
  `max_dispatches_per_second` FLOAT UNSIGNED NOT NULL,
  `max_burst_size` INT UNSIGNED NOT NULL,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary""",
    """
CREATE TABLE IF NOT EXISTS `routing` (
  `job_category` VARCHAR(255) NOT NULL,
  `queue_name` VARCHAR(255) NOT NULL,
  PRIMARY KEY (`job_category`),
  UNIQUE KEY `job_queue` (`job_category`, `queue_name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary""",
    """
CREATE TABLE IF NOT EXISTS `config_revision` (
  `name` VARCHAR(255) NOT NULL,
  `revision` BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=binary""",
]

#: Our own tables (queue DSN, beside the job tables): one lease row per
#: queue (B2) and one heartbeat row per live server process.
LEASE_DDL: List[str] = [
    """
CREATE TABLE IF NOT EXISTS `fireworq_lease` (
  `name` VARCHAR(255) NOT NULL,
  `holder` VARCHAR(255) NOT NULL DEFAULT '',
  `host` VARCHAR(255) NOT NULL DEFAULT '',
  `epoch` BIGINT UNSIGNED NOT NULL,
  `expires_at` BIGINT NOT NULL,
  `taken_at` BIGINT NOT NULL,
  PRIMARY KEY (`name`),
  KEY `holder` (`holder`, `expires_at`)
) ENGINE=InnoDB DEFAULT CHARSET=binary""",
    """
CREATE TABLE IF NOT EXISTS `fireworq_node` (
  `id` VARCHAR(255) NOT NULL,
  `host` VARCHAR(255) NOT NULL DEFAULT '',
  `expires_at` BIGINT NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=binary""",
]

#: The database clock, in milliseconds since the epoch.  NOW(3) is fixed for
#: the duration of one statement, so every use in a statement agrees.
NOW_MS = "CAST(FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)"
