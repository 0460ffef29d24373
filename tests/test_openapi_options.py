"""
Real answers of the job options, queue control and schedules (protocol
"Part B, second wave": job options, queue control, schedules) against the
OpenAPI description, in process over the in-memory store, with the checks
of L{tests.test_openapi.ConformanceTests} (documented status code, content
type, and a body valid under the documented schema).  Also checks the
exact answer shapes the second wave's compatibility rules require.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Tuple

from twisted.trial.unittest import SynchronousTestCase

from fireworq.model import Result
from fireworq.schedules.memory import MemorySchedules
from fireworq.schedules.scheduler import Scheduler
from fireworq.web.schedules import make_job
from tests import test_openapi as base
from tests.support.stubapi import stub_request

#: RFC 3339 with milliseconds and an offset (the API's convention for times).
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")

PART_A_PUSH_KEYS = ["id", "queue_name", "category", "url", "payload", "run_after", "max_retries", "retry_delay", "timeout"]

ALL_OPTIONS = {
    "name": "daily report",
    "tags": {"team": "ops"},
    "headers": {"Authorization": "Bearer x"},
    "priority": 10,
    "retry_backoff": 2,
    "retry_max_delay": 600,
    "retry_jitter": True,
    "success": "2xx",
    "deadline": 3600,
    "idempotency_key": "report-1",
}


class OptionsConformanceTests(SynchronousTestCase):
    """Answers of the second wave's endpoints and fields conform to the description."""

    setUp = base.ConformanceTests.setUp
    operation = base.ConformanceTests.operation
    conforms = base.ConformanceTests.conforms
    answer = base.ConformanceTests.answer

    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None,
             headers: Optional[dict] = None) -> Tuple[int, Any]:
        """As L{ConformanceTests.call}, with request headers; keeps the last answer's headers."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response, content = stub_request(
            self, self.stub, self.clock, method, path, data, headers=headers or {}, allow_redirects=False
        )
        content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1")
        self.conforms(method, path, response.code, content_type, content)
        self.last_headers = response.headers
        return response.code, json.loads(content)

    def test_push_with_options(self) -> None:
        code, job = self.call("POST", "/job/c", {"url": "http://w/", **ALL_OPTIONS})
        self.assertEqual(code, 200)
        self.assertEqual(list(job), PART_A_PUSH_KEYS + list(ALL_OPTIONS))
        code, again = self.call("POST", "/job/c", {"url": "http://w/other"}, headers={"Idempotency-Key": "report-1"})
        self.assertEqual((code, again), (200, job))
        self.assertEqual(self.last_headers.getRawHeaders(b"idempotent-replayed"), [b"true"])
        code, batch = self.call("POST", "/jobs/c", [{"url": "http://w/", "priority": -3}, {"url": "http://w/"}])
        self.assertEqual(code, 200)
        self.assertEqual(batch[0]["priority"], -3)
        self.assertEqual(list(batch[1]), PART_A_PUSH_KEYS)
        self.assertEqual(self.call("POST", "/job/c", {"url": "http://w/", "priority": 101})[0], 400)
        self.assertEqual(self.call("POST", "/jobs/c", [{"url": "http://w/"}], headers={"Idempotency-Key": "k"})[0], 400)
        code, shown = self.call("GET", f"/queue/default/job/{job['id']}")
        self.assertEqual((code, shown["priority"], shown["tags"]), (200, 10, {"team": "ops"}))
        self.assertEqual(self.call("GET", "/queue/default/waiting")[0], 200)

    def test_queue_defaults_and_control(self) -> None:
        code, queue = self.call("PUT", "/queue/q", {"max_workers": 2, "priority": 3, "retry_backoff": 1.5,
                                                    "success": "2xx", "max_retries": 2, "retry_jitter": False})
        self.assertEqual(code, 200)
        self.assertEqual(queue, {"name": "q", "polling_interval": 200, "max_workers": 2,
                                 "max_retries": 2, "retry_backoff": 1.5, "priority": 3, "success": "2xx"})
        self.assertEqual(self.call("PUT", "/queue/q2", {"priority": 0, "success": "status"})[1],
                         {"name": "q2", "polling_interval": 200, "max_workers": 20})
        self.call("PUT", "/routing/r", {"queue_name": "q"})
        self.assertEqual(self.call("POST", "/queue/q/pause")[1]["paused"], True)
        code, job = self.call("POST", "/job/r", {"url": "http://w/"})
        self.assertEqual((job["max_retries"], job["priority"], job["success"]), (2, 3, "2xx"))
        stats = self.call("GET", "/queues/stats")[1]
        self.assertIs(stats["q"]["paused"], True)
        self.assertNotIn("paused", stats["default"])
        self.assertEqual(self.call("GET", "/queue/q")[1]["paused"], True)
        self.assertEqual(self.call("POST", "/queue/q/purge")[1], {"purged": 1})
        self.assertNotIn("paused", self.call("POST", "/queue/q/resume")[1])
        self.assertEqual(self.call("POST", "/queue/nowhere/purge")[0], 404)
        self.assertEqual(self.call("PUT", "/queue/q3", {"priority": "high"})[0], 400)

    def test_expired_job_in_the_failure_log(self) -> None:
        job = self.call("POST", "/job/c", {"url": "http://w/", "max_retries": 5, "retry_delay": 10, "deadline": 5})[1]
        self.clock.advance(0)
        self.answer(job["id"], Result("failure", 500, "boom"))
        code, page = self.call("GET", "/queue/default/failed")
        self.assertEqual(code, 200)
        [entry] = page["failed_jobs"]
        self.assertEqual((entry["result"]["status"], entry["result"]["code"]), ("expired", 0))
        self.assertEqual(entry["deadline"], 5)

    def test_schedules(self) -> None:
        scheduler = Scheduler(MemorySchedules(), self.manager, make_job, self.clock, wall=self.clock.seconds)
        # The API object is inside the stub's resource; reach it through the manager's routes.
        self._set_scheduler(scheduler)
        body = {"cron": "*/15 * * * *", "timezone": "Europe/Berlin", "category": "c", "url": "http://w/",
                "payload": {"k": 1}, "job_name": "quarterly", "tags": {"a": "b"}, "priority": 4, "catch_up": "last"}
        code, schedule = self.call("PUT", "/schedule/s1", body)
        self.assertEqual(code, 200)
        self.assertRegex(schedule["next_run_at"], RFC3339_MS)
        self.assertIsNone(schedule["last_run_at"])
        self.assertEqual(self.call("GET", "/schedule/s1")[1], schedule)
        self.assertEqual(self.call("GET", "/schedules")[1], [schedule])
        code, job = self.call("POST", "/schedule/s1/run")
        self.assertEqual((code, job["name"], job["priority"]), (200, "quarterly", 4))
        shown = self.call("GET", "/schedule/s1")[1]
        self.assertEqual(shown["last_job"], {"queue_name": "default", "id": job["id"]})
        self.assertIsNone(shown["last_run_at"])
        self.clock.advance(15 * 60)
        for _ in range(3):
            self.clock.advance(1)
        fired = self.call("GET", "/schedule/s1")[1]
        self.assertRegex(fired["last_run_at"], RFC3339_MS)
        self.assertEqual(self.call("PUT", "/schedule/s2", dict(body, enabled=False))[1]["next_run_at"], None)
        # A null job field is an absent one, as in a push: not shown.
        code, nulls = self.call("PUT", "/schedule/s4", dict(body, job_name=None, priority=None, payload=None))
        self.assertEqual(code, 200)
        self.assertEqual([k for k in ("job_name", "priority", "payload") if k in nulls], [])
        self.assertEqual(self.call("DELETE", "/schedule/s4")[0], 200)
        self.assertEqual(self.call("PUT", "/schedule/s3", dict(body, cron="@fortnightly"))[0], 400)
        for bad in ("", 5, "n" * 256):
            code, error = self.call("PUT", "/schedule/s3", dict(body, job_name=bad))
            self.assertEqual(code, 400)
            self.assertTrue(error["message"].startswith("field job_name "), error["message"])
        self.assertEqual(self.call("DELETE", "/schedule/s2")[0], 200)
        self.assertEqual(self.call("DELETE", "/schedule/s2")[0], 404)
        self.assertEqual(self.call("GET", "/schedule/s2")[0], 404)
        self.assertEqual(self.call("POST", "/schedule/s2/run")[0], 404)

    def _set_scheduler(self, scheduler: Scheduler) -> None:
        from fireworq.web.app import FireworqAPI
        from fireworq.inspection import Inspection
        from fireworq.config import load
        from treq.testing import StubTreq

        api = FireworqAPI(self.manager, Inspection(self.store, self.repository, self.manager),
                          load({"driver": "in-memory", "queue_default": "default"}, environ={}))
        api.scheduler = scheduler
        scheduler.startService()
        self.addCleanup(scheduler.stopService)
        self.stub = StubTreq(api.app.resource())
