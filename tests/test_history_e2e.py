"""
Job history (protocol B8) with real processes: a ``twistd fireworq``
server (sqlite, and MySQL on a throwaway MariaDB), a real HTTP worker.

A queue with a retention keeps a completed job, a job retried then
completed, a permanently failed job, a job that ran out of retries and an
expired job, each with the right state, attempts and result; the failure
log says why each failed; the kept jobs survive a restart; one runs again;
the lease holder deletes them once their retention ended.  A queue without
retention answers in the Part A shape.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from twisted.internet.defer import gatherResults, inlineCallbacks

from tests.support.cases import ServerTestCase
from tests.support.mariadb import database_for
from tests.support.polling import wait_until

#: Seconds the test queue keeps finished jobs: long enough for a restart.
RETENTION = 15

FINISHED = {"completed", "failed", "expired", "canceled"}


class HistoryE2EMixin:
    """The scenario; subclasses start the server on their store."""

    def start(self, **settings: Any) -> Any:
        raise NotImplementedError

    @inlineCallbacks
    def finished(self, server: Any, job_id: int, timeout: float = 30.0) -> Any:
        """Fire with the job's answer once it is finished."""
        seen: Dict[str, Any] = {}

        def done() -> Any:
            def check(answer: Any) -> bool:
                seen["last"] = answer
                return answer[0] == 200 and answer[1].get("state") in FINISHED

            return server.call("GET", f"/queue/hist/job/{job_id}").addCallback(check)

        yield wait_until(done, timeout, message=lambda: f"job {job_id} to finish (last answer {seen.get('last')})")
        return seen["last"][1]

    @inlineCallbacks
    def test_history(self):
        server = yield self.start()
        code, definition = yield server.call(
            "PUT", "/queue/hist", {"max_workers": 4, "polling_interval": 50, "retention": RETENTION})
        self.assertEqual((code, definition.get("retention")), (200, RETENTION), definition)
        code, _ = yield server.call("PUT", "/routing/hist", {"queue_name": "hist"})
        self.assertEqual(code, 200)
        url = self.worker.url
        pushes = {
            "completed": {"url": url("/success"), "name": "report-1", "tags": {"team": "a"}},
            "retried": {"url": url("/flaky/1"), "max_retries": 2, "name": "report-2", "tags": {"team": "b"}},
            "permanent": {"url": url("/permanent"), "max_retries": 3},
            "exhausted": {"url": url("/failure"), "max_retries": 1},
            # The retry would start after the deadline: the job expires.
            "expired": {"url": url("/failure"), "max_retries": 5, "retry_delay": 5, "deadline": 2},
        }
        ids: Dict[str, int] = {}
        for key, body in pushes.items():
            code, answer = yield server.call("POST", "/job/hist", body)
            self.assertEqual(code, 200, answer)
            ids[key] = answer["id"]
        jobs = {}
        for key, job_id in ids.items():
            jobs[key] = yield self.finished(server, job_id)

        completed = jobs["completed"]
        self.assertEqual((completed["state"], completed["attempts"], completed["status"]), ("completed", 1, "finished"))
        result = completed["result"]
        self.assertEqual((result["status"], result["code"], result["message"]), ("success", 200, "done"))
        self.assertEqual(json.loads(result["output"]), {"status": "success", "message": "done"})
        self.assertNotIn("output_truncated", result)
        self.assertGreaterEqual(result["elapsed"], 0)
        self.assertLessEqual(result["started_at"], result["finished_at"])
        self.assertEqual((completed["name"], completed["tags"]), ("report-1", {"team": "a"}))

        retried = jobs["retried"]
        self.assertEqual((retried["state"], retried["attempts"], retried["fail_count"]), ("completed", 2, 1))
        self.assertEqual(retried["result"]["status"], "success")

        permanent = jobs["permanent"]
        self.assertEqual((permanent["state"], permanent["attempts"]), ("failed", 1))
        self.assertEqual((permanent["result"]["status"], permanent["result"]["code"]), ("permanent-failure", 200))
        self.assertIn("never again", permanent["result"]["output"])

        exhausted = jobs["exhausted"]
        self.assertEqual((exhausted["state"], exhausted["attempts"], exhausted["result"]["status"]),
                         ("failed", 2, "failure"))

        expired = jobs["expired"]
        self.assertEqual((expired["state"], expired["attempts"]), ("expired", 1))
        self.assertEqual((expired["result"]["status"], expired["result"]["code"]), ("expired", 0))

        # The failure log keeps its shape and says why each job failed.
        code, log = yield server.call("GET", "/queue/hist/failed")
        self.assertEqual(code, 200)
        reasons = {entry["job_id"]: entry["reason"] for entry in log["failed_jobs"]}
        self.assertEqual(reasons, {
            ids["permanent"]: "permanent-failure",
            ids["exhausted"]: "retries-exhausted",
            ids["expired"]: "expired",
        })

        # /completed: newest first, filters by name and tag.
        code, page = yield server.call("GET", "/queue/hist/completed")
        self.assertEqual(code, 200)
        listed = [job["id"] for job in page["jobs"]]
        self.assertEqual(sorted(listed), sorted([ids["completed"], ids["retried"]]))
        finished_at = [job["result"]["finished_at"] for job in page["jobs"]]
        self.assertEqual(finished_at, sorted(finished_at, reverse=True))
        code, page = yield server.call("GET", "/queue/hist/completed?name=report-*&tag=team:b")
        self.assertEqual([job["id"] for job in page["jobs"]], [ids["retried"]])
        code, page = yield server.call("GET", "/queue/hist/completed?name=report-1")
        self.assertEqual([job["id"] for job in page["jobs"]], [ids["completed"]])
        code, error = yield server.call("GET", "/queue/hist/completed?tag=nocolon")
        self.assertEqual(code, 400, error)
        self.assertIn("tag", error["message"])

        # A restart keeps them.
        yield server.stop()
        yield server.start()
        code, again = yield server.call("GET", f"/queue/hist/job/{ids['completed']}")
        self.assertEqual((code, again["state"], again["result"]["output"]), (200, "completed", result["output"]))

        # Run again: a new job, the kept one stays.
        delivered = len(self.worker.deliveries)
        code, pushed = yield server.call("POST", f"/queue/hist/job/{ids['completed']}/retry")
        self.assertEqual(code, 200, pushed)
        self.assertNotEqual(pushed["id"], ids["completed"])
        self.assertEqual((pushed["queue_name"], pushed["name"]), ("hist", "report-1"))
        yield self.delivered(delivered + 1)
        rerun = yield self.finished(server, pushed["id"])
        self.assertEqual(rerun["state"], "completed")
        code, _ = yield server.call("POST", "/queue/hist/job/999999/retry")
        self.assertEqual(code, 404)

        # Retention ends: the lease holder deletes them (within 10 s).
        first = min(ids.values())

        def gone() -> Any:
            calls = [server.call("GET", f"/queue/hist/job/{job_id}") for job_id in ids.values()]
            return gatherResults(calls).addCallback(lambda answers: all(a[0] == 404 for a in answers))

        yield wait_until(gone, RETENTION + 20, message=f"kept jobs from {first} on to be deleted")
        code, page = yield server.call("GET", "/queue/hist/completed")
        self.assertEqual([job["id"] for job in page["jobs"]], [pushed["id"]] if page["jobs"] else [])
        code, metrics = yield server.call("GET", "/metrics")
        self.assertIn('fireworq_jobs_kept_total{queue="hist",state="completed"}', metrics)
        self.assertRegex(metrics, r'fireworq_history_deleted_total\{queue="hist"\} [1-9]')

    @inlineCallbacks
    def test_push_answers(self):
        """
        B8: with retention every push answer shows state and attempts -- as
        stored, or the job's state now for a replayed idempotency key --
        and a retry of a job still in the queue is refused; without
        retention push answers keep the Part A shape.
        """
        server = yield self.start()
        yield server.call("PUT", "/queue/hist", {"polling_interval": 50, "retention": RETENTION})
        yield server.call("PUT", "/routing/hist", {"queue_name": "hist"})
        yield server.call("PUT", "/queue/plain", {"polling_interval": 50})
        yield server.call("PUT", "/routing/plain", {"queue_name": "plain"})
        url = self.worker.url("/success")
        code, plain = yield server.call("POST", "/jobs/plain", [{"url": url}, {"url": url, "run_after": 600}])
        self.assertEqual(code, 200, plain)
        for answer in plain:
            self.assertEqual(set(answer), {"id", "queue_name", "category", "url", "payload", "run_after",
                                           "max_retries", "retry_delay", "timeout"})
        code, later = yield server.call("POST", "/job/hist", {"url": url, "run_after": 600})
        self.assertEqual((code, later["state"], later["attempts"]), (200, "deferred", 0), later)
        code, batch = yield server.call("POST", "/jobs/hist", [{"url": url, "run_after": 600}, {"url": url}])
        self.assertEqual((batch[0]["state"], batch[0]["attempts"]), ("deferred", 0))
        self.assertIn((batch[1]["state"], batch[1]["attempts"]), [("waiting", 0), ("grabbed", 1)])
        code, first = yield server.call("POST", "/job/hist", {"url": url, "idempotency_key": "once"})
        self.assertIn(first["state"], ("waiting", "grabbed"))
        yield self.finished(server, first["id"])
        code, replay = yield server.call("POST", "/job/hist", {"url": url, "idempotency_key": "once"})
        self.assertEqual((code, replay["id"], replay["state"], replay["attempts"]), (200, first["id"], "completed", 1))
        code, error = yield server.call("POST", f"/queue/hist/job/{later['id']}/retry")
        self.assertEqual(code, 409, error)
        code, again = yield server.call("POST", f"/queue/hist/job/{first['id']}/retry")
        self.assertEqual(code, 200, again)
        self.assertIn((again["state"], again["attempts"]), [("waiting", 0), ("grabbed", 1)])

    @inlineCallbacks
    def test_part_a_shape_without_retention(self):
        server = yield self.start()
        code, definition = yield server.call("PUT", "/queue/plain", {"polling_interval": 50})
        self.assertNotIn("retention", definition)
        yield server.call("PUT", "/routing/plain", {"queue_name": "plain"})
        code, job = yield server.call("POST", "/job/plain", {"url": self.worker.url("/success"), "run_after": 600})
        self.assertEqual(code, 200)
        code, shown = yield server.call("GET", f"/queue/plain/job/{job['id']}")
        self.assertEqual(set(shown), {"id", "category", "url", "status", "created_at", "next_try", "timeout",
                                      "fail_count", "max_retries", "retry_delay"})
        code, failing = yield server.call("POST", "/job/plain", {"url": self.worker.url("/permanent")})
        yield wait_until(lambda: server.call("GET", "/queue/plain/failed").addCallback(
            lambda r: len(r[1]["failed_jobs"]) == 1), 20, message="the failure-log entry")
        code, log = yield server.call("GET", "/queue/plain/failed")
        self.assertEqual(set(log["failed_jobs"][0]), {"id", "job_id", "category", "url", "result", "fail_count",
                                                      "failed_at", "created_at"})
        # Completed and gone, as in the original.
        code, done = yield server.call("POST", "/job/plain", {"url": self.worker.url("/success")})
        yield wait_until(lambda: server.call("GET", f"/queue/plain/job/{done['id']}").addCallback(
            lambda r: r[0] == 404), 20, message="the completed job to be gone")


class SqliteHistoryE2ETests(HistoryE2EMixin, ServerTestCase):
    timeout = 180

    def start(self, **settings: Any) -> Any:
        return self.server(**settings)


class MySQLHistoryE2ETests(HistoryE2EMixin, ServerTestCase):
    driver = "mysql"
    timeout = 240

    def start(self, **settings: Any) -> Any:
        settings.setdefault("mysql_dsn", database_for(self, "hist").dsn)
        settings.setdefault("queue_default", "")
        return self.server(**settings)
