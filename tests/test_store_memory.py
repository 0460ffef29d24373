"""The in-memory driver against the store contract."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from fireworq.store.memory import MemoryJobStore, MemoryRepository
from tests.store_contract import (
    ContractClock,
    ExactNameContractMixin,
    JobOptionsContractMixin,
    QueueDefaultsContractMixin,
    RepositoryContractMixin,
)


class _MemoryStores:
    driverName = "in-memory"

    def makeStores(self, clock: ContractClock):
        store = MemoryJobStore(clock=clock)
        self.addCleanup(store.stop)
        return store.start().addCallback(lambda _: (store, MemoryRepository()))


class MemoryJobStoreContractTests(_MemoryStores, ExactNameContractMixin, TestCase):
    """L{MemoryJobStore} keeps the job store contract."""


class MemoryRepositoryContractTests(_MemoryStores, RepositoryContractMixin, TestCase):
    """L{MemoryRepository} keeps the repository contract."""


class MemoryJobOptionsContractTests(_MemoryStores, JobOptionsContractMixin, TestCase):
    """L{MemoryJobStore} keeps the job options contract (B7)."""


class MemoryQueueDefaultsContractTests(_MemoryStores, QueueDefaultsContractMixin, TestCase):
    """L{MemoryRepository} keeps queue job defaults (B7)."""
