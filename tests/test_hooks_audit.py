"""
Audit of issue 16 (B12 hooks, B13 live events) through the in-process API:
answers a user sees that the end-to-end suites do not pin.
"""

import json

from tests.test_web import APITestCase

HOOK = {"url": "http://receiver.test/hook", "events": ["job.completed"]}


class HookAnswerTests(APITestCase):
    """The hook routes' answers."""

    def test_unknown_hook_is_named_a_hook(self):
        """A 404 of GET/DELETE /hook/{name} names the hook (not a schedule: both route mixins had a ``_found``)."""
        for method in ("GET", "DELETE"):
            code, body = self.call(method, "/hook/nope")
            self.assertEqual(code, 404)
            self.assertEqual(body["message"], "hook 'nope' is not defined")

    def test_no_method_shared_by_two_route_mixins(self):
        """No two route mixins of the API define the same helper (the later one would be silently shadowed)."""
        from fireworq.web.app import FireworqAPI

        owners = {}
        for base in FireworqAPI.__mro__[1:]:
            for key in vars(base):
                if not key.startswith("__"):
                    owners.setdefault(key, []).append(base.__name__)
        self.assertEqual({k: v for k, v in owners.items() if len(v) > 1}, {})


class HookEventTimesTests(APITestCase):
    """
    The ``result`` of a hook event carries the attempt's real times, also in
    a queue that keeps no finished jobs (the dispatcher adds them to the
    completion only while a hook may need them).
    """

    def _event(self, result, hook_events):
        import json as _json

        from fireworq.hooks.model import HOOKS_QUEUE
        from fireworq.model import JobState

        code, _ = self.call("PUT", "/hook/h", {"url": "http://receiver.test/hook", "events": hook_events})
        self.assertEqual(code, 200)
        code, job = self.call("POST", "/job/c", {"url": "http://w/", "payload": {"p": 1}, "max_retries": 1})
        self.assertEqual(code, 200)
        self.clock.advance(0)
        started = self.clock.seconds()
        self.clock.advance(3)  # the delivery takes 3 s
        self.deliverer.pending.pop(job["id"]).callback(result)
        self.clock.advance(1)  # completions flushed
        jobs = self.successResultOf(self.store.list_jobs(HOOKS_QUEUE, JobState.WAITING, 10, None, False)).items
        jobs += self.successResultOf(self.store.list_jobs(HOOKS_QUEUE, JobState.GRABBED, 10, None, False)).items
        self.assertEqual(len(jobs), 1)
        body = _json.loads(jobs[0].payload)
        return body, started

    def _check(self, body, started):
        from fireworq.web.routes import timestamp

        result = body["job"]["result"]
        self.assertEqual(result["elapsed"], 3000)
        self.assertEqual(result["started_at"], timestamp(int(started * 1000)))
        self.assertEqual(result["finished_at"], timestamp(int(started * 1000) + 3000))

    def test_completed(self):
        from fireworq.model import Result

        body, started = self._event(Result("success", 200, "ok"), ["job.completed"])
        self.assertEqual(body["type"], "job.completed")
        self._check(body, started)

    def test_retried(self):
        from fireworq.model import Result

        body, started = self._event(Result("failure", 500, "boom"), ["job.retried"])
        self.assertEqual(body["type"], "job.retried")
        self._check(body, started)


class HookNameTests(APITestCase):
    """Hook names a client could never reach again are refused."""

    def test_dot_segments_refused(self):
        for name in (".", ".."):
            code, body = self.call("PUT", f"/hook/{name}", HOOK)
            self.assertEqual(code, 400, name)
            self.assertIn("hook name", body["message"])
        self.assertEqual(self.call("GET", "/hooks")[1], [])

    def test_events_answered_as_given(self):
        """The answer's ``events`` is the request's, in its order, repeats dropped."""
        body = {"url": "http://receiver.test/hook", "events": ["job.failed", "job.completed", "job.failed"]}
        code, hook = self.call("PUT", "/hook/h", body)
        self.assertEqual(code, 200)
        self.assertEqual(hook["events"], ["job.failed", "job.completed"])
        self.assertEqual(self.call("GET", "/hook/h")[1]["events"], ["job.failed", "job.completed"])


from twisted.trial.unittest import SynchronousTestCase

from tests import test_openapi  # the module, so that trial does not run its tests here too


class HookConformanceTests(SynchronousTestCase):
    """The hook routes' real answers, and a hook event's body, against fireworq/openapi.yaml."""

    # The conformance machinery of tests.test_openapi, without rerunning its tests.
    operation = test_openapi.ConformanceTests.operation
    conforms = test_openapi.ConformanceTests.conforms
    call = test_openapi.ConformanceTests.call

    def setUp(self) -> None:
        from fireworq.config import load
        from fireworq.hooks.registry import HookRegistry
        from fireworq.hooks.storage import MemoryHookStore
        from fireworq.inspection import Inspection
        from fireworq.web.app import FireworqAPI

        from treq.testing import StubTreq

        test_openapi.ConformanceTests.setUp(self)
        api = FireworqAPI(
            self.manager, Inspection(self.store, self.repository, self.manager),
            load({"driver": "in-memory", "queue_default": "default"}, environ={}),
        )
        api.hooks = HookRegistry(MemoryHookStore(), self.store, self.manager, self.clock, refresh_interval=1.0)
        self.stub = StubTreq(api.app.resource())

    def test_hook_routes(self):
        body = {"url": "http://receiver.test/hook", "events": ["job.pushed", "job.completed"], "queues": "def*"}
        self.assertEqual(self.call("PUT", "/hook/audit", body)[0], 200)
        self.assertEqual(self.call("PUT", "/hook/audit", {**body, "secret": None, "queues": None})[0], 200)
        self.assertEqual(self.call("GET", "/hooks")[0], 200)
        self.assertEqual(self.call("GET", "/hook/audit")[0], 200)
        self.assertEqual(self.call("GET", "/hook/nope")[0], 404)
        self.assertEqual(self.call("PUT", "/hook/x", {"url": "http://r/", "events": []})[0], 400)
        self.assertEqual(self.call("PUT", "/hook/..", body)[0], 400)
        self.assertEqual(self.call("DELETE", "/hook/nope")[0], 404)

    def test_event_body(self):
        from jsonschema import Draft202012Validator

        from fireworq.hooks.model import HOOKS_QUEUE
        from fireworq.model import JobState, Result

        body = {"url": "http://receiver.test/hook", "events": ["job.pushed", "job.completed"]}
        self.assertEqual(self.call("PUT", "/hook/audit", body)[0], 200)
        code, job = self.call("POST", "/job/c", {"url": "http://w/", "payload": {"p": 1}})
        self.assertEqual(code, 200)
        self.clock.advance(0)
        self.deliverer.pending.pop(job["id"]).callback(Result("success", 200, "ok"))
        self.clock.advance(1)
        jobs = self.successResultOf(self.store.list_jobs(HOOKS_QUEUE, JobState.WAITING, 10, None, False)).items
        jobs += self.successResultOf(self.store.list_jobs(HOOKS_QUEUE, JobState.GRABBED, 10, None, False)).items
        self.assertEqual(sorted(json.loads(j.payload)["type"] for j in jobs), ["job.completed", "job.pushed"])
        validator = Draft202012Validator({**self.spec, "$ref": "#/components/schemas/HookEvent"})
        for j in jobs:
            self.assertEqual([e.message for e in validator.iter_errors(json.loads(j.payload))], [])
