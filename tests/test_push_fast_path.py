"""
The fast paths of the push and grab of jobs without options (issues 12 and
18): they must store, answer and grab exactly what the general path does.

  - a Part A job's options are the one L{NO_OPTIONS} value, tested by
    identity first (L{JobOptions.is_empty});
  - a push to a queue without job history is answered without a Deferred
    (L{push_states} returns the answers themselves);
  - the MySQL store writes a Part A job's numbers as digits and its option
    columns as constants (L{MySQLPush._insert}): the same row as before;
  - a MySQL grab of a queue whose jobs have one priority is one statement
    (L{mysql_lone_grab_sql}) and falls back to the two steps as soon as
    another priority appears, so the order stays highest priority first.
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

import fireworq.store.mysql.grab as grab_module
from fireworq.joboptions.values import NO_DEFAULTS, NO_OPTIONS, JobOptions, QueueDefaults
from fireworq.model import Job, NewJob, PushEntry, QueueDefinition, Replay
from fireworq.server.stores import open_mysql
from fireworq.store.mysql.schema import job_table
from fireworq.web.history import push_states
from fireworq.web.jobs import PushedJobs, parse_job, respond
from tests.support import mariadb

QUEUE = "fast"


class OptionsIdentityTests(SynchronousTestCase):
    """L{JobOptions.is_empty} and L{QueueDefaults.is_empty}: identity first, equality still counts."""

    def test_job_options(self) -> None:
        self.assertTrue(NO_OPTIONS.is_empty)
        self.assertTrue(JobOptions().is_empty)  # an equal value that is not NO_OPTIONS
        self.assertFalse(JobOptions(priority=0).is_empty)
        self.assertFalse(JobOptions(name="n").is_empty)

    def test_queue_defaults(self) -> None:
        self.assertTrue(NO_DEFAULTS.is_empty)
        self.assertTrue(QueueDefaults().is_empty)
        self.assertFalse(QueueDefaults(timeout=5).is_empty)

    def test_part_a_push_has_no_options(self) -> None:
        job, _ = parse_job("c", {"url": "http://w/", "payload": {"a": 1}})
        self.assertIs(job.options, NO_OPTIONS)


class _Manager:
    clock = None

    def __init__(self, definition: QueueDefinition) -> None:
        self.definition = definition

    def defined(self, name: str) -> QueueDefinition:
        return self.definition


class _Config:
    job_lifetime = 0


class _Routes:
    def __init__(self, definition: QueueDefinition, inspection: Any = None) -> None:
        self.manager = _Manager(definition)
        self.config = _Config()
        self.inspection = inspection


class _Request:
    def __init__(self) -> None:
        self.headers: dict = {}

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value


def _stored(job: NewJob, job_id: int = 1) -> Job:
    return job.stored(job_id, 1_000_000)


class PushAnswerTests(SynchronousTestCase):
    """The answer of a push without a Deferred, and the same answer through one."""

    def setUp(self) -> None:
        self.job, echo = parse_job("c", {"url": "http://w/", "payload": "p", "run_after": 3})
        self.pushed = PushedJobs([(self.job, echo)])

    def test_no_history_no_deferred(self) -> None:
        routes = _Routes(QueueDefinition(name="q", polling_interval=200, max_workers=1))
        out, _ = self.pushed.answers("q", [_stored(self.job)])
        shown = push_states(routes, "q", out, [_stored(self.job)])
        self.assertIs(shown, out)
        body = respond(_Request(), shown, single=True)
        self.assertEqual(
            body,
            b'{"id":1,"queue_name":"q","category":"c","url":"http://w/","payload":"p","run_after":3,'
            b'"max_retries":0,"retry_delay":0,"timeout":0}',
        )

    def test_deferred_answers_alike(self) -> None:
        out, _ = self.pushed.answers("q", [_stored(self.job)])
        direct = respond(_Request(), out, single=False)
        later = respond(_Request(), succeed(out), single=False)
        self.assertIsInstance(later, Deferred)
        self.assertEqual(self.successResultOf(later), direct)

    def test_replay_looked_up(self) -> None:
        """A replayed key of a queue that keeps history still answers its job's state (a Deferred)."""

        class Inspection:
            def find_job(self, queue_name: str, job_id: int) -> Deferred:
                return succeed(_stored(NewJob(category="c", url="http://w/"), job_id))

        definition = QueueDefinition(
            name="q", polling_interval=200, max_workers=1, defaults=QueueDefaults(retention=60)
        )
        routes = _Routes(definition, Inspection())
        replay = Replay(job_id=7, answer='{"category":"c"}')
        out, replays = self.pushed.answers("q", [replay])
        self.assertEqual(replays, 1)
        shown = push_states(routes, "q", out, [replay])
        self.assertIsInstance(shown, Deferred)
        answers = self.successResultOf(shown)
        self.assertEqual((answers[0]["id"], answers[0]["state"]), (7, "waiting"))

    def test_defaults_skip_given_fields(self) -> None:
        """The queue's defaults fill what the push left out (read from the pushed body when needed)."""
        job, echo = parse_job("c", {"url": "http://w/", "timeout": 9})
        definition = QueueDefinition(
            name="q", polling_interval=200, max_workers=1, defaults=QueueDefaults(timeout=30, max_retries=4)
        )
        [merged], answers = PushedJobs([(job, echo)]).finish(definition, [job])
        self.assertEqual((merged.timeout, merged.max_retries), (9, 4))
        self.assertIsNone(answers)


