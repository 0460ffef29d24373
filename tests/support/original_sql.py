"""
The SQL the original Fireworq (Go, github.com/fireworq/fireworq) runs, kept
as data so that tests can run it against this server's MySQL schema: a
database this server writes must still be served by the original (protocol
"Part B, second wave": added columns need defaults its statements ignore).

Each L{Statement} holds one statement's text as the original's source has
it (whitespace folded onto one line), the path of that source file in the
original's repository, and how the Go code completes it before running it
(the original appends C{LIMIT n} or C{(?, ?, ...)} at run time).  Table
names are the original's template fields written as C{{jobqueue}} and
C{{failure}}: L{Statement.render} fills them with quoted table names.

Placeholders are the Go driver's C{?}; L{Statement.pymysql} turns them into
PyMySQL's C{%s}.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import attr


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Statement:
    """
    One statement of the original.

    @ivar name: a short name (the original's template or function name).
    @ivar source: the file of the original's repository it comes from.
    @ivar text: the statement, table names as C{{jobqueue}}/C{{failure}}.
    @ivar suffix: what the Go code appends before running it, with C{{n}}
        for a count of placeholders (C{"({marks}) FOR UPDATE"}) or a limit.
    @ivar mysql_only: needs MySQL 8.0.19+ (the C{VALUES ... AS new} alias),
        which MariaDB does not parse.
    """

    name: str
    source: str
    text: str
    suffix: str = ""
    mysql_only: bool = False

    def render(self, jobqueue: str = "", failure: str = "", marks: int = 1, limit: int = 10) -> str:
        """The statement as the original runs it, in its Go driver's form."""
        sql = self.text.replace("{jobqueue}", jobqueue).replace("{failure}", failure)
        suffix = self.suffix.replace("{marks}", ",".join("?" * marks)).replace("{limit}", str(limit))
        return f"{sql} {suffix}".strip()

    def pymysql(self, jobqueue: str = "", failure: str = "", marks: int = 1, limit: int = 10) -> str:
        """L{render} with PyMySQL's C{%s} placeholders (and literal C{%} doubled)."""
        return self.render(jobqueue, failure, marks, limit).replace("%", "%%").replace("?", "%s")


_JQ_DATA = "data/jobqueue/mysql/"
_REPO_GO = "repository/mysql/queue.go"
_ROUTING_GO = "repository/mysql/routing.go"

#: The job and failure tables of one queue (data/jobqueue/mysql/schema/).
JOB_SCHEMA: Tuple[Statement, ...] = (
    Statement(
        "job_queue",
        _JQ_DATA + "schema/job_queue.sql",
        "CREATE TABLE IF NOT EXISTS `{jobqueue}` ( `job_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
        "`next_try` BIGINT UNSIGNED NOT NULL, `grabber_id` BIGINT UNSIGNED, "
        "`status` ENUM('claimed', 'grabbed') NOT NULL DEFAULT 'claimed', `created_at` BIGINT UNSIGNED NOT NULL, "
        "`retry_count` INT UNSIGNED NOT NULL DEFAULT 0, `retry_delay` INT UNSIGNED NOT NULL DEFAULT 0, "
        "`fail_count` INT UNSIGNED NOT NULL DEFAULT 0, `category` VARCHAR(255) NOT NULL, `url` BLOB, "
        "`payload` MEDIUMBLOB, `timeout` INT UNSIGNED, PRIMARY KEY (`job_id`), KEY `grab` (`status`, `next_try`) "
        ") ENGINE=InnoDB DEFAULT CHARSET=binary",
    ),
    Statement(
        "job_failure",
        _JQ_DATA + "schema/job_failure.sql",
        "CREATE TABLE IF NOT EXISTS `{failure}` ( `failure_id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
        "`job_id` BIGINT UNSIGNED NOT NULL, `category` VARCHAR(255) NOT NULL, `url` BLOB, `payload` MEDIUMBLOB, "
        "`result` MEDIUMBLOB, `fail_count` INT UNSIGNED NOT NULL, `failed_at` BIGINT UNSIGNED NOT NULL, "
        "`created_at` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`failure_id`), KEY `creation_order` (`created_at`) "
        ") ENGINE=InnoDB DEFAULT CHARSET=binary",
    ),
)

#: The definition tables (data/repository/mysql/schema/).
REPOSITORY_SCHEMA: Tuple[Statement, ...] = (
    Statement(
        "queue",
        "data/repository/mysql/schema/queue.sql",
        "CREATE TABLE IF NOT EXISTS `queue` ( `name` VARCHAR(255) NOT NULL, "
        "`polling_interval` INT UNSIGNED NOT NULL, `max_workers` INT UNSIGNED NOT NULL, PRIMARY KEY (`name`) "
        ") ENGINE=InnoDB DEFAULT CHARSET=binary",
    ),
    Statement(
        "queue_throttle",
        "data/repository/mysql/schema/queue_throttle.sql",
        "CREATE TABLE IF NOT EXISTS `queue_throttle` ( `name` VARCHAR(255) NOT NULL, "
        "`max_dispatches_per_second` FLOAT UNSIGNED NOT NULL, `max_burst_size` INT UNSIGNED NOT NULL, "
        "PRIMARY KEY (`name`) ) ENGINE=InnoDB DEFAULT CHARSET=binary",
    ),
    Statement(
        "routing",
        "data/repository/mysql/schema/routing.sql",
        "CREATE TABLE IF NOT EXISTS `routing` ( `job_category` VARCHAR(255) NOT NULL, "
        "`queue_name` VARCHAR(255) NOT NULL, PRIMARY KEY (`job_category`), "
        "UNIQUE KEY `job_queue` (`job_category`, `queue_name`) ) ENGINE=InnoDB DEFAULT CHARSET=binary",
    ),
    Statement(
        "config_revision",
        "data/repository/mysql/schema/config_revision.sql",
        "CREATE TABLE IF NOT EXISTS `config_revision` ( `name` VARCHAR(255) NOT NULL, "
        "`revision` BIGINT UNSIGNED NOT NULL, PRIMARY KEY (`name`) ) ENGINE=InnoDB DEFAULT CHARSET=binary",
    ),
)

_NOW = "FLOOR(UNIX_TIMESTAMP(CURRENT_TIME(3)) * 1000)"

#: The job queue's statements (data/jobqueue/mysql/query/, completed as
#: jobqueue/mysql/jobqueue.go, inspector.go and failure_log.go do).
JOB_QUERIES: Dict[str, Statement] = {
    s.name: s
    for s in (
        Statement(
            "insert_job",
            _JQ_DATA + "query/insert_job.sql",
            "INSERT INTO `{jobqueue}` (next_try, created_at, retry_count, retry_delay, fail_count, category, "
            f"url, payload, timeout) VALUES ({_NOW} + ?, {_NOW}, ?, ?, ?, ?, ?, ?, ?)",
        ),
        Statement(
            "grab_jobs",
            _JQ_DATA + "query/grab_jobs.sql",
            f"SELECT job_id FROM `{{jobqueue}}` WHERE status = 'claimed' AND next_try <= {_NOW} "
            "ORDER BY next_try ASC LIMIT",
            suffix="{limit}",
        ),
        Statement(
            "grabbed_jobs",
            _JQ_DATA + "query/grabbed_jobs.sql",
            "SELECT job_id, category, url, payload, next_try, status, created_at, retry_count, retry_delay, "
            "fail_count, timeout FROM `{jobqueue}` WHERE status = ? AND job_id IN",
            suffix="({marks}) FOR UPDATE",
        ),
        Statement(
            "launch_jobs",
            _JQ_DATA + "query/launch_jobs.sql",
            "UPDATE `{jobqueue}` SET status = 'grabbed', grabber_id = CONNECTION_ID() WHERE job_id IN",
            suffix="({marks})",
        ),
        Statement(
            "update_job",
            _JQ_DATA + "query/update_job.sql",
            "UPDATE `{jobqueue}` SET grabber_id = NULL, status = 'claimed', "
            f"next_try = {_NOW} + ?, retry_count = ?, fail_count = ? WHERE job_id = ?",
        ),
        Statement("delete_job", _JQ_DATA + "query/delete_job.sql", "DELETE FROM `{jobqueue}` WHERE job_id = ?"),
        Statement(
            "orphan_jobs",
            _JQ_DATA + "query/orphan_jobs.sql",
            "SELECT job_id FROM `{jobqueue}` WHERE status = 'grabbed' AND grabber_id != CONNECTION_ID() LIMIT 1000",
        ),
        Statement(
            "recover_jobs",
            _JQ_DATA + "query/recover_jobs.sql",
            "UPDATE `{jobqueue}` USE INDEX (PRIMARY) SET status = 'claimed', grabber_id = NULL "
            "WHERE status = 'grabbed' AND grabber_id != CONNECTION_ID() AND job_id IN",
            suffix="({marks})",
        ),
        Statement(
            "inspect_job",
            _JQ_DATA + "query/inspect_job.sql",
            "SELECT job_id, category, url, payload, next_try, status, created_at, retry_count, retry_delay, "
            "fail_count, timeout FROM `{jobqueue}` WHERE job_id = ?",
        ),
        Statement(
            "inspect_jobs",
            _JQ_DATA + "query/inspect_jobs.sql",
            "SELECT job_id FROM `{jobqueue}` WHERE status = ? AND next_try > ? AND next_try <= ? AND job_id <= ? "
            "ORDER BY next_try DESC, job_id DESC LIMIT",
            suffix="{limit}",
        ),
        Statement(
            "inspect_jobs_asc",
            _JQ_DATA + "query/inspect_jobs_asc.sql",
            "SELECT job_id FROM `{jobqueue}` WHERE status = ? AND next_try >= ? AND next_try < ? AND job_id >= ? "
            "ORDER BY next_try ASC, job_id ASC LIMIT",
            suffix="{limit}",
        ),
        Statement(
            "insert_failed_job",
            _JQ_DATA + "query/insert_failed_job.sql",
            "INSERT INTO `{failure}` (job_id, category, url, payload, result, fail_count, failed_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ),
        Statement(
            "delete_failed_job",
            _JQ_DATA + "query/delete_failed_job.sql",
            "DELETE FROM `{failure}` WHERE failure_id = ?",
        ),
        Statement(
            "failed_job",
            _JQ_DATA + "query/failed_job.sql",
            "SELECT failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at "
            "FROM `{failure}` WHERE failure_id = ?",
        ),
        Statement(
            "failed_jobs",
            _JQ_DATA + "query/failed_jobs.sql",
            "SELECT failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at "
            "FROM `{failure}` WHERE created_at <= ? AND (created_at != ? OR failure_id <= ?) "
            "ORDER BY created_at DESC, failure_id DESC LIMIT",
            suffix="{limit}",
        ),
        Statement(
            "recently_failed_jobs",
            _JQ_DATA + "query/recently_failed_jobs.sql",
            "SELECT failure_id, job_id, category, url, payload, result, fail_count, failed_at, created_at "
            "FROM `{failure}` WHERE ? = ? AND failure_id <= ? ORDER BY failure_id DESC LIMIT",
            suffix="{limit}",
        ),
        Statement(
            "node",
            "jobqueue/mysql/jobqueue.go (Node)",
            "SELECT ID, HOST FROM information_schema.processlist WHERE ID = CONNECTION_ID()",
        ),
    )
}

#: The definitions' statements (repository/mysql/queue.go, routing.go).  The
#: upserts exist in two forms: C{VALUES(col)} in older releases, the
#: C{VALUES (...) AS new} alias (MySQL 8.0.19+ only) in newer ones.
REPOSITORY_QUERIES: Dict[str, Statement] = {
    s.name: s
    for s in (
        Statement(
            "queue_add",
            _REPO_GO + " (Add, older releases)",
            "INSERT INTO queue (name, polling_interval, max_workers) VALUES ( ?, ?, ? ) ON DUPLICATE KEY UPDATE "
            "polling_interval = VALUES(polling_interval), max_workers = VALUES(max_workers)",
        ),
        Statement(
            "queue_throttle_add",
            _REPO_GO + " (Add, older releases)",
            "INSERT INTO queue_throttle (name, max_dispatches_per_second, max_burst_size) VALUES ( ?, ?, ? ) "
            "ON DUPLICATE KEY UPDATE max_dispatches_per_second = VALUES(max_dispatches_per_second), "
            "max_burst_size = VALUES(max_burst_size)",
        ),
        Statement(
            "queue_add_alias",
            _REPO_GO + " (Add)",
            "INSERT INTO queue (name, polling_interval, max_workers) VALUES ( ?, ?, ? ) AS new "
            "ON DUPLICATE KEY UPDATE polling_interval = new.polling_interval, max_workers = new.max_workers",
            mysql_only=True,
        ),
        Statement(
            "queue_throttle_add_alias",
            _REPO_GO + " (Add)",
            "INSERT INTO queue_throttle (name, max_dispatches_per_second, max_burst_size) VALUES ( ?, ?, ? ) AS new "
            "ON DUPLICATE KEY UPDATE max_dispatches_per_second = new.max_dispatches_per_second, "
            "max_burst_size = new.max_burst_size",
            mysql_only=True,
        ),
        Statement(
            "queue_find_all",
            _REPO_GO + " (FindAll)",
            "SELECT name, polling_interval, max_workers FROM queue ORDER BY name ASC",
        ),
        Statement(
            "queue_find",
            _REPO_GO + " (FindByName)",
            "SELECT name, polling_interval, max_workers FROM queue WHERE name = ?",
        ),
        Statement(
            "queue_throttles",
            _REPO_GO + " (findQueueThrottles)",
            "SELECT name, max_dispatches_per_second, max_burst_size FROM queue_throttle WHERE name IN",
            suffix="({marks})",
        ),
        Statement("queue_delete", _REPO_GO + " (DeleteByName)", "DELETE FROM queue WHERE name = ?"),
        Statement("queue_throttle_delete", _REPO_GO + " (DeleteByName)", "DELETE FROM queue_throttle WHERE name = ?"),
        Statement(
            "queue_revision",
            _REPO_GO + " (Revision)",
            "SELECT revision FROM config_revision WHERE name = 'queue_definition'",
        ),
        Statement(
            "queue_revision_bump",
            _REPO_GO + " (updateRevision)",
            "INSERT INTO config_revision (name, revision) VALUES ('queue_definition', 1) "
            "ON DUPLICATE KEY UPDATE revision = revision + 1",
        ),
        Statement("routing_queue_exists", _ROUTING_GO + " (Add)", "SELECT 1 FROM queue WHERE name = ?"),
        Statement(
            "routing_add",
            _ROUTING_GO + " (Add, older releases)",
            "INSERT INTO routing (job_category, queue_name) VALUES ( ?, ? ) "
            "ON DUPLICATE KEY UPDATE queue_name = VALUES(queue_name)",
        ),
        Statement(
            "routing_add_alias",
            _ROUTING_GO + " (Add)",
            "INSERT INTO routing (job_category, queue_name) VALUES ( ?, ? ) AS new "
            "ON DUPLICATE KEY UPDATE queue_name = new.queue_name",
            mysql_only=True,
        ),
        Statement(
            "routing_find_all",
            _ROUTING_GO + " (FindAll)",
            "SELECT queue_name, job_category FROM routing ORDER BY queue_name ASC",
        ),
        Statement("routing_delete", _ROUTING_GO + " (DeleteByJobCategory)", "DELETE FROM routing WHERE job_category = ?"),
        Statement(
            "routing_revision",
            _ROUTING_GO + " (Revision)",
            "SELECT revision FROM config_revision WHERE name = 'routing'",
        ),
        Statement(
            "routing_revision_bump",
            _ROUTING_GO + " (updateRevision)",
            "INSERT INTO config_revision (name, revision) VALUES ('routing', 1) "
            "ON DUPLICATE KEY UPDATE revision = revision + 1",
        ),
    )
}

#: The active-node lock (jobqueue/mysql/activator.go): a queue's lock name
#: is C{fireworq_jq(<queue name>)}.
LOCK_QUERIES: Dict[str, Statement] = {
    s.name: s
    for s in (
        Statement("has_lock", "jobqueue/mysql/activator.go (hasLock)", "SELECT IS_USED_LOCK(?) = CONNECTION_ID()"),
        Statement("get_lock", "jobqueue/mysql/activator.go (getLock)", "SELECT GET_LOCK(?, ?)"),
    )
}


def all_statements() -> List[Statement]:
    """Every statement above, schema first."""
    return [
        *JOB_SCHEMA,
        *REPOSITORY_SCHEMA,
        *JOB_QUERIES.values(),
        *REPOSITORY_QUERIES.values(),
        *LOCK_QUERIES.values(),
    ]


def columns_of(statement: Statement) -> Sequence[str]:
    """The column list of an C{INSERT INTO t (a, b, ...)} statement."""
    text = statement.text
    start = text.index("(", text.index("INSERT INTO"))
    return [c.strip() for c in text[start + 1 : text.index(")", start)].split(",")]
