"""
Bug 5 with real processes: a job's attempt is counted when it is grabbed
and persisted with the grab, so a delivery cut short by a dying node counts.

Node A (a real ``twistd fireworq`` on a throwaway MariaDB) grabs a job and
starts delivering it to a real worker, which holds the answer back; A is
killed with SIGKILL mid-delivery.  Node B then takes the queue's lease,
recovers the job and delivers it again: with ``X-Fireworq-Attempt: 2``
(before the fix it said 1 again, as if the first delivery never happened).
The store-level behaviour of all three drivers is in tests/store_contract.py
(C{test_grab_counts_attempts}).
"""

from __future__ import annotations

from typing import Any, List

from twisted.internet.defer import inlineCallbacks

from tests.support.polling import wait_until
from tests.test_multinode import ClusterTestCase

#: Seconds the worker holds the first answer back: long enough to kill A
#: before it is answered, short enough for B's redelivery to complete.
HOLD = 3


class RedeliveryAfterKillTests(ClusterTestCase):
    """A node killed mid-delivery: the next node's delivery is attempt 2."""

    def deliveries_of(self, job_id: int) -> List[Any]:
        return [d for d in self.worker.deliveries if d.job_id == job_id]

    @inlineCallbacks
    def test_killed_delivery_counts_as_an_attempt(self) -> Any:
        a = yield self.start_node("a")
        code, _ = yield a.call("PUT", "/queue/q", {"max_workers": 1, "polling_interval": 100})
        self.assertEqual(code, 200)
        code, _ = yield a.call("PUT", "/routing/c", {"queue_name": "q"})
        self.assertEqual(code, 200)
        code, pushed = yield a.call(
            "POST", "/job/c", {"url": self.worker.url(f"/sleep/{HOLD}/success"), "payload": {"n": 1}}
        )
        self.assertEqual(code, 200, pushed)
        job_id = pushed["id"]

        yield wait_until(lambda: self.deliveries_of(job_id), 15, 0.02, "the first delivery (node A)")
        a.process.kill()  # SIGKILL while the worker has not answered yet
        [first] = self.deliveries_of(job_id)
        self.assertEqual(first.headers["x-fireworq-attempt"], "1")

        b = yield self.start_node("b")
        yield wait_until(lambda: len(self.deliveries_of(job_id)) >= 2, 30, 0.05,
                         "the redelivery by node B")
        second = self.deliveries_of(job_id)[1]
        self.assertEqual(second.headers["x-fireworq-job-id"], str(job_id))
        self.assertEqual(second.headers["x-fireworq-attempt"], "2")

        # B's delivery completes the job, and nothing is delivered again.
        def gone() -> Any:
            d = b.call("GET", f"/queue/q/job/{job_id}")
            d.addCallback(lambda answer: answer[0] == 404)
            return d

        yield wait_until(gone, HOLD + 15, 0.1, "the job to complete")
        self.assertEqual(len(self.deliveries_of(job_id)), 2)
