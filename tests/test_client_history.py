"""
The Python client's job history calls (protocol B8) against a real server
(sqlite): a queue with a retention, ``list_completed``/``iter_completed``
with filters, ``job`` of a finished job, ``retry_job``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks

from fireworq.client import NotFound
from tests.support.client_cases import ClientServerCase, in_thread
from tests.support.polling import wait_until


class ClientHistoryTests(ClientServerCase):
    """Kept finished jobs through the synchronous client."""

    @inlineCallbacks
    def test_completed_jobs_and_run_again(self) -> Any:
        queue = yield self.call("put_queue", "kept", polling_interval=50, retention=600)
        self.assertEqual(queue.raw.get("retention"), 600)
        yield self.call("put_routing", "kept", "kept")
        first = yield self.call("push", "kept", self.worker.url("/success"), {"n": 1}, name="mail-1", tags={"t": "a"})
        second = yield self.call("push", "kept", self.worker.url("/success"), {"n": 2}, name="mail-2", tags={"t": "b"})

        def completed() -> Any:
            return in_thread(lambda: list(self.client.iter_completed("kept", page_size=1)))

        kept = yield wait_until(lambda: completed().addCallback(lambda jobs: len(jobs) == 2 and jobs), 20, 0.1,
                                "both jobs kept")
        self.assertEqual({job.id for job in kept}, {first.id, second.id})
        self.assertEqual({(job.state, job.attempts) for job in kept}, {("completed", 1)})
        self.assertEqual(kept[0].result["status"], "success")
        page = yield self.call("list_completed", "kept", name="mail-*", tags={"t": "b"})
        self.assertEqual([job.id for job in page.items], [second.id])
        shown = yield self.call("job", "kept", first.id)
        self.assertEqual((shown.state, shown.result["code"]), ("completed", 200))
        again = yield self.call("retry_job", "kept", first.id)
        self.assertNotEqual(again.id, first.id)
        self.assertEqual(again.queue_name, "kept")
        yield self.assertFailure(self.call("retry_job", "kept", 10**9), NotFound)
