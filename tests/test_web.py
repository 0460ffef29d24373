"""
Unit tests of the HTTP API in process: the Klein application over the
in-memory store, driven through treq's StubTreq with a task.Clock.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq import __version__
from fireworq.config import load
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease.sole import SoleLease
from fireworq.events import EventFanout
from fireworq.manager import QueueManager
from fireworq.model import QueueDefinition, Result
from fireworq.names import storage_key
from fireworq.pushing import PushBatcher
from fireworq.stats import QueueStats
from fireworq.store.interface import CommitOutcomeUnknown, NodeInfo, StoreUnavailable
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from fireworq.inspection import Inspection
from fireworq.hooks.registry import HookRegistry
from fireworq.hooks.storage import MemoryHookStore
from fireworq.web.app import FireworqAPI
from fireworq.web.routes import timestamp
from fireworq.schedules.memory import MemorySchedules
from fireworq.schedules.scheduler import Scheduler
from fireworq.web.schedules import make_job
from tests.support.stubapi import stub_request

NODE = NodeInfo("node-a", "host-a")


class HeldDeliverer:
    """Never answers (jobs stay grabbed) unless told to."""

    def __init__(self) -> None:
        self.pending = {}
        self.jobs = {}

    def deliver(self, queue_name, job):
        d: Deferred = Deferred()
        self.pending[job.id] = d
        self.jobs[job.id] = job
        return d


class APITestCase(SynchronousTestCase):
    """An API over memory stores; ``call`` makes a request and returns (code, body)."""

    settings: dict = {"driver": "in-memory", "queue_default": "default"}
    storeClass: type = MemoryJobStore

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        now = lambda: int(self.clock.seconds() * 1000)
        self.store = self.storeClass(clock=now)
        self.repository = MemoryRepository()
        self.successResultOf(self.store.start())
        self.config = load(self.settings, environ={})
        self.stats = QueueStats(self.clock, now)
        self.events = EventFanout([self.stats])
        self.deliverer = HeldDeliverer()

        def make_dispatcher(definition: QueueDefinition) -> QueueDispatcher:
            lease = SoleLease(definition.name, self.store, NODE, 1, self.clock)
            return QueueDispatcher(
                definition, self.store, lease, self.deliverer, self.events, self.clock
            )

        default = None
        if self.config.queue_default:
            default = QueueDefinition(self.config.queue_default, 200, 20)
        self.manager = QueueManager(
            self.store,
            self.repository,
            PushBatcher(self.store, self.clock),
            make_dispatcher,
            self.events,
            self.stats,
            self.clock,
            default_queue=default,
        )
        self.manager.startService()
        self.clock.advance(0)
        self.addCleanup(self.manager.stopService)
        self.api = FireworqAPI(
            self.manager, Inspection(self.store, self.repository, self.manager), self.config
        )
        # Schedules (B10) over memory, not started: the routes work, nothing fires.
        self.api.scheduler = Scheduler(MemorySchedules(), self.manager, make_job, self.clock, wall=self.clock.seconds)
        # Event hooks (B12) over memory, not started: the routes work; the
        # store's matcher follows each change at once.
        self.api.hooks = HookRegistry(MemoryHookStore(), self.store, self.manager, self.clock, refresh_interval=1.0)
        self.stub = StubTreq(self.api.resource())

    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None):
        response, content = self.call_raw(method, path, body, raw)
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
        if ctype.startswith(b"application/json"):
            return response.code, json.loads(content)
        return response.code, content.decode("utf-8")

    def call_raw(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None):
        """(response, body bytes) of one request."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        return stub_request(self, self.stub, self.clock, method, path, data)


