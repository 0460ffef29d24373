"""
The import graph follows the layers of docs/architecture.md:

    tap -> server (service tree) -> web -> queue manager -> dispatch -> lease -> store -> foundation

A module may import modules of its own layer or of lower ones, never of a
higher one (parsed with ast, so imports inside functions count too), and
the Python client (fireworq/client/) imports nothing of the server.

Every module of fireworq/ gets the layer of the longest entry of L{LAYERS}
that names it or a package above it.  A crossing that is known and not yet
untangled is listed in L{KNOWN} with the reason; a new one fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parent.parent / "fireworq"

#: The layers, lowest first.
ORDER = ["foundation", "store", "lease", "dispatch", "manager", "web", "server", "tap"]

#: Module or package -> layer (the longest matching entry wins).
LAYERS: Dict[str, str] = {
    # Values, names, settings and small helpers everything may use.
    "fireworq": "foundation",  # the package itself: __version__
    "fireworq.model": "foundation",
    "fireworq.names": "foundation",
    "fireworq.joboptions": "foundation",
    "fireworq.backoff": "foundation",
    "fireworq.timers": "foundation",
    "fireworq.ordering": "foundation",
    "fireworq.readiness": "foundation",
    "fireworq.queue_errors": "foundation",
    "fireworq.tlsdefer": "foundation",
    "fireworq.events": "foundation",
    "fireworq.logging": "foundation",
    "fireworq.stats": "foundation",
    "fireworq.lazy": "foundation",  # PEP 562 package attributes loaded on first use
    # config.py parses MySQL DSNs to check and mask them: the parser is a
    # pure module (stdlib + attrs), so it counts as foundation wherever it lives.
    "fireworq.config": "foundation",
    "fireworq.preflight": "foundation",  # start-up checks of what settings name
    "fireworq.store.mysql.dsn": "foundation",
    "fireworq.history.record": "foundation",
    "fireworq.history.filters": "foundation",
    # Job events: the event model, renderers (pure: called inside store
    # transactions by hooks), the recorder (an observer) and the ring.
    "fireworq.jobevents": "foundation",
    # Storage: job stores, repositories and the stores of each feature.
    "fireworq.store": "store",
    "fireworq.history": "store",
    "fireworq.schedules": "store",
    "fireworq.signing": "store",
    "fireworq.hooks": "store",
    "fireworq.auth": "store",
    "fireworq.pushing": "store",
    # Leases.
    "fireworq.lease": "lease",
    # Dispatch and the per-queue upkeep that runs while a lease is held.
    "fireworq.dispatch": "dispatch",
    "fireworq.history.cleaner": "dispatch",
    # The queue manager, the per-queue service and the other node-wide services.
    "fireworq.manager": "manager",
    "fireworq.queues": "manager",
    "fireworq.inspection": "manager",
    "fireworq.metrics": "manager",
    "fireworq.schedules.scheduler": "manager",
    "fireworq.schedules.metrics": "manager",
    "fireworq.signing.service": "manager",
    "fireworq.hooks.registry": "manager",
    "fireworq.auth.registry": "manager",
    # HTTP: routes, the site, request gates and body parsers.
    "fireworq.web": "web",
    "fireworq.auth.gate": "web",
    "fireworq.auth.metrics_view": "web",
    "fireworq.joboptions.parse": "web",
    "fireworq.jobevents.stream": "web",
    # The service tree.
    "fireworq.server": "server",
    "fireworq.auth.wiring": "server",  # puts the auth gate and registry together
    "fireworq.service": "server",
    "fireworq.tap": "tap",
}

#: Known upward imports (importer, imported) not yet untangled, with why.
KNOWN: Dict[Tuple[str, str], str] = {
    # The job JSON of an event body is the job JSON the API shows; the
    # renderers live in the web layer and are imported lazily.
    ("fireworq.jobevents.render", "fireworq.web.history"): "job JSON renderers live in web",
    ("fireworq.jobevents.render", "fireworq.web.routes"): "job JSON renderers live in web",
    ("fireworq.jobevents.render", "fireworq.dispatch.deadline"): "expiry wording of the dispatcher",
    ("fireworq.jobevents.model", "fireworq.web.routes"): "timestamps formatted as the API does",
    # Options and defaults read back from a store are re-validated with the
    # request parser, which builds on web/body.py and raises web errors.
    ("fireworq.joboptions.values", "fireworq.joboptions.parse"): "stored options re-validated by the request parser",
}


def layer_of(module: str) -> str:
    """The layer of ``module``: that of its longest entry in L{LAYERS}."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        layer = LAYERS.get(".".join(parts[:size]))
        if layer is not None:
            return layer
    raise KeyError(module)


