"""
What the parts of the queue manager share: the attributes that
L{fireworq.manager.queue_manager.QueueManager} sets up and its parts
(L{fireworq.manager.reload}, L{fireworq.manager.running},
L{fireworq.manager.changes}, L{fireworq.manager.pushes}) read and change.
Declared once here so that each part says what it relies on.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.events import IQueueEvents
from fireworq.model import QueueDefinition
from fireworq.pushing import PushBatcher
from fireworq.queues import QueueService
from fireworq.store.interface import IJobStore, IRepository


class ManagerState:
    """The shared state of L{QueueManager} (annotations only; set by its C{__init__})."""

    _log = Logger()

    store: IJobStore
    repository: IRepository
    default_queue: Optional[QueueDefinition]
    #: Whether the definitions have been loaded once (readiness).
    ready: bool
    #: The other server processes of this host (L{fireworq.server.workers.Siblings}), or None.
    siblings: Optional[Any]
    _pusher: PushBatcher
    #: Makes the dispatcher of a queue definition (the server's L{fireworq.server.node.QueueParts}).
    _make_dispatcher: Callable[[QueueDefinition], QueueDispatcher]
    _events: IQueueEvents
    #: The cached definitions and routings (category -> queue name).
    _definitions: Dict[str, QueueDefinition]
    _routings: Dict[str, str]
    #: The dispatcher of each queue (the hot path: push, kick, reserve).
    _dispatchers: Dict[str, QueueDispatcher]
    #: The service of each queue (the dispatcher's parent).
    _queues: Dict[str, QueueService]
    #: Waiters for a removed queue's service to stop, by name.
    _stopping: Dict[str, List[Deferred]]
    #: The repository revision last loaded (None: never loaded).
    _revision: Optional[str]
    #: Serialises reloads and definition changes.
    _lock: DeferredLock

    # Provided by the other parts (declared here for readers):
    #: L{QueueManager._after_ready}: call now when ready, else once ready (bounded).
    _after_ready: Callable[..., Deferred]
    #: L{RunningQueues._apply}, L{RunningQueues._remove}: start/reconfigure or stop a queue's service.
    _apply: Callable[[QueueDefinition], Deferred]
    _remove: Callable[[str], None]
    #: L{RunningQueues.ensure_queue}: the definition of a queue, started here if defined elsewhere.
    ensure_queue: Callable[[str], Deferred]