class PushTests(APITestCase):
    def test_push_echoes_the_job(self):
        code, body = self.call(
            "POST",
            "/job/a/b/c",
            {"url": "http://w/x", "payload": {"k": [1]}, "run_after": 5, "max_retries": 2,
             "retry_delay": 3, "timeout": 4, "extra": "ignored"},
        )
        self.assertEqual(code, 200)
        self.assertEqual(
            body,
            {"id": 1, "queue_name": "default", "category": "a/b/c", "url": "http://w/x",
             "payload": {"k": [1]}, "run_after": 5, "max_retries": 2, "retry_delay": 3,
             "timeout": 4},
        )

    def test_payload_is_delivered_exactly_as_sent(self):
        # Numbers no double holds (and integers Python would refuse to
        # convert) are kept as written, in the store and in the delivery.
        huge = "1" * 5000
        payload = ('{"big":%s,"neg":-%s,"inf":1e400,"tiny":5e-400,"exp":1E5,"precise":0.1000000000000000000001,'
                   '"f":1.0,"i":1,"s":"x","z":-0}' % (huge, huge))
        for raw in (b'{"url":"http://w/","payload":%s}' % payload.encode(),
                    b'{"url":"http://w/","payload":%s}' % payload.replace(",", " ,\n ").encode()):
            response, answer = self.call_raw("POST", "/job/c", raw=raw)
            self.assertEqual(response.code, 200, answer[:200])
            job_id = json.loads(answer, parse_int=str, parse_float=str)["id"]
            self.clock.advance(1)
            self.assertEqual(self.deliverer.jobs[int(job_id)].payload, payload)
        response, answer = self.call_raw("POST", "/job/c", raw=b'{"url":"http://w/","payload":1e400}')
        self.assertIn(b'"payload":1e400,', answer)
        self.clock.advance(1)
        self.assertEqual(self.deliverer.jobs[int(json.loads(answer, parse_float=str)["id"])].payload, "1e400")

    def test_absent_payload_echoes_null(self):
        code, body = self.call("POST", "/job/c", {"url": "http://w/x"})
        self.assertEqual((code, body["payload"]), (200, None))

    def test_category_with_double_slash_and_escapes(self):
        code, body = self.call("POST", "/job/a//b%20c", {"url": "http://w/x"})
        self.assertEqual((code, body["category"]), (200, "a//b c"))

    def test_ids_increase(self):
        ids = [self.call("POST", "/job/c", {"url": "http://w/x"})[1]["id"] for _ in range(3)]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), 3)

    def test_routing_beats_default(self):
        self.call("PUT", "/queue/special", {})
        self.call("PUT", "/routing/vip", {"queue_name": "special"})
        self.assertEqual(self.call("POST", "/job/vip", {"url": "http://w/"})[1]["queue_name"], "special")
        self.assertEqual(self.call("POST", "/job/other", {"url": "http://w/"})[1]["queue_name"], "default")

    def test_batch_push(self):
        code, body = self.call(
            "POST", "/jobs/c", [{"url": "http://w/1"}, {"url": "http://w/2", "payload": "s"}]
        )
        self.assertEqual(code, 200)
        self.assertEqual([j["url"] for j in body], ["http://w/1", "http://w/2"])
        self.assertEqual(body[1]["payload"], "s")
        self.assertEqual(body[1]["id"], body[0]["id"] + 1)

    def test_batch_push_is_atomic_and_names_the_bad_element(self):
        code, body = self.call(
            "POST", "/jobs/c", [{"url": "http://w/1"}, {"url": "http://w/2", "timeout": -1}]
        )
        self.assertEqual(code, 400)
        self.assertIn("[1]", body["message"])
        self.assertIn("timeout", body["message"])
        counts = self.successResultOf(self.store.count_jobs("default"))
        self.assertEqual(counts.waiting + counts.deferred + counts.grabbed, 0)

    def test_batch_push_limits(self):
        self.assertEqual(self.call("POST", "/jobs/c", [])[0], 400)
        self.assertEqual(self.call("POST", "/jobs/c", {"url": "http://w/"})[0], 400)
        code, body = self.call("POST", "/jobs/c", [{"url": "http://w/"}] * 1001)
        self.assertEqual(code, 400)
        self.assertIn("1000", body["message"])

    def test_store_outage_is_503(self):
        self.store.push = lambda entries: fail(StoreUnavailable("database is down"))
        code, body = self.call("POST", "/job/c", {"url": "http://w/x"})
        self.assertEqual(code, 503)
        self.assertIn("database is down", body["message"])

    def test_unknown_commit_outcome_is_503_saying_so(self):
        self.store.push = lambda entries: fail(CommitOutcomeUnknown("lost while committing"))
        for path, body in (("/job/c", {"url": "http://w/x"}), ("/jobs/c", [{"url": "http://w/x"}])):
            code, answer = self.call("POST", path, body)
            self.assertEqual(code, 503)
            self.assertIn("may or may not have been applied", answer["message"])
            self.assertNotIn("nothing was changed", answer["message"])

    def test_unexpected_error_is_500_without_traceback(self):
        self.store.push = lambda entries: fail(ZeroDivisionError("secret detail"))
        code, body = self.call("POST", "/job/c", {"url": "http://w/x"})
        self.assertEqual(code, 500)
        self.assertNotIn("secret", json.dumps(body))
        self.assertNotIn("Traceback", json.dumps(body))
        self.flushLoggedErrors(ZeroDivisionError)

    def test_other_methods_405(self):
        for method in ("GET", "PUT", "DELETE"):
            code, body = self.call(method, "/job/c")
            self.assertEqual(code, 405, method)
            self.assertIn("POST", body["message"])

    def test_bad_categories(self):
        code, body = self.call("POST", "/job/" + "x" * 256, {"url": "http://w/"})
        self.assertEqual(code, 400)
        self.assertIn("255", body["message"])
        code, body = self.call("POST", "/job/a%0Ab", {"url": "http://w/"})
        self.assertEqual(code, 400)