def modules() -> Iterator[Tuple[str, Path]]:
    """(dotted name, path) of every module of fireworq/."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports_of(module: str, path: Path) -> Set[str]:
    """The fireworq modules ``module`` imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: Set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # ``from fireworq.store import memory`` imports the module memory.
            for alias in node.names:
                found.add(f"{base}.{alias.name}")
    known = {name for name, _ in modules()}
    return {name for name in found if name in known}


class LayerTests(SynchronousTestCase):
    def test_every_module_has_a_layer(self) -> None:
        for module, _ in modules():
            self.assertIn(layer_of(module), ORDER, module)

    def test_no_upward_imports(self) -> None:
        upward: List[str] = []
        seen: Set[Tuple[str, str]] = set()
        for module, path in modules():
            if module.startswith("fireworq.client"):
                continue  # checked below
            mine = ORDER.index(layer_of(module))
            for imported in sorted(imports_of(module, path)):
                theirs = ORDER.index(layer_of(imported))
                if theirs > mine:
                    seen.add((module, imported))
                    if (module, imported) not in KNOWN:
                        upward.append(
                            f"{module} ({ORDER[mine]}) imports {imported} ({ORDER[theirs]})"
                        )
        self.assertEqual(upward, [], "imports against the layers:\n" + "\n".join(upward))
        # A known crossing that is gone must leave the list too.
        self.assertEqual(sorted(set(KNOWN) - seen), [], "untangled: remove from KNOWN")

    def test_web_asks_the_queue_manager(self) -> None:
        """
        The web layer reaches dispatch and leases only through the queue
        manager and the inspection service (store errors and interfaces
        from store/interface.py are fine).
        """
        reaching: List[str] = []
        for module, path in modules():
            if layer_of(module) != "web":
                continue
            for imported in imports_of(module, path):
                if imported.startswith(("fireworq.dispatch", "fireworq.lease")):
                    reaching.append(f"{module} imports {imported}")
        self.assertEqual(reaching, [])

    def test_client_imports_nothing_of_the_server(self) -> None:
        for module, path in modules():
            if not module.startswith("fireworq.client"):
                continue
            outside = {
                name for name in imports_of(module, path)
                if not name.startswith("fireworq.client") and name != "fireworq"
            }
            self.assertEqual(outside, set(), module)

    def test_one_periodic_idiom(self) -> None:
        """Periodic work goes through fireworq/timers.py, not a LoopingCall of its own."""
        users = [
            module for module, path in modules()
            if module != "fireworq.timers" and "LoopingCall" in path.read_text(encoding="utf-8")
        ]
        self.assertEqual(users, [])

    def test_layer_of(self) -> None:
        """The check itself: the longest entry wins; an upward import is seen."""
        self.assertEqual(layer_of("fireworq.history.cleaner"), "dispatch")
        self.assertEqual(layer_of("fireworq.history.memory"), "store")
        self.assertEqual(layer_of("fireworq.store.mysql.dsn"), "foundation")
        self.assertEqual(
            imports_of("fireworq.server.stores", PACKAGE / "server" / "stores.py")
            >= {"fireworq.lease.mysql", "fireworq.store.mysql"},
            True,
        )