class MySQLFastPathTests(TestCase):
    """The MySQL rows of Part A jobs and the one-statement grab, on MariaDB."""

    timeout = 120

    async def setUp(self) -> None:
        server = mariadb.shared_server()
        self.db = server.fresh_database("fwqfast")
        self.addCleanup(self.db.drop)
        self.store, repository, leases = open_mysql(server.dsn(self.db.name), None, reactor, fence_grabs=False)
        self.addCleanup(leases.stop)
        self.addCleanup(repository.stop)
        self.addCleanup(self.store.stop)
        await self.store.start()
        await self.store.prepare_queue(QUEUE)

    def rows(self) -> List[tuple]:
        def work(cursor: Any) -> List[tuple]:
            cursor.execute(
                "SELECT job_id, next_try, created_at, retry_count, retry_delay, fail_count, category, url, "
                "payload, timeout, status, grabber_id, attempts, priority, deadline_at, options "
                f"FROM {job_table(QUEUE)} ORDER BY job_id"
            )
            return [tuple(row) for row in cursor.fetchall()]

        return self.store._run([QUEUE], work, idempotent=True, what="test rows")

    async def test_rows(self) -> None:
        """A Part A job (claimed or grabbed) and a job with options: every column as the general path wrote it."""
        now = 1_700_000_000_000
        part_a = NewJob(category="c", url="http://w/", payload="it's \\ 'quoted'", run_after=5,
                        max_retries=3, retry_delay=2, timeout=7)
        optioned = NewJob(category="c", url="http://w/o", payload="{}",
                          options=JobOptions(priority=-3, deadline=60, name="n"))

        def work(cursor: Any) -> int:
            return self.store._insert(cursor, QUEUE, [(part_a, None), (part_a, 42), (optioned, None)], now)

        first = await self.store._run([QUEUE], work, idempotent=False, what="test insert")
        rows = await self.rows()

        def text(value: Any) -> Any:
            return value.decode("utf-8") if isinstance(value, bytes) else value

        self.assertEqual(
            [tuple(text(v) for v in row) for row in rows],
            [
                (first, now + 5000, now, 3, 2, 0, "c", "http://w/", "it's \\ 'quoted'", 7, "claimed", None, 0, 0, None, None),
                (first + 1, now + 5000, now, 3, 2, 0, "c", "http://w/", "it's \\ 'quoted'", 7, "grabbed", 42, 1, 0, None, None),
                (first + 2, now, now, 0, 0, 0, "c", "http://w/o", "{}", 0, "claimed", None, 0, -3, now + 60000,
                 '{"name":"n","priority":-3,"deadline":60}'),
            ],
        )

    async def test_pushed_jobs_read_back(self) -> None:
        """Through push(): the stored jobs answered equal the jobs grabbed back."""
        entries = [PushEntry(QUEUE, NewJob(category="c", url="http://w/", payload=str(i))) for i in range(3)]
        stored = await self.store.push(entries)
        grabbed = await self.store.grab(QUEUE, 10, 5)
        self.assertEqual([job.id for job in grabbed], [job.id for job in stored])
        self.assertEqual([job.payload for job in grabbed], ["0", "1", "2"])
        self.assertTrue(all(job.options is NO_OPTIONS for job in grabbed))

    async def test_grab_in_one_statement_until_another_priority(self) -> None:
        steps: List[str] = []
        original = grab_module.mysql_priorities_sql

        def counted(table: str) -> str:
            steps.append(table)
            return original(table)

        self.patch(grab_module, "mysql_priorities_sql", counted)

        def push(priority: Any, count: int) -> Deferred:
            options = NO_OPTIONS if priority is None else JobOptions(priority=priority)
            return self.store.push(
                [PushEntry(QUEUE, NewJob(category="c", url="http://w/", options=options)) for _ in range(count)]
            )

        plain = await push(None, 4)
        # The first grab of the queue takes the two steps and learns its one priority.
        first = await self.store.grab(QUEUE, 1, 5)
        self.assertEqual(([j.id for j in first], len(steps)), ([plain[0].id], 1))
        self.assertEqual(self.store._lone_priority, {QUEUE: 0})
        # Then one statement a grab.
        second = await self.store.grab(QUEUE, 1, 5)
        self.assertEqual(([j.id for j in second], len(steps)), ([plain[1].id], 1))
        # A job of a higher priority: the flag sends the grab back to the steps, and it comes first.
        [high] = await push(5, 1)
        third = await self.store.grab(QUEUE, 2, 5)
        self.assertEqual([j.id for j in third], [high.id, plain[2].id])
        self.assertEqual(len(steps), 2)
        self.assertEqual(self.store._lone_priority, {})
        # Priority 0 alone again: learnt again by the steps, then one statement.
        fourth = await self.store.grab(QUEUE, 5, 5)
        self.assertEqual(([j.id for j in fourth], len(steps)), ([plain[3].id], 3))
        self.assertEqual(self.store._lone_priority, {QUEUE: 0})
        nothing = await self.store.grab(QUEUE, 5, 5)
        # Nothing due: the one statement finds no row, so the steps make sure.
        self.assertEqual((nothing, len(steps)), ([], 4))
        self.assertEqual(self.store._lone_priority, {})