class NoDefaultQueueTests(APITestCase):
    settings = {"driver": "in-memory"}

    def test_unknown_category_is_404_naming_it(self):
        code, body = self.call("POST", "/job/lost", {"url": "http://w/"})
        self.assertEqual(code, 404)
        self.assertIn("lost", body["message"])

    def test_routing_to_a_deleted_queue_is_404(self):
        self.call("PUT", "/queue/gone", {})
        self.call("PUT", "/routing/r", {"queue_name": "gone"})
        self.call("DELETE", "/queue/gone")
        code, body = self.call("POST", "/job/r", {"url": "http://w/"})
        self.assertEqual(code, 404)
        self.assertIn("gone", body["message"])

    def test_routing_added_behind_our_back_is_found(self):
        self.call("PUT", "/queue/q1", {})
        self.successResultOf(
            self.repository.put_routing(__import__("fireworq.model").model.Routing("late", "q1"))
        )
        code, body = self.call("POST", "/job/late", {"url": "http://w/"})
        self.assertEqual((code, body["queue_name"]), (200, "q1"))


class QueueTests(APITestCase):
    def test_define_show_list_delete(self):
        code, body = self.call("PUT", "/queue/q1", {"polling_interval": 100, "max_workers": 10})
        self.assertEqual((code, body), (200, {"name": "q1", "polling_interval": 100, "max_workers": 10}))
        code, body = self.call("PUT", "/queue/q2", {})
        self.assertEqual(body, {"name": "q2", "polling_interval": 200, "max_workers": 20})
        code, body = self.call(
            "PUT", "/queue/q3", {"max_workers": 10, "max_dispatches_per_second": 2.5, "max_burst_size": 5}
        )
        # Throttled: the definition carries the fixed 100 ms polling interval,
        # as the original's does (changed with issue 11, bug 6).
        self.assertEqual(
            body,
            {"name": "q3", "polling_interval": 100, "max_workers": 10,
             "max_dispatches_per_second": 2.5, "max_burst_size": 5},
        )
        code, queues = self.call("GET", "/queues")
        self.assertEqual([q["name"] for q in queues], ["default", "q1", "q2", "q3"])
        self.assertEqual(self.call("GET", "/queue/q1")[1]["max_workers"], 10)
        code, body = self.call("DELETE", "/queue/q1")
        self.assertEqual((code, body["name"]), (200, "q1"))
        self.assertEqual(self.call("GET", "/queue/q1")[0], 404)
        self.assertEqual(self.call("DELETE", "/queue/q1")[0], 404)

    def test_whole_rate_is_written_without_fraction(self):
        # As the original writes a float64: 3, not 3.0.
        for rate in (b"3", b"3.0", b"3e0", b"1000000"):
            response, answer = self.call_raw(
                "PUT", "/queue/q", raw=b'{"max_dispatches_per_second":%s,"max_burst_size":2}' % rate
            )
            self.assertEqual(response.code, 200)
            written = b'"max_dispatches_per_second":%s,' % (b"3" if rate.startswith(b"3") else rate)
            self.assertIn(written, answer)
            for method, path in (("GET", "/queue/q"), ("GET", "/queues"), ("DELETE", "/queue/q")):
                self.assertIn(written, self.call_raw(method, path)[1], (method, path))
        self.call("PUT", "/queue/q", {"max_dispatches_per_second": 0.5, "max_burst_size": 2})
        self.assertIn(b'"max_dispatches_per_second":0.5,', self.call_raw("GET", "/queue/q")[1])

    def test_deleted_default_queue_comes_back_at_the_next_reload(self):
        """A3: the default queue is re-created on the next configuration reload."""
        self.assertEqual(self.call("DELETE", "/queue/default")[0], 200)
        self.assertEqual(self.call("GET", "/queue/default")[0], 404)
        self.clock.advance(1.01)  # the manager reloads every second by default
        code, body = self.call("GET", "/queue/default")
        self.assertEqual((code, body["name"], body["max_workers"]), (200, "default", 20))
        self.assertEqual(self.call("POST", "/job/anything", {"url": "http://w.test/"})[0], 200)

    def test_throttled_queue_stores_the_fixed_polling_interval(self):
        """
        As the original (its service sets the fixed interval of a throttled
        queue before storing it, and its tests pin "Defined queue should
        store the fixed polling interval"): whatever polling_interval was
        given, a throttled queue is stored and shown with 100 ms, the
        interval its dispatcher polls at.  (Before issue 11 this test pinned
        the given 500.)
        """
        for given in ({"polling_interval": 500}, {"polling_interval": 0}, {}):
            code, body = self.call(
                "PUT", "/queue/q", dict(given, max_dispatches_per_second=2, max_burst_size=1)
            )
            self.assertEqual((code, body["polling_interval"]), (200, 100), given)
            self.assertEqual(self.call("GET", "/queue/q")[1]["polling_interval"], 100)
            self.assertEqual(self.successResultOf(self.repository.find_queue("q")).polling_interval, 100)
        self.assertEqual(self.call("PUT", "/queue/q", {"polling_interval": 500})[1]["polling_interval"], 500)

    def test_stats_shape(self):
        self.call("POST", "/job/c", {"url": "http://w/"})
        code, stats = self.call("GET", "/queue/default/stats")
        self.assertEqual(code, 200)
        self.assertEqual(
            set(stats),
            {"total_pushes", "total_pops", "total_successes", "total_failures",
             "total_permanent_failures", "total_completes", "total_elapsed",
             "pushes_per_second", "pops_per_second", "outstanding_jobs", "total_workers",
             "idle_workers", "active_nodes"},
        )
        self.assertEqual((stats["total_pushes"], stats["total_pops"]), (1, 1))
        self.assertEqual((stats["total_workers"], stats["idle_workers"]), (20, 19))
        code, all_stats = self.call("GET", "/queues/stats")
        self.assertEqual(list(all_stats), ["default"])
        self.assertEqual(self.call("GET", "/queue/nope/stats")[0], 404)

    def test_node(self):
        code, node = self.call("GET", "/queue/default/node")
        self.assertEqual((code, node), (200, {"id": "node-a", "host": "host-a"}))
        self.assertEqual(self.call("GET", "/queue/nope/node")[0], 404)

    def test_unchanged_put_keeps_the_dispatcher(self):
        self.call("PUT", "/queue/q1", {"max_workers": 3})
        before = self.manager.dispatcher("q1")
        self.call("PUT", "/queue/q1", {"max_workers": 3})
        self.assertIs(self.manager.dispatcher("q1"), before)
        self.call("PUT", "/queue/q1", {"max_workers": 4})
        self.assertIs(self.manager.dispatcher("q1"), before)
        self.assertEqual(before.max_workers, 4)

    def test_names_alike_but_for_case_and_punctuation_are_distinct_queues(self):
        names = ["queueA", "queueB", "A", "B", "a", "my-q", "my.q", "my_q"]
        for name in names:
            code, body = self.call("PUT", f"/queue/{name}", {})
            self.assertEqual((code, body["name"]), (200, name))
            self.call("PUT", f"/routing/to-{name}", {"queue_name": name})
        listed = [q["name"] for q in self.call("GET", "/queues")[1]]
        self.assertEqual(sorted(set(listed) - {"default"}), sorted(names))
        pushed = {}
        for name in names:
            code, body = self.call("POST", f"/job/to-{name}",
                                   {"url": "http://w/", "payload": name, "run_after": 60})
            self.assertEqual((code, body["queue_name"]), (200, name))
            pushed[name] = body["id"]
        for name in names:
            deferred = self.call("GET", f"/queue/{name}/deferred")[1]["jobs"]
            self.assertEqual([(j["id"], j["payload"]) for j in deferred],
                             [(pushed[name], name)])

    def test_bad_definitions(self):
        for body in ({"max_workers": "3"}, {"polling_interval": -1}, {"max_workers": 10**9},
                     {"max_dispatches_per_second": -1, "max_burst_size": 1}):
            self.assertEqual(self.call("PUT", "/queue/q", body)[0], 400, body)
        self.assertEqual(self.call("PUT", "/queue/q", raw=b"")[0], 400)
        self.assertEqual(self.call("PUT", "/queue/" + "q" * 256, {})[0], 400)


