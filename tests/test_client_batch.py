"""
Unit tests of the batch planning of the client (fireworq.client.batch):
how jobs are cut into batch pushes and what each answer or error of the
server makes of a batch.  No I/O: the integration tests of push_many are in
tests/test_client.py.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from fireworq.client import BadRequest, JobSpec, NotFound, PayloadTooLarge, PushedJob, TransportError
from fireworq.client.batch import Chunk, Tally, chunks, settle


def bad_request(message: str) -> BadRequest:
    return BadRequest(400, message, "Bad Request")


class ChunkTests(SynchronousTestCase):
    """chunks() cuts by count and by bytes, lazily, keeping input positions."""

    def test_by_count(self) -> None:
        got = list(chunks(({"url": "u", "payload": i} for i in range(2500)), max_count=1000))
        self.assertEqual([(c.start, len(c.items)) for c in got], [(0, 1000), (1000, 1000), (2000, 500)])
        self.assertEqual(json.loads(got[2].body())[0], {"url": "u", "payload": 2000})

    def test_by_bytes(self) -> None:
        jobs = [{"url": "u", "payload": "x" * 80} for _ in range(10)]
        size = len(json.dumps(jobs[0], separators=(",", ":")))
        got = list(chunks(jobs, max_bytes=3 * (size + 1) + 2))
        self.assertEqual([len(c.items) for c in got], [3, 3, 3, 1])
        for chunk in got:
            self.assertLessEqual(len(chunk.body()), 3 * (size + 1) + 2)

    def test_a_job_larger_than_the_budget_goes_alone(self) -> None:
        got = list(chunks([{"url": "u"}, {"url": "u", "payload": "x" * 500}, {"url": "u"}], max_bytes=100))
        self.assertEqual([len(c.items) for c in got], [1, 1, 1])

    def test_kinds_of_jobs(self) -> None:
        import datetime

        got = list(chunks([JobSpec.of("u", [1], run_after=datetime.timedelta(seconds=5)), b'{"url":"v"}',
                           {"url": "w", "max_retries": None}]))
        self.assertEqual(json.loads(got[0].body()), [{"url": "u", "payload": [1], "run_after": 5}, {"url": "v"}, {"url": "w"}])
        self.assertRaises(TypeError, list, chunks([42]))
        self.assertRaises(ValueError, list, chunks([JobSpec.of("u", run_after=datetime.timedelta(seconds=1.5))]))

    def test_keyed_only_when_every_job_has_a_key(self) -> None:
        self.assertTrue(next(chunks([{"url": "u", "idempotency_key": "a"}, {"url": "u", "idempotency_key": "b"}])).keyed)
        self.assertFalse(next(chunks([{"url": "u", "idempotency_key": "a"}, {"url": "u"}])).keyed)
        self.assertFalse(next(chunks([b'{"url":"u","idempotency_key":"a"}'])).keyed)

    def test_lazy(self) -> None:
        def jobs():
            for i in range(5):
                yield {"url": "u"}
            raise AssertionError("read too far")

        first = next(chunks(jobs(), max_count=5))
        self.assertEqual(len(first.items), 5)


class SettleTests(SynchronousTestCase):
    """settle() turns an answer or an error into stored jobs, failures and retries."""

    def chunk(self, start: int = 100, count: int = 10) -> Chunk:
        return Chunk(start, [b'{"url":"u"}'] * count)

    def test_stored(self) -> None:
        jobs = [PushedJob(id=i) for i in range(10)]
        out = settle(self.chunk(), jobs)
        self.assertEqual([p for p, _ in out.stored], list(range(100, 110)))
        self.assertEqual((out.failures, out.again), ([], []))

    def test_one_bad_element_is_isolated(self) -> None:
        error = bad_request("job [3]: field url is required")
        out = settle(self.chunk(), error)
        self.assertEqual([(f.index, f.count) for f in out.failures], [(103, 1)])
        self.assertEqual([(c.start, len(c.items)) for c in out.again], [(100, 3), (104, 6)])
        out = settle(self.chunk(), bad_request("job [0]: x"))
        self.assertEqual([(c.start, len(c.items)) for c in out.again], [(101, 9)])
        out = settle(self.chunk(count=1), bad_request("job [0]: x"))
        self.assertEqual(out.again, [])

    def test_without_isolation_the_batch_fails(self) -> None:
        out = settle(self.chunk(), bad_request("job [3]: x"), isolate=False)
        self.assertEqual([(f.index, f.count) for f in out.failures], [(100, 10)])
        self.assertEqual(out.again, [])

    def test_an_index_beyond_the_batch_fails_it_whole(self) -> None:
        out = settle(self.chunk(), bad_request("job [30]: x"))
        self.assertEqual([(f.index, f.count) for f in out.failures], [(100, 10)])

    def test_a_smaller_server_limit_splits(self) -> None:
        out = settle(self.chunk(), bad_request("a batch may hold at most 4 jobs, not 10"))
        self.assertEqual([(c.start, len(c.items)) for c in out.again], [(100, 4), (104, 4), (108, 2)])

    def test_too_large_halves(self) -> None:
        error = PayloadTooLarge(413, "request body too large", "Content Too Large")
        out = settle(self.chunk(), error)
        self.assertEqual([(c.start, len(c.items)) for c in out.again], [(100, 5), (105, 5)])
        out = settle(self.chunk(count=1), error)
        self.assertEqual([(f.index, f.count) for f in out.failures], [(100, 1)])

    def test_other_errors_fail_the_batch(self) -> None:
        for error in (NotFound(404, "no queue", "Not Found"), TransportError("refused")):
            out = settle(self.chunk(), error)
            self.assertEqual([(f.index, f.count, f.error) for f in out.failures], [(100, 10, error)])


class TallyTests(SynchronousTestCase):
    """Tally puts the outcomes of batches finished in any order back in input order."""

    def test_order_and_counts(self) -> None:
        tally = Tally(keep_jobs=True)
        self.assertEqual(tally.add(settle(Chunk(2, [b"{}"] * 2), [PushedJob(id=3), PushedJob(id=4)])), (2, 0))
        self.assertEqual(tally.add(settle(Chunk(0, [b"{}"] * 2), bad_request("job [1]: x"))).__len__(), 2)
        tally.add(settle(Chunk(0, [b"{}"]), [PushedJob(id=1)]))
        result = tally.finish(4)
        self.assertEqual([j.id if j else None for j in result.jobs], [1, None, 3, 4])
        self.assertEqual((result.total, result.pushed, result.failed, result.ok), (4, 3, 1, False))
        error = self.assertRaises(Exception, result.raise_for_errors)
        self.assertIn("1 of 4 jobs were not pushed; first: job [1]", str(error))

    def test_counts_only(self) -> None:
        tally = Tally(keep_jobs=False)
        tally.add(settle(Chunk(0, [b"{}"] * 3), [None, None, None]))
        result = tally.finish(3)
        self.assertEqual((result.pushed, result.jobs, result.ok), (3, None, True))
        self.assertIs(result.raise_for_errors(), result)


class ConfigurationTests(SynchronousTestCase):
    """URL and token come from the arguments, else FIREWORQ_URL / FIREWORQ_TOKEN."""

    def test_environment(self) -> None:
        import os

        from fireworq.client import Client

        self.patch(os, "environ", {"FIREWORQ_URL": "http://example.invalid:9/pre/", "FIREWORQ_TOKEN": "envtoken"})
        client = Client()
        self.addCleanup(client.close)
        self.assertEqual(client.url, "http://example.invalid:9/pre")
        self.assertEqual(client._http.headers["authorization"], "Bearer envtoken")
        self.assertEqual(str(client._http.base_url), "http://example.invalid:9/pre/")
        explicit = Client("http://other:1", token="")
        self.addCleanup(explicit.close)
        self.assertEqual(explicit.url, "http://other:1")
        self.assertNotIn("authorization", explicit._http.headers)
        self.patch(os, "environ", {})
        default = Client()
        self.addCleanup(default.close)
        self.assertEqual(default.url, "http://127.0.0.1:8080")
        self.assertNotIn("authorization", default._http.headers)

    def test_paths_are_quoted(self) -> None:
        from fireworq.client.encoding import category_path, segment

        self.assertEqual(category_path("a/b c/?#%"), "a/b%20c/%3F%23%25")
        self.assertEqual(category_path("x/../."), "x/%2E%2E/%2E")
        self.assertEqual(segment("q/1"), "q%2F1")
