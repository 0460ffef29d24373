"""
What the parts of a queue's dispatcher share: the attributes that
L{fireworq.dispatch.dispatcher.QueueDispatcher} sets up and its parts
(L{fireworq.dispatch.grabbing}, L{fireworq.dispatch.delivering}) read
and change -- above all C{_claimed}, the one counter of taken workers.
Declared once here so that each part says what it relies on.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Protocol, Set

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from fireworq.backoff import Backoff
from fireworq.dispatch.cancels import CancelWatcher
from fireworq.dispatch.completion import CompletionBatcher
from fireworq.dispatch.outcomes import Outcomes
from fireworq.dispatch.returns import JobReturns
from fireworq.dispatch.throttle import TokenBucket
from fireworq.events import IQueueEvents
from fireworq.lease.interface import IQueueLease
from fireworq.model import Completion, Job, QueueDefinition, Result
from fireworq.store.interface import IJobStore


class Deliverer(Protocol):
    """Something that delivers a job and reports the L{Result}; never fails."""

    def deliver(self, queue_name: str, job: Job) -> "Deferred[Result]":
        ...


class DispatcherState:
    """The shared state of L{QueueDispatcher} (annotations only; set by its C{__init__})."""

    _log = Logger()

    name: str
    definition: QueueDefinition
    lease: IQueueLease
    deliverer: Deliverer
    completions: CompletionBatcher
    _store: IJobStore
    _events: IQueueEvents
    _clock: IReactorTime
    #: Workers taken: running deliveries + a grab in flight's limit +
    #: reservations of pushes.
    _claimed: int
    #: The running deliveries by job id.
    _inflight: Dict[int, Deferred]
    #: Whether the dispatcher runs (grabs and delivers).
    _dispatching: bool
    #: A grab is in flight; another poll was asked for meanwhile; more jobs
    #: are due than the last grab fetched.
    _grabbing: bool
    _again: bool
    _backlog: bool
    _grab_succeeded: bool
    #: Fire when the grab in flight (if any) and its handling are over.
    _grab_waiters: List[Deferred]
    #: Fire when no delivery runs any more.
    _idle_waiters: List[Deferred]
    _kick_call: Optional[IDelayedCall]
    _grab_retry: Backoff
    _bucket: Optional[TokenBucket]
    _returns: JobReturns
    _cancels: CancelWatcher
    _canceled: Set[int]
    _outcomes: Outcomes
    _timed: Callable[[Completion, float], Completion]
    # Of QueueDispatcher and the other parts (declared here for readers):
    free_workers: int
    min_grab: int
    kick: Callable[[], None]
    _start: Callable[[Job, int], None]