class OriginalTableNamesStore(MemoryJobStore):
    """Keys queues as MySQL does (protocol A9): alike names share storage."""

    def storage_key(self, queue_name: str) -> str:
        return storage_key(queue_name)


class SharedStorageKeyTests(APITestCase):
    """On a store whose names map to the original's tables (MySQL)."""

    storeClass = OriginalTableNamesStore

    def test_names_sharing_storage_are_refused(self):
        self.assertEqual(self.call("PUT", "/queue/a-b", {})[0], 200)
        for name in ("a.b", "a_b", "a b"):
            code, body = self.call("PUT", f"/queue/{name}", {})
            self.assertEqual(code, 400)
            self.assertIn("would share job storage with the existing queue 'a-b'", body["message"])
            self.assertEqual(self.call("GET", f"/queue/{name}")[0], 404)
        self.assertEqual(self.call("PUT", "/queue/a-b", {"max_workers": 3})[0], 200)
        self.assertEqual(self.call("PUT", "/queue/queueA", {})[0], 200)
        code, body = self.call("PUT", "/queue/queueB", {})
        self.assertEqual(code, 400)
        self.assertIn("'queueA' (both map to 'queue_')", body["message"])
        self.assertEqual(self.call("DELETE", "/queue/queueA")[0], 200)
        self.assertEqual(self.call("PUT", "/queue/queueB", {})[0], 200)


