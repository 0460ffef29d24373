"""
L{HookRegistry}: this node's hooks (protocol B12).

It loads the definitions when it starts and every
``config_refresh_interval`` after (a change made through another node is
followed within that interval; one made through this node applies at
once), and keeps three things in step with them:

  - the job store's ``event_hooks``: a L{HookMatcher} while any hook is
    defined, None otherwise (the store then does no extra work);
  - the internal queue ``_hooks``, defined on first use with the built-in
    defaults of L{fireworq.hooks.model.HOOKS_DEFAULTS} (its definition may
    then be changed like any queue's; it is defined again if deleted while
    hooks exist);
  - one L{Signer} per hook, which the ``_hooks`` deliverer asks for each
    delivery (L{signer}).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fireworq.hooks.matcher import HookMatcher
from fireworq.hooks.model import (
    HOOKS_DEFAULTS,
    HOOKS_MAX_WORKERS,
    HOOKS_POLLING_INTERVAL,
    HOOKS_QUEUE,
    HookDefinition,
)
from fireworq.hooks.storage import IHookStore
from fireworq.history.record import retention_seconds
from fireworq.joboptions.values import QueueDefaults
from fireworq.model import Job, QueueDefinition, Result, ResultStatus
from fireworq.signing.keys import SigningKeys
from fireworq.signing.signer import Signer
from fireworq.store.reloading import ReloadingService


def hooks_queue_definition() -> QueueDefinition:
    """The ``_hooks`` queue as the server first defines it."""
    return QueueDefinition(
        name=HOOKS_QUEUE,
        polling_interval=HOOKS_POLLING_INTERVAL,
        max_workers=HOOKS_MAX_WORKERS,
        defaults=HOOKS_DEFAULTS,
    )


class HookRegistry(ReloadingService):
    """
    The hooks of this node and the changes the API makes.

    @param store: where the definitions are kept (shared by every node).
    @param jobs: the job store whose ``event_hooks`` follows the hooks.
    @param manager: the queue manager (defines ``_hooks``; its defaults).
    @param job_lifetime: the server's setting (seconds a finished job is
        kept when its queue says nothing): whether an event's job object
        shows ``state`` and ``attempts``, as the queue's answers do.
    """

    name = "hooks"
    #: The internal queue whose deliverer asks this registry for signers.
    queue_name = HOOKS_QUEUE
    stored_what = "the hook definitions"
    loaded_what = "the hooks"
    _log = Logger()

    def __init__(
        self,
        store: IHookStore,
        jobs: Any,
        manager: Any,
        clock: IReactorTime,
        refresh_interval: float,
        job_lifetime: int = 0,
    ) -> None:
        super().__init__(store, clock, refresh_interval)
        self._jobs = getattr(jobs, "observed", jobs)
        self.manager = manager
        self.job_lifetime = job_lifetime
        self._hooks: Dict[str, HookDefinition] = {}
        self._signers: Dict[str, Signer] = {}
        self._queue_ready = False

    # -- deliveries ------------------------------------------------------------------

    def signer(self, job: Job) -> Optional[Signer]:
        """The signer of a ``_hooks`` job (its category is the hook's name), or None when the hook is gone."""
        return self._signers.get(job.category)

    @staticmethod
    def gone(job: Job) -> Result:
        """The result of a delivery whose hook was deleted: a permanent failure, nothing sent."""
        return Result(
            ResultStatus.PERMANENT_FAILURE.value, 0, f"hook {job.category!r} no longer exists; nothing was sent"
        )

    # -- loading (the life cycle is L{ReloadingService}'s) -----------------------------------

    def _apply_loaded(self, hooks: List[HookDefinition]) -> "Deferred[None]":
        # A failure to apply (defining _hooks) is logged like a failed load.
        d = maybeDeferred(self._apply, hooks)
        d.addErrback(self._load_failed)
        return d

    def _load_failed(self, failure: Any) -> None:
        self._log.warn("Cannot load the hook definitions: {error}", error=failure.getErrorMessage())

    def _apply(self, hooks: List[HookDefinition]) -> "Deferred[None]":
        self._hooks = {hook.name: hook for hook in hooks}
        self._signers = {
            hook.name: Signer(SigningKeys(HOOKS_QUEUE, hook.secret)) for hook in hooks
        }
        # Matched from now on: the stores make the _hooks storage they
        # insert into when it is missing, so events need not wait for the
        # queue's definition (which waits for the queue manager).
        self._jobs.event_hooks = HookMatcher(hooks, self._defaults, self._keeps_history) if hooks else None
        self._set_loaded()
        return self._ensure_queue() if hooks else succeed(None)

    def _keeps_history(self, queue_name: str) -> bool:
        return retention_seconds(self.manager.defined(queue_name), self.job_lifetime) > 0

    def _defaults(self) -> QueueDefaults:
        definition = self.manager.defined(HOOKS_QUEUE)
        return definition.defaults if definition is not None else HOOKS_DEFAULTS

    def _ensure_queue(self) -> "Deferred[None]":
        """Define ``_hooks`` when it is not, and make its storage exist on this node."""
        d = self.manager.ensure_queue(HOOKS_QUEUE)

        def undefined(failure: Any) -> Deferred:
            from fireworq.queue_errors import UndefinedQueue

            failure.trap(UndefinedQueue)
            return self.manager.put_queue(hooks_queue_definition())

        d.addErrback(undefined)
        if not self._queue_ready:
            def prepare(_: object) -> Deferred:
                return self._jobs.prepare_queue(HOOKS_QUEUE)

            def prepared(_: object) -> None:
                self._queue_ready = True

            d.addCallback(prepare)
            d.addCallback(prepared)
        d.addCallback(lambda _: None)
        return d

    # -- the API's changes -----------------------------------------------------------

    def hooks(self) -> "Deferred[List[HookDefinition]]":
        """Every hook, by name (from the store, so every node answers alike)."""
        return self.store.load_all()

    def find(self, name: str) -> "Deferred[Optional[HookDefinition]]":
        """One hook, or None."""
        return self.store.find(name)

    def put(self, hook: HookDefinition) -> "Deferred[HookDefinition]":
        """Create or replace a hook; applied on this node at once."""
        d = self.store.put(hook)
        d.addCallback(lambda _: self.refresh())
        d.addCallback(lambda _: hook)
        return d

    def delete(self, name: str) -> "Deferred[Optional[HookDefinition]]":
        """Delete a hook; fire with it as it was, or None.  Applied on this node at once."""
        d = self.store.delete(name)

        def deleted(hook: Optional[HookDefinition]) -> Deferred:
            done = self.refresh()
            done.addCallback(lambda _: hook)
            return done

        d.addCallback(deleted)
        return d
