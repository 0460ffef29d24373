"""
L{HookMatcher}: the hook jobs an event makes, from the hook definitions of
the moment.

The job stores call it inside the transaction of the change an event
reports (a push, a completion, a retry, a failure, a cancellation), and
insert the jobs it answers into the ``_hooks`` queue in that same
transaction: the change and its hook jobs commit together or not at all.
It is pure (immutable definitions, no I/O), so it may run in a database
thread and again when a transaction is rerun.  A store holds no matcher
(``event_hooks`` is None) while no hook is defined: then it does no extra
work at all.
"""

from __future__ import annotations

import uuid
from typing import Callable, List, Optional, Sequence

import attr

from fireworq.hooks.model import HOOKS_DEFAULTS, HOOKS_QUEUE, HookDefinition
from fireworq.jobevents import render
from fireworq.jobevents.model import (
    JOB_CANCELED,
    JOB_COMPLETED,
    JOB_EXPIRED,
    JOB_FAILED,
    JOB_PUSHED,
    JOB_RETRIED,
    JobEvent,
)
from fireworq.joboptions.values import JobOptions, QueueDefaults, apply_queue_defaults
from fireworq.model import Completion, CompletionKind, Job, NewJob


def event_id() -> str:
    """A new event id: ``evt_`` and 32 hex digits (random, unique across nodes and restarts)."""
    return "evt_" + uuid.uuid4().hex


def event_type(completion: Completion, canceled: bool = False) -> str:
    """The event a completion reports (``canceled``: its job was marked canceled meanwhile)."""
    kind = completion.kind
    if canceled or kind is CompletionKind.CANCEL:
        return JOB_CANCELED
    if kind is CompletionKind.SUCCESS:
        return JOB_COMPLETED
    if kind is CompletionKind.RETRY:
        return JOB_RETRIED
    return JOB_EXPIRED if completion.result.status == "expired" else JOB_FAILED


class HookMatcher:
    """
    The hooks of the moment, and the jobs of ``_hooks`` that an event makes.

    @param hooks: the definitions (read only).
    @param defaults: returns the ``_hooks`` queue's job defaults now (its
        definition may be changed like any queue's).
    @param keeps_history: whether a queue keeps finished jobs (the event's
        job object then shows ``state`` and ``attempts``, as its answers do).
    @param now_ms: the time of an event when the store gives none.
    """

    queue_name = HOOKS_QUEUE

    def __init__(
        self,
        hooks: Sequence[HookDefinition],
        defaults: Callable[[], QueueDefaults] = lambda: HOOKS_DEFAULTS,
        keeps_history: Callable[[str], bool] = lambda queue: False,
    ) -> None:
        self.hooks = tuple(hooks)
        self._defaults = defaults
        self._keeps_history = keeps_history
        self._types = frozenset(t for hook in self.hooks for t in hook.events)

    def wants(self, queue_name: str, event_type: Optional[str] = None) -> bool:
        """Whether some hook may want an event (of ``event_type``, when given) about ``queue_name``."""
        if queue_name == HOOKS_QUEUE:
            return False
        if event_type is None:
            return any(hook.wants(t, queue_name) for hook in self.hooks for t in hook.events)
        return event_type in self._types and any(hook.wants(event_type, queue_name) for hook in self.hooks)

    def pushed(self, queue_name: str, job: Job, now_ms: int) -> List[NewJob]:
        """The hook jobs of ``job`` pushed to ``queue_name`` (stored at ``now_ms``)."""
        if not self.wants(queue_name, JOB_PUSHED):
            return []
        body = render.pushed_job(job, self._keeps_history(queue_name), now_ms)
        return self._jobs(JOB_PUSHED, queue_name, body, now_ms)

    def finished(self, queue_name: str, completion: Completion, now_ms: int, canceled: bool = False) -> List[NewJob]:
        """The hook jobs of a completion applied at ``now_ms`` (``canceled``: its job was marked canceled)."""
        kind = event_type(completion, canceled)
        if not self.wants(queue_name, kind):
            return []
        times = completion.attempt
        duration = max(0, times.finished_at - times.started_at) if times is not None else 0
        if kind == JOB_RETRIED:
            body = render.retried_job(completion, self._keeps_history(queue_name), now_ms, duration)
        else:
            if kind == JOB_CANCELED and completion.kind is not CompletionKind.CANCEL:
                completion = attr.evolve(completion, kind=CompletionKind.CANCEL)
            body = render.finished_job(completion, now_ms, duration)
        return self._jobs(kind, queue_name, body, now_ms)

    def canceled(self, queue_name: str, job: Job, now_ms: int) -> List[NewJob]:
        """The hook jobs of a waiting ``job`` canceled (deleted) at ``now_ms``."""
        if not self.wants(queue_name, JOB_CANCELED):
            return []
        return self._jobs(JOB_CANCELED, queue_name, render.canceled_job(job, now_ms), now_ms)

    def _jobs(self, kind: str, queue_name: str, job_body: dict, now_ms: int) -> List[NewJob]:
        out: List[NewJob] = []
        defaults = self._defaults()
        for hook in self.hooks:
            if not hook.wants(kind, queue_name):
                continue
            event = JobEvent(type=kind, id=event_id(), time=now_ms, queue=queue_name, job=job_body)
            job = NewJob(category=hook.name, url=hook.url, payload=event.json())
            # The job's name is the event type: the _hooks lists filter by it.
            job, options = apply_queue_defaults(job, JobOptions(name=kind), defaults, frozenset())
            out.append(attr.evolve(job, options=options))
        return out