class RoutingTests(APITestCase):
    def test_crud(self):
        self.call("PUT", "/queue/q1", {})
        code, body = self.call("PUT", "/routing/a/b", {"queue_name": "q1"})
        self.assertEqual((code, body), (200, {"job_category": "a/b", "queue_name": "q1"}))
        self.assertEqual(self.call("GET", "/routing/a/b")[1], body)
        self.assertEqual(self.call("GET", "/routings")[1], [body])
        self.assertEqual(self.call("DELETE", "/routing/a/b"), (200, body))
        self.assertEqual(self.call("GET", "/routing/a/b")[0], 404)
        self.assertEqual(self.call("GET", "/routings")[1], [])

    def test_bad_routings(self):
        self.assertEqual(self.call("PUT", "/routing/x", {"queue_name": 3})[0], 400)
        self.assertEqual(self.call("PUT", "/routing/x", {"queue_name": "none"})[0], 404)
        self.assertEqual(self.call("PUT", "/routing/x", raw=b"[")[0], 400)


class InspectTests(APITestCase):
    def test_lists_and_job_shapes(self):
        self.call("PUT", "/queue/q", {"max_workers": 1})
        self.call("PUT", "/routing/c", {"queue_name": "q"})
        first = self.call("POST", "/job/c", {"url": "http://w/", "payload": {"a": 1}})[1]
        second = self.call("POST", "/job/c", {"url": "http://w/", "payload": "text"})[1]
        third = self.call("POST", "/job/c", {"url": "http://w/", "run_after": 60, "max_retries": 2})[1]
        grabbed = self.call("GET", "/queue/q/grabbed")[1]
        waiting = self.call("GET", "/queue/q/waiting")[1]
        deferred = self.call("GET", "/queue/q/deferred")[1]
        self.assertEqual([j["id"] for j in grabbed["jobs"]], [first["id"]])
        self.assertEqual(grabbed["jobs"][0]["status"], "grabbed")
        self.assertEqual(grabbed["jobs"][0]["payload"], {"a": 1})
        self.assertEqual(waiting["jobs"][0]["payload"], "text")
        self.assertEqual([j["id"] for j in deferred["jobs"]], [third["id"]])
        self.assertNotIn("payload", deferred["jobs"][0])
        self.assertEqual(deferred["jobs"][0]["max_retries"], 2)
        self.assertEqual(deferred["next_cursor"], "")
        self.assertEqual(
            set(deferred["jobs"][0]),
            {"id", "category", "url", "status", "created_at", "next_try", "timeout",
             "fail_count", "max_retries", "retry_delay"},
        )
        self.assertEqual(self.call("GET", f"/queue/q/job/{second['id']}")[1]["status"], "claimed")

    def test_ids_that_are_not_stored_are_404(self):
        # Protocol A5: 400 only for an id that is not a number.
        for path in ("/queue/default/job/0", "/queue/default/failed/0", "/queue/default/job/00",
                     "/queue/default/job/999"):
            for method in ("GET", "DELETE"):
                self.assertEqual(self.call(method, path)[0], 404, (method, path))
        self.assertEqual(self.call("POST", "/queue/default/failed/0/retry")[0], 404)
        for path in ("/queue/default/job/abc", "/queue/default/failed/-1", "/queue/default/job/1.5"):
            code, body = self.call("GET", path)
            self.assertEqual(code, 400, path)
            self.assertIn(" id must ", body["message"])

    def test_cursor_walk(self):
        for _ in range(7):
            self.call("POST", "/job/c", {"url": "http://w/", "run_after": 100})
        seen, cursor = [], ""
        while True:
            page = self.call("GET", f"/queue/default/deferred?limit=3&order=asc&cursor={cursor}")[1]
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, list(range(1, 8)))

    def test_failure_log_and_retry(self):
        self.call("POST", "/job/c", {"url": "http://w/", "payload": {"p": 1}, "max_retries": 0,
                                     "timeout": 9, "retry_delay": 4})
        self.clock.advance(0)
        self.deliverer.pending.popitem()[1].callback(Result("failure", 500, "boom"))
        self.clock.advance(1)
        code, failed = self.call("GET", "/queue/default/failed")
        self.assertEqual(code, 200)
        entry = failed["failed_jobs"][0]
        self.assertEqual(entry["result"], {"status": "failure", "code": 500, "message": "boom"})
        self.assertEqual(entry["payload"], {"p": 1})
        self.assertEqual(self.call("GET", "/queue/default/failed?order=created")[1]["failed_jobs"], [entry])
        code, job = self.call("POST", f"/queue/default/failed/{entry['id']}/retry")
        self.assertEqual(code, 200)
        self.assertEqual(
            {k: job[k] for k in ("queue_name", "category", "payload", "max_retries", "retry_delay", "timeout")},
            {"queue_name": "default", "category": "c", "payload": {"p": 1}, "max_retries": 0,
             "retry_delay": 4, "timeout": 9},
        )
        self.assertEqual(self.call("GET", f"/queue/default/failed/{entry['id']}")[0], 404)
        self.assertEqual(self.call("POST", f"/queue/default/failed/{entry['id']}/retry")[0], 404)

    def test_delete_failed(self):
        self.call("POST", "/job/c", {"url": "http://w/"})
        self.clock.advance(0)
        self.deliverer.pending.popitem()[1].callback(Result("permanent-failure", 200, "no"))
        self.clock.advance(1)
        entry = self.call("GET", "/queue/default/failed")[1]["failed_jobs"][0]
        self.assertEqual(self.call("DELETE", f"/queue/default/failed/{entry['id']}"), (200, entry))
        self.assertEqual(self.call("DELETE", f"/queue/default/failed/{entry['id']}")[0], 404)


