"""
L{ScriptedDeliverer}: a deliverer for dispatcher unit tests whose every
delivery waits until the test answers it.
"""

from __future__ import annotations

from typing import Dict, List, Tuple, Union

from twisted.internet.defer import Deferred

from fireworq.model import Job, Result


class ScriptedDeliverer:
    """
    Records deliveries (C{calls}: queue name and job id); each is answered
    when the test says so (L{answer}, L{crash}).  A delivery the dispatcher
    cancels is recorded in C{canceled} (its Deferred then fails with
    C{CancelledError}, as any Deferred without a result does).
    """

    def __init__(self) -> None:
        self.calls: List[Tuple[str, int]] = []
        self.pending: Dict[int, Deferred] = {}
        self.canceled: List[int] = []

    def deliver(self, queue_name: str, job: Job) -> Deferred:
        self.calls.append((queue_name, job.id))

        def cancel(d: Deferred, job_id: int = job.id) -> None:
            self.canceled.append(job_id)

        d: Deferred = Deferred(cancel)
        self.pending[job.id] = d
        return d

    def answer(self, job_id: int, result: Union[Result, str] = "success", message: str = "") -> None:
        """Answer a delivery with ``result``: a L{Result}, or a status (code 200, ``message``)."""
        if isinstance(result, str):
            result = Result(result, 200, message)
        self.pending.pop(job_id).callback(result)

    def crash(self, job_id: int) -> None:
        """Fail a delivery with an exception (a bug of the deliverer)."""
        self.pending.pop(job_id).errback(RuntimeError("boom"))
