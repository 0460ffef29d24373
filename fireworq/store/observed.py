"""
L{ObservedStore}: a proxy of a store that reports every failed call, so
that the metrics can count database errors (``fireworq_db_errors_total``)
without the stores knowing about metrics.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from zope.interface import directlyProvides, providedBy

#: Called with (store, operation) for every failed store call.
ErrorObserver = Callable[[str, str], None]


class ObservedStore:
    """
    A store that reports its failed calls and is otherwise the store itself:
    every attribute is the wrapped store's, public methods are wrapped so that
    a call that raises, or returns a Deferred that fails, is reported to
    ``on_error(kind, method name)`` before the failure goes on unchanged.  A
    cancelled call is not a store error and is not reported.

    The proxy provides the interfaces the wrapped store provides.
    """

    def __init__(self, store: Any, kind: str, on_error: ErrorObserver) -> None:
        self.observed = store
        self.kind = kind
        self._on_error = on_error
        directlyProvides(self, providedBy(store))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.observed, name)
        if name.startswith("_") or not callable(value):
            return value
        wrapped = self._wrap(name, value)
        # Found directly from now on: no new wrapper per call.  The wrapper
        # still looks the method up on every call, so replacing a method of
        # the store (as tests do) takes effect.
        setattr(self, name, wrapped)
        return wrapped

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        store = self.observed

        def observed(*args: Any, **kwargs: Any) -> Any:
            try:
                result = getattr(store, name)(*args, **kwargs)
            except Exception:
                self._on_error(self.kind, name)
                raise
            if isinstance(result, Deferred):
                result.addErrback(self._failed, name)
            return result

        observed.__name__ = name
        observed.__doc__ = getattr(method, "__doc__", None)
        return observed

    def _failed(self, failure: Failure, name: str) -> Failure:
        if failure.check(CancelledError) is None:
            self._on_error(self.kind, name)
        return failure

    def __repr__(self) -> str:
        return f"<ObservedStore {self.kind} of {self.observed!r}>"


def observe_stores(stores: Any, on_error: ErrorObserver) -> None:
    """
    Replace the stores of a L{fireworq.service.Stores} (``jobs``,
    ``repository`` and, when present, ``leases``) by L{ObservedStore}s that
    report failed calls as ``(kind, operation)`` with kind ``jobs``,
    ``repository`` or ``lease``.  A repository that is the job store itself
    stays the same object.  Idempotent.

    Only the users that take the stores from ``stores`` after this call see
    the wrapped ones.
    """
    jobs = stores.jobs
    if isinstance(jobs, ObservedStore):
        return
    observed_jobs = ObservedStore(jobs, "jobs", on_error)
    if stores.repository is jobs:
        stores.repository = observed_jobs
    else:
        stores.repository = ObservedStore(stores.repository, "repository", on_error)
    stores.jobs = observed_jobs
    if getattr(stores, "leases", None) is not None:
        stores.leases = ObservedStore(stores.leases, "lease", on_error)