def set_time_zone(test: Any, zone: str) -> None:
    """Make ``zone`` the process's local time zone until ``test`` ends."""
    old = os.environ.get("TZ")

    def restore() -> None:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()

    test.addCleanup(restore)
    os.environ["TZ"] = zone
    time.tzset()


#: 2024-01-15T12:00:00.123Z and 2024-07-15T12:00:00.987Z.
WINTER, SUMMER = 1705320000123, 1721044800987


class TimestampTests(SynchronousTestCase):
    """Times show the server's UTC offset at that moment, daylight saving included."""

    def test_daylight_saving_time_is_followed(self):
        for zone in ("Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3"):
            set_time_zone(self, zone)
            self.assertEqual(timestamp(WINTER), "2024-01-15T13:00:00.123+01:00")
            self.assertEqual(timestamp(SUMMER), "2024-07-15T14:00:00.987+02:00")
            # Either side of the change (2024-03-31 01:00 UTC).
            self.assertEqual(timestamp(1711846799999), "2024-03-31T01:59:59.999+01:00")
            self.assertEqual(timestamp(1711846800000), "2024-03-31T03:00:00.000+02:00")

    def test_other_offsets(self):
        set_time_zone(self, "UTC")
        self.assertEqual(timestamp(WINTER), "2024-01-15T12:00:00.123Z")
        set_time_zone(self, "America/St_Johns")  # -03:30, -02:30 in summer
        self.assertEqual(timestamp(WINTER), "2024-01-15T08:30:00.123-03:30")
        self.assertEqual(timestamp(SUMMER), "2024-07-15T09:30:00.987-02:30")
        set_time_zone(self, "Asia/Tokyo")
        self.assertEqual(timestamp(1498405914537), "2017-06-26T00:51:54.537+09:00")


