"""
The push side of the job options (protocol B7) through the HTTP API over
the in-memory store: options echoed and shown wherever a job is shown,
400s naming the field, idempotency keys (field and header, single and
batch pushes), queue job defaults; and the lease holder's cleanup of
expired keys (L{fireworq.dispatch.upkeep.KeyCleaner}).

The same store behaviour on sqlite and MySQL is the store contract
(tests/store_contract.py, JobOptionsContractMixin); real processes are in
tests/test_job_options_e2e.py.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq.dispatch.upkeep import KeyCleaner
from fireworq.joboptions.values import JobOptions
from fireworq.model import NewJob, PushEntry, Result
from fireworq.store.memory import MemoryJobStore
from tests.support.stubapi import stub_request
from tests.test_web import APITestCase

#: Every option, as a client pushes them.
OPTIONS = {
    "name": "nightly report",
    "tags": {"team": "ops", "env": "prod"},
    "headers": {"Authorization": "Bearer t", "X-Trace": "abc"},
    "priority": 7,
    "retry_backoff": 2,
    "retry_max_delay": 600,
    "retry_jitter": True,
    "success": "2xx",
    "deadline": 7200,
    "idempotency_key": "order-1",
}

PART_A_KEYS = ["id", "queue_name", "category", "url", "payload", "run_after", "max_retries", "retry_delay", "timeout"]


class OptionsAPITestCase(APITestCase):
    def request(
        self, method: str, path: str, body: Any = None, headers: Optional[Dict[bytes, list]] = None
    ) -> Tuple[int, Any, Any]:
        """(code, JSON body, response headers) of one request with extra ``headers``."""
        data = None if body is None else json.dumps(body).encode()
        response, content = stub_request(self, self.stub, self.clock, method, path, data, headers=headers or {})
        return response.code, json.loads(content), response.headers

    def replayed(self, headers: Any) -> Optional[list]:
        return headers.getRawHeaders(b"Idempotent-Replayed")

    def stored_ids(self, queue: str = "default") -> list:
        """The ids of every job the queue holds (grabbed ones too: pushes are dispatched at once)."""
        ids = []
        for state in ("grabbed", "waiting", "deferred"):
            ids += [job["id"] for job in self.call("GET", f"/queue/{queue}/{state}")[1]["jobs"]]
        return sorted(ids)


class PushOptionsTests(OptionsAPITestCase):
    def test_part_a_push_keeps_part_a_shape(self) -> None:
        code, body = self.call("POST", "/job/c", {"url": "http://w/x"})
        self.assertEqual(code, 200)
        self.assertEqual(list(body), PART_A_KEYS)
        code, job = self.call("GET", f"/queue/default/job/{body['id']}")
        self.assertEqual(set(job), {"id", "category", "url", "status", "created_at", "next_try", "timeout",
                                    "fail_count", "max_retries", "retry_delay"})

    def test_options_echoed_and_shown(self) -> None:
        code, body = self.call("POST", "/job/c", {"url": "http://w/x", "run_after": 60, **OPTIONS})
        self.assertEqual(code, 200, body)
        self.assertEqual(list(body), PART_A_KEYS + list(OPTIONS))
        self.assertEqual({k: body[k] for k in OPTIONS}, OPTIONS)
        code, job = self.call("GET", f"/queue/default/job/{body['id']}")
        self.assertEqual({k: job[k] for k in OPTIONS}, OPTIONS)
        code, listed = self.call("GET", "/queue/default/deferred")
        self.assertEqual({k: listed["jobs"][0][k] for k in OPTIONS}, OPTIONS)
        code, deleted = self.call("DELETE", f"/queue/default/job/{body['id']}")
        self.assertEqual(deleted["priority"], 7)

    def test_failure_log_shows_options(self) -> None:
        code, body = self.call("POST", "/job/c", {"url": "http://w/x", "name": "n", "priority": -3})
        # Delivered at once to the held worker: make it fail for good.
        self.deliverer.pending[body["id"]].callback(Result("permanent-failure", 500, "no"))
        for _ in range(3):
            self.clock.advance(1)
        code, failed = self.call("GET", "/queue/default/failed")
        [entry] = failed["failed_jobs"]
        self.assertEqual((entry["name"], entry["priority"]), ("n", -3))
        code, again = self.call("POST", f"/queue/default/failed/{entry['id']}/retry")
        self.assertEqual((code, again["name"], again["priority"]), (200, "n", -3))

    def test_bad_options_name_the_field(self) -> None:
        for body, words in [
            ({"priority": 101}, "field priority"),
            ({"priority": "high"}, "field priority"),
            ({"headers": {"Content-Type": "x"}}, "Content-Type"),
            ({"headers": {"X-Fireworq-Job-Id": "1"}}, "X-Fireworq-Job-Id"),
            ({"tags": {"a:b": "c"}}, "field tags"),
            ({"success": "3xx"}, "field success"),
            ({"run_after": 10, "deadline": 10}, "field deadline"),
            ({"retry_backoff": 11}, "field retry_backoff"),
            ({"idempotency_key": ""}, "field idempotency_key"),
            ({"name": "x" * 256}, "field name"),
        ]:
            code, answer = self.call("POST", "/job/c", {"url": "http://w/x", **body})
            self.assertEqual(code, 400, body)
            self.assertIn(words, answer["message"], body)
        code, answer = self.call("POST", "/jobs/c", [{"url": "http://w/x"}, {"url": "http://w/x", "priority": 200}])
        self.assertEqual(code, 400)
        self.assertIn("job [1]: field priority", json.dumps(answer))
        self.assertEqual(self.stored_ids(), [])


class IdempotencyTests(OptionsAPITestCase):
    def test_field_replays_the_first_answer(self) -> None:
        code, first, headers = self.request("POST", "/job/c", {"url": "http://w/1", "idempotency_key": "k", "payload": [1]})
        self.assertEqual(code, 200)
        self.assertIsNone(self.replayed(headers))
        code, again, headers = self.request("POST", "/job/c", {"url": "http://w/2", "idempotency_key": "k"})
        self.assertEqual((code, again), (200, first))
        self.assertEqual(self.replayed(headers), [b"true"])
        self.assertEqual(self.stored_ids(), [first["id"]])

    def test_replay_after_the_job_finished(self) -> None:
        code, first, _ = self.request("POST", "/job/c", {"url": "http://w/1", "idempotency_key": "k"})
        self.call("DELETE", f"/queue/default/job/{first['id']}")
        code, again, headers = self.request("POST", "/job/c", {"url": "http://w/1", "idempotency_key": "k"})
        self.assertEqual((code, again, self.replayed(headers)), (200, first, [b"true"]))

    def test_header(self) -> None:
        code, first, _ = self.request("POST", "/job/c", {"url": "http://w/1"}, {b"Idempotency-Key": [b"h1"]})
        self.assertEqual((code, first["idempotency_key"]), (200, "h1"))
        code, again, headers = self.request("POST", "/job/c", {"url": "http://w/1", "idempotency_key": "h1"},
                                            {b"Idempotency-Key": [b"h1"]})
        self.assertEqual((code, again, self.replayed(headers)), (200, first, [b"true"]))
        code, error, _ = self.request("POST", "/job/c", {"url": "http://w/1", "idempotency_key": "other"},
                                      {b"Idempotency-Key": [b"h1"]})
        self.assertEqual(code, 400)
        self.assertIn("Idempotency-Key", json.dumps(error))
        code, error, _ = self.request("POST", "/jobs/c", [{"url": "http://w/1"}], {b"Idempotency-Key": [b"h2"]})
        self.assertEqual(code, 400)
        self.assertIn("batch", json.dumps(error))

    def test_batch_keys(self) -> None:
        code, answers, headers = self.request("POST", "/jobs/c", [
            {"url": "http://w/1", "idempotency_key": "a"},
            {"url": "http://w/2"},
            {"url": "http://w/3", "idempotency_key": "a"},
        ])
        self.assertEqual(code, 200)
        self.assertIsNone(self.replayed(headers))
        self.assertEqual(answers[2], answers[0])
        self.assertNotEqual(answers[1]["id"], answers[0]["id"])
        self.assertEqual(len(self.stored_ids()), 2)
        code, again, headers = self.request("POST", "/jobs/c", [{"url": "http://w/9", "idempotency_key": "a"}])
        self.assertEqual((again, self.replayed(headers)), ([answers[0]], [b"true"]))


class QueueDefaultsTests(OptionsAPITestCase):
    def test_defaults_shown_and_applied(self) -> None:
        code, queue = self.call("PUT", "/queue/q", {"max_workers": 3, "priority": 5, "max_retries": 2,
                                                     "retry_backoff": 2, "success": "status", "timeout": 0})
        self.assertEqual(code, 200)
        # Defaults equal to the built-in ones are neither kept nor shown.
        self.assertEqual(queue, {"name": "q", "polling_interval": 200, "max_workers": 3,
                                 "max_retries": 2, "retry_backoff": 2, "priority": 5})
        self.assertEqual(self.call("GET", "/queue/q")[1], queue)
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        code, job = self.call("POST", "/job/c", {"url": "http://w/1"})
        self.assertEqual((job["max_retries"], job["priority"], job["retry_backoff"]), (2, 5, 2))
        code, job = self.call("POST", "/job/c", {"url": "http://w/1", "max_retries": 0, "priority": -1})
        self.assertEqual((job["max_retries"], job["priority"], job["retry_backoff"]), (0, -1, 2))
        code, jobs = self.call("POST", "/jobs/c", [{"url": "http://w/1"}])
        self.assertEqual(jobs[0]["priority"], 5)
        code, error = self.call("PUT", "/queue/q", {"priority": 1000})
        self.assertEqual(code, 400)
        self.assertIn("field priority", json.dumps(error))
        code, plain = self.call("PUT", "/queue/q", {"max_workers": 3})
        self.assertEqual(plain, {"name": "q", "polling_interval": 200, "max_workers": 3})


class FakeLease:
    def __init__(self) -> None:
        self.holding = False

    def held(self) -> bool:
        return self.holding


class KeyCleanerTests(SynchronousTestCase):
    def test_cleans_while_the_lease_is_held(self) -> None:
        clock = Clock()
        store = MemoryJobStore(clock=lambda: int(clock.seconds() * 1000), idempotency_window_ms=5000)
        entry = PushEntry("q", NewJob("c", "u", options=JobOptions(idempotency_key="k")), answer="{}")
        self.successResultOf(store.push([entry]))
        lease = FakeLease()
        cleaner = KeyCleaner(store, "q", lease, clock, interval=10)
        cleaner.startService()
        self.addCleanup(cleaner.stopService)
        clock.advance(10)
        self.assertEqual(cleaner.deleted, 0)  # not yet expired (and not held)
        lease.holding = True
        clock.advance(10)
        self.assertEqual(cleaner.deleted, 1)
        lease.holding = False
        self.successResultOf(store.push([entry]))
        clock.advance(30)
        self.assertEqual(cleaner.deleted, 1)  # not held: left to the holder