class TimestampAPITests(APITestCase):
    def test_jobs_show_the_offset_of_each_time(self):
        set_time_zone(self, "Europe/Berlin")
        self.clock.advance(WINTER / 1000 - self.clock.seconds())
        job = self.call("POST", "/job/c", {"url": "http://w/", "run_after": 182 * 86400})[1]
        shown = self.call("GET", f"/queue/default/job/{job['id']}")[1]
        self.assertEqual(shown["created_at"], "2024-01-15T13:00:00.123+01:00")
        self.assertEqual(shown["next_try"], "2024-07-15T14:00:00.123+02:00")


class OpsTests(APITestCase):
    def test_version(self):
        self.assertEqual(self.call("GET", "/"), (200, f"{__version__}\n"))
        self.assertEqual(self.call("GET", "/version"), (200, f"{__version__}\n"))

    def test_settings_are_strings_and_mask_secrets(self):
        self.api.config = load({"mysql_dsn": "u:pw@tcp(db:3306)/fw", "driver": "in-memory"}, {})
        code, settings = self.call("GET", "/settings")
        self.assertEqual(code, 200)
        self.assertTrue(all(isinstance(v, str) for v in settings.values()))
        self.assertEqual(settings["mysql_dsn"], "u:***@tcp(db:3306)/fw")
        self.assertEqual(settings["bind"], "127.0.0.1:8080")
        # Effective values, not the raw (empty) ones: inherited DSNs (masked
        # too), the default user agent, booleans and level names.
        self.assertEqual(settings["queue_mysql_dsn"], "u:***@tcp(db:3306)/fw")
        self.assertEqual(settings["repository_mysql_dsn"], "u:***@tcp(db:3306)/fw")
        self.assertEqual(settings["dispatch_user_agent"], f"Fireworq/{__version__}")
        self.assertEqual(settings["dispatch_keep_alive"], "false")
        self.assertEqual(settings["error_log_level"], "info")
        self.assertEqual(settings["queue_log_level"], "info")

    def test_stats(self):
        code, stats = self.call("GET", "/stats")
        self.assertEqual(code, 200)
        for key in ("time", "pid", "memory_rss", "thread_num", "uptime_seconds"):
            self.assertIn(key, stats)

    def test_health(self):
        code, health = self.call("GET", "/health")
        self.assertEqual((code, health["status"]), (200, "ok"))
        self.store.ping = lambda: fail(StoreUnavailable("down"))
        code, health = self.call("GET", "/health")
        self.assertEqual((code, health["status"]), (503, "unavailable"))

    def test_not_ready_is_503(self):
        self.manager.ready = False
        code, body = self.call("POST", "/job/c", {"url": "http://w/"})
        self.assertEqual(code, 503)
        self.assertIn("starting", body["message"])


class BoundaryTests(SynchronousTestCase):
    """
    The web layer changes things through the queue manager and looks at
    stored data through an L{IInspection}; it never holds a store (issue 11).
    """

    def test_web_modules_never_reach_a_store(self):
        import ast
        import os

        import fireworq.web

        web_dir = os.path.dirname(fireworq.web.__file__)
        found = []
        for name in sorted(os.listdir(web_dir)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(web_dir, name), encoding="utf-8") as f:
                tree = ast.parse(f.read(), name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr in ("store", "repository", "stores"):
                    found.append(f"{name}:{node.lineno}: .{node.attr}")
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    module = getattr(node, "module", None) or ""
                    names = [alias.name for alias in node.names]
                    if module.startswith("fireworq.store") and module != "fireworq.store.interface":
                        found.append(f"{name}:{node.lineno}: imports {module}")
                    if any(n.startswith("fireworq.store.") for n in names):
                        found.append(f"{name}:{node.lineno}: imports {names}")
        self.assertEqual(found, [])

    def test_inspection_provides_its_interface(self):
        from zope.interface.verify import verifyObject

        from fireworq.inspection import IInspection, Inspection

        store = MemoryJobStore()
        inspection = Inspection(store, MemoryRepository(), None)
        self.assertTrue(verifyObject(IInspection, inspection))
        self.assertEqual(inspection.driver, store.name)


class UserDocsTests(SynchronousTestCase):
    """What users read (issue 11, bug 10)."""

    def test_no_internal_labels(self):
        """
        User documents say what they mean in words or link the section; the
        protocol's labels (A1-A9, B1-...) are defined in no user document.
        """
        import re

        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [os.path.join(repo, "README.md"), os.path.join(repo, "fireworq", "openapi.yaml")]
        docs = os.path.join(repo, "docs")
        # Design pages for developers of this server (not for its users) may
        # name the protocol's parts by label.
        developer_pages = {"architecture.md", "storage.md"}
        paths += [
            os.path.join(docs, n)
            for n in sorted(os.listdir(docs))
            if n.endswith(".md") and n not in developer_pages
        ]
        label = re.compile(r"\((?:protocol )?[AB][0-9]{1,2}(?:, ?[AB][0-9]{1,2})*\)|protocol [AB][0-9]{1,2}\b")
        found = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    for match in label.finditer(line):
                        found.append(f"{os.path.relpath(path, repo)}:{number}: {match.group(0)}")
        self.assertEqual(found, [])

    def test_links_to_api_sections_resolve(self):
        import re

        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(repo, "docs", "api.md"), encoding="utf-8") as f:
            headings = [line.lstrip("#").strip() for line in f if line.startswith("#")]

        def anchor(heading: str) -> str:  # as GitHub makes them
            text = re.sub(r"[^\w\- ]", "", heading.lower())
            return text.replace(" ", "-")

        anchors = {anchor(h) for h in headings}
        docs = os.path.join(repo, "docs")
        for name in sorted(os.listdir(docs)):
            if name.endswith(".md"):
                with open(os.path.join(docs, name), encoding="utf-8") as f:
                    for target in re.findall(r"\]\(api\.md#([^)]+)\)", f.read()):
                        self.assertIn(target, anchors, f"{name}: api.md#{target}")
