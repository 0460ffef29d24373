"""
The OpenAPI description (fireworq/openapi.yaml, the only copy)
stays true to the server:

- it is a well-formed OpenAPI 3.1 document whose schemas are valid JSON
  Schema (2020-12) and whose references all resolve;
- every route of the Klein application is described, and nothing else is
  (route + method, both ways);
- real answers of the API (in process, over the in-memory store, for every
  operation and its usual errors) have a documented status code and content
  type, and their bodies validate against the documented schemas;
- the server serves the packaged document at ``/openapi.yaml``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import yaml
from jsonschema import Draft202012Validator
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fireworq.config import load
from fireworq.dispatch.dispatcher import QueueDispatcher
from fireworq.lease.sole import SoleLease
from fireworq.events import EventFanout
from fireworq.manager import QueueManager
from fireworq.model import QueueDefinition, Result
from fireworq.pushing import PushBatcher
from fireworq.stats import QueueStats
from fireworq.store.interface import NodeInfo, StoreUnavailable
from fireworq.store.memory import MemoryJobStore, MemoryRepository
from fireworq.inspection import Inspection
from fireworq.web.app import FireworqAPI
from fireworq.web.openapi import openapi_document
from fireworq.web.routes import app
from tests.support.stubapi import stub_request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANONICAL = os.path.join(REPO, "fireworq", "openapi.yaml")
DOCS_COPY = os.path.join(REPO, "docs", "openapi.yaml")

#: The HTTP methods an OpenAPI path item may describe.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_CONVERTER = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")


def load_spec() -> Dict[str, Any]:
    """The canonical description, parsed."""
    with open(CANONICAL, encoding="utf-8") as f:
        return yaml.safe_load(f)


def template(rule: str) -> str:
    """A werkzeug rule (``/queue/<name>``, ``/job/<category:category>``) as an OpenAPI path."""
    return _CONVERTER.sub(r"{\1}", rule)


def app_operations() -> Set[Tuple[str, str]]:
    """
    Every (OpenAPI path, method) the Klein application routes.  HEAD, which
    werkzeug adds to every GET route, is left out.
    """
    FireworqAPI  # every route module is imported (and registered) with it
    found = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                found.add((template(rule.rule), method.lower()))
    return found


def spec_operations(spec: Dict[str, Any]) -> Set[Tuple[str, str]]:
    """Every (path, method) the description describes."""
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) to ``parts`` below the document's root."""
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(spec: Dict[str, Any], ref: str) -> Any:
    """The object at the local reference ``ref`` (``#/components/...``)."""
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def walk(node: Any, where: str = "#") -> Iterator[Tuple[str, Any]]:
    """Every (pointer, value) of a parsed document, depth first."""
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


class DocumentTests(SynchronousTestCase):
    """The document itself."""

    def setUp(self) -> None:
        self.spec = load_spec()

    def test_one_document(self):
        """
        The packaged description is the only one (docs/ held a copy kept
        identical by a test until issue 11); docs/api.md links to it.
        """
        self.assertFalse(os.path.exists(DOCS_COPY), "docs/openapi.yaml must not come back; edit fireworq/openapi.yaml")
        with open(os.path.join(REPO, "docs", "api.md"), encoding="utf-8") as f:
            self.assertIn("](../fireworq/openapi.yaml)", f.read())

    def test_name_patterns_agree_with_the_server(self):
        """The documented name patterns accept exactly the names the server accepts."""
        from fireworq.names import InvalidName, check_category, check_queue_name

        schemas = self.spec["components"]["schemas"]
        samples = [".", "..", "...", ".a", "a.", "a", "ab", "a/b", "/a", "a\u0085b", "a\u009fb", "a\u0080",
                   "a\u00a0b", "caf\u00e9", "a\x00b", "a\x1fb", "a\x7fb", "x" * 10, "\u2028",
                   "/", "./", "../", "x/..", "x/../y", "//", "a/"]
        for schema, check in (("QueueNameText", check_queue_name), ("CategoryText", check_category)):
            pattern = re.compile(schemas[schema]["pattern"])
            for name in samples:
                try:
                    check(name)
                    accepted = True
                except InvalidName:
                    accepted = False
                self.assertEqual(bool(pattern.search(name)), accepted, f"{schema}: {name!r}")

    def test_openapi_3_1(self):
        self.assertEqual(self.spec["openapi"], "3.1.0")
        for key in ("title", "version", "description"):
            self.assertTrue(self.spec["info"].get(key), key)

    def test_version_is_the_servers(self):
        from fireworq import __version__

        self.assertEqual(self.spec["info"]["version"], __version__)

    def test_references_resolve(self):
        for where, node in walk(self.spec):
            if isinstance(node, dict) and isinstance(node.get("$ref"), str):
                try:
                    resolve(self.spec, node["$ref"])
                except (KeyError, IndexError, TypeError):
                    self.fail(f"{where}: unresolved $ref {node['$ref']}")

    def test_schemas_are_valid_json_schema(self):
        for name, schema in self.spec["components"]["schemas"].items():
            Draft202012Validator.check_schema(schema)
        for where, node in walk(self.spec["paths"], "#/paths"):
            if isinstance(node, dict) and isinstance(node.get("schema"), dict):
                Draft202012Validator.check_schema(node["schema"])

    def test_operations_are_complete(self):
        """Unique operation ids; documented responses; path parameters declared both ways."""
        ids: List[str] = []
        for path, item in self.spec["paths"].items():
            shared = item.get("parameters", [])
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                where = f"{method.upper()} {path}"
                ids.append(operation["operationId"])
                self.assertTrue(operation.get("summary"), where)
                self.assertTrue(operation.get("responses"), where)
                declared = {
                    p["name"]
                    for p in (
                        resolve(self.spec, p["$ref"]) if "$ref" in p else p
                        for p in shared + operation.get("parameters", [])
                    )
                    if p["in"] == "path"
                }
                self.assertEqual(declared, set(re.findall(r"{([^}]+)}", path)), where)
        self.assertEqual(len(ids), len(set(ids)), "operation ids must be unique")

    def test_links_name_operations(self):
        ids = {
            op["operationId"]
            for item in self.spec["paths"].values()
            for method, op in item.items()
            if method in METHODS
        }
        for where, node in walk(self.spec):
            if where.split("/")[-2:-1] == ["links"] and isinstance(node, dict) and "operationId" in node:
                self.assertIn(node["operationId"], ids, where)


class RouteCoverageTests(SynchronousTestCase):
    """The description and the Klein application list the same operations."""

    def test_every_route_is_described(self):
        missing = app_operations() - spec_operations(load_spec())
        self.assertEqual(
            sorted(missing),
            [],
            "routes of the Klein app that fireworq/openapi.yaml does not describe "
            "(add them to it)",
        )

    def test_every_described_operation_is_routed(self):
        extra = spec_operations(load_spec()) - app_operations()
        self.assertEqual(
            sorted(extra), [], "operations described in fireworq/openapi.yaml that no route serves"
        )

    def test_template(self):
        self.assertEqual(template("/queue/<name>/job/<job_id>"), "/queue/{name}/job/{job_id}")
        self.assertEqual(template("/job/<category:category>"), "/job/{category}")
        self.assertEqual(template("/ui/<path:asset>"), "/ui/{asset}")
        self.assertEqual(template("/x/<int(min=1):n>"), "/x/{n}")


# -- real answers against the schemas -------------------------------------------

NODE = NodeInfo("node-a", "host-a")


class HeldDeliverer:
    """Holds every delivery until the test answers it."""

    def __init__(self) -> None:
        self.pending: Dict[int, Deferred] = {}

    def deliver(self, queue_name: str, job: Any) -> Deferred:
        d: Deferred = Deferred()
        self.pending[job.id] = d
        return d


class ConformanceTests(SynchronousTestCase):
    """
    Every answer of ``call`` is checked against the description: a documented
    status code and content type, and a body valid under the schema.
    """

    def setUp(self) -> None:
        self.spec = load_spec()
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        now = lambda: int(self.clock.seconds() * 1000)
        self.store = MemoryJobStore(clock=now)
        self.repository = MemoryRepository()
        self.successResultOf(self.store.start())
        config = load({"driver": "in-memory", "queue_default": "default"}, environ={})
        stats = QueueStats(self.clock, now)
        events = EventFanout([stats])
        self.deliverer = HeldDeliverer()

        def make_dispatcher(definition: QueueDefinition) -> QueueDispatcher:
            lease = SoleLease(definition.name, self.store, NODE, 1, self.clock)
            return QueueDispatcher(definition, self.store, lease, self.deliverer, events, self.clock)

        self.manager = QueueManager(
            self.store,
            self.repository,
            PushBatcher(self.store, self.clock),
            make_dispatcher,
            events,
            stats,
            self.clock,
            default_queue=QueueDefinition("default", 200, 2),
        )
        self.manager.startService()
        self.clock.advance(0)
        self.addCleanup(self.manager.stopService)
        inspection = Inspection(self.store, self.repository, self.manager)
        self.stub = StubTreq(FireworqAPI(self.manager, inspection, config).app.resource())
        self.checked: Set[Tuple[str, str, str]] = set()

    # -- checking one answer ---------------------------------------------------

    def operation(self, method: str, path: str) -> Tuple[str, Dict[str, Any]]:
        """The description's path template and operation that ``method path`` reaches."""
        adapter = app.url_map.bind("fireworq.test")
        rule, _ = adapter.match(path.split("?")[0], method=method, return_rule=True)
        path_template = template(rule.rule)
        item = self.spec["paths"].get(path_template)
        self.assertIsNotNone(item, f"{path_template} is not described")
        operation = item.get(method.lower())
        self.assertIsNotNone(operation, f"{method} {path_template} is not described")
        return path_template, operation

    def conforms(
        self, method: str, path: str, code: int, content_type: str, content: bytes
    ) -> None:
        """Fail unless the answer is as the description says."""
        path_template, operation = self.operation(method, path)
        where = f"{method} {path} -> {code}"
        responses = operation["responses"]
        self.assertIn(str(code), responses, f"{where}: undocumented status code")
        response = responses[str(code)]
        response_pointer = pointer("paths", path_template, method.lower(), "responses", str(code))
        if "$ref" in response:
            response_pointer = response["$ref"]
            response = resolve(self.spec, response["$ref"])
        media_type = content_type.split(";")[0].strip()
        documented = response.get("content", {})
        self.assertIn(media_type, documented, f"{where}: undocumented content type {content_type}")
        if media_type != "application/json":
            return
        body = json.loads(content)
        schema_pointer = f"{response_pointer}/content/{pointer(media_type)[2:]}/schema"
        validator = Draft202012Validator({**self.spec, "$ref": schema_pointer})
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        self.assertEqual(
            [f"{list(e.absolute_path)}: {e.message}" for e in errors],
            [],
            f"{where}: the body does not match {schema_pointer}:\n{json.dumps(body)[:2000]}",
        )
        self.checked.add((path_template, method.lower(), str(code)))

    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None) -> Tuple[int, Any]:
        """Make a request, check its answer, return (code, decoded body)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response, content = stub_request(self, self.stub, self.clock, method, path, data, allow_redirects=False)
        content_type = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1")
        self.conforms(method, path, response.code, content_type, content)
        if content_type.startswith("application/json"):
            return response.code, json.loads(content)
        return response.code, content.decode("utf-8", "replace")

    def answer(self, job_id: int, result: Result) -> None:
        """Answer the held delivery of ``job_id``."""
        self.deliverer.pending.pop(job_id).callback(result)
        self.clock.advance(1)

    # -- the scenarios -----------------------------------------------------------

    def test_jobs(self):
        self.assertEqual(self.call("POST", "/job/a/b", {"url": "http://w/x", "payload": {"k": [1]}})[0], 200)
        self.assertEqual(self.call("POST", "/job/c", {"url": "http://w/x", "payload": "text", "run_after": 60,
                                                      "max_retries": 3, "retry_delay": 5, "timeout": 9})[0], 200)
        self.assertEqual(self.call("POST", "/job/c", {"url": "http://w/x"})[0], 200)
        self.assertEqual(self.call("POST", "/jobs/c", [{"url": "http://w/1"}, {"url": "http://w/2", "payload": 1}])[0], 200)
        self.assertEqual(self.call("POST", "/job/c", {"url": "ftp://w/"})[0], 400)
        self.assertEqual(self.call("POST", "/job/c", raw=b"{")[0], 400)
        self.assertEqual(self.call("POST", "/jobs/c", [])[0], 400)
        self.assertEqual(self.call("POST", "/jobs/c", [{"url": "http://w/"}, {}])[0], 400)
        self.assertEqual(self.call("POST", "/job/a%01b", {"url": "http://w/"})[0], 400)

    def test_unknown_category_is_404(self):
        self.manager.default_queue = None
        self.assertEqual(self.call("POST", "/job/nowhere", {"url": "http://w/"})[0], 404)
        self.assertEqual(self.call("POST", "/jobs/nowhere", [{"url": "http://w/"}])[0], 404)

    def test_queues(self):
        self.assertEqual(self.call("PUT", "/queue/q1", {})[0], 200)
        self.assertEqual(self.call("PUT", "/queue/q2", {"polling_interval": 50, "max_workers": 3,
                                                        "max_dispatches_per_second": 2.5, "max_burst_size": 4})[0], 200)
        self.assertEqual(self.call("GET", "/queues")[0], 200)
        self.assertEqual(self.call("GET", "/queue/q2")[0], 200)
        self.assertEqual(self.call("GET", "/queue/q2/node")[0], 200)
        self.assertEqual(self.call("GET", "/queue/q2/stats")[0], 200)
        self.assertEqual(self.call("GET", "/queues/stats")[0], 200)
        self.assertEqual(self.call("PUT", "/queue/q3", {"max_workers": -1})[0], 400)
        self.assertEqual(self.call("PUT", "/queue/q-1", {})[0], 200)
        self.assertEqual(self.call("PUT", "/queue/q.1", {})[0], 200)
        self.assertEqual(self.call("PUT", "/queue/" + "q" * 256, {})[0], 400)
        self.assertEqual(self.call("DELETE", "/queue/q1")[0], 200)
        for path in ("/queue/q1", "/queue/q1/node", "/queue/q1/stats"):
            self.assertEqual(self.call("GET", path)[0], 404)
        self.assertEqual(self.call("DELETE", "/queue/q1")[0], 404)

    def test_routings(self):
        self.call("PUT", "/queue/q", {})
        self.assertEqual(self.call("PUT", "/routing/a/b", {"queue_name": "q"})[0], 200)
        self.assertEqual(self.call("GET", "/routings")[0], 200)
        self.assertEqual(self.call("GET", "/routing/a/b")[0], 200)
        self.assertEqual(self.call("PUT", "/routing/x", {"queue_name": "undefined"})[0], 404)
        self.assertEqual(self.call("PUT", "/routing/x", {"queue_name": 1})[0], 400)
        self.assertEqual(self.call("DELETE", "/routing/a/b")[0], 200)
        self.assertEqual(self.call("GET", "/routing/a/b")[0], 404)
        self.assertEqual(self.call("DELETE", "/routing/a/b")[0], 404)

    def test_inspection(self):
        first = self.call("POST", "/job/c", {"url": "http://w/", "payload": {"a": 1}})[1]
        self.call("POST", "/job/c", {"url": "http://w/", "payload": "text"})
        self.call("POST", "/job/c", {"url": "http://w/"})
        self.call("POST", "/job/c", {"url": "http://w/", "run_after": 60, "max_retries": 2})
        for state in ("grabbed", "waiting", "deferred"):
            code, page = self.call("GET", f"/queue/default/{state}?limit=1&order=asc")
            self.assertEqual(code, 200)
            self.assertTrue(page["jobs"], state)
        self.assertEqual(self.call("GET", "/queue/default/grabbed?limit=1")[1]["next_cursor"] != "", True)
        self.assertEqual(self.call("GET", f"/queue/default/job/{first['id']}")[0], 200)
        self.assertEqual(self.call("GET", "/queue/default/waiting?limit=0")[0], 400)
        self.assertEqual(self.call("GET", "/queue/default/waiting?order=up")[0], 400)
        self.assertEqual(self.call("GET", "/queue/default/waiting?cursor=bad")[0], 400)
        self.assertEqual(self.call("GET", "/queue/nowhere/waiting")[0], 404)
        self.assertEqual(self.call("GET", "/queue/default/job/x")[0], 400)
        self.assertEqual(self.call("GET", "/queue/default/job/999")[0], 404)
        # Changed with queue control (protocol "Queue control"): DELETE of a
        # GRABBED job (the first one is being delivered here) cancels it and
        # answers 202; a waiting or deferred job is still deleted with 200.
        self.assertEqual(self.call("DELETE", f"/queue/default/job/{first['id']}")[0], 202)
        self.clock.advance(0.01)  # the aborted delivery's job is deleted
        self.assertEqual(self.call("DELETE", f"/queue/default/job/{first['id']}")[0], 404)
        deferred = self.call("GET", "/queue/default/deferred?limit=1")[1]["jobs"][0]
        self.assertEqual(self.call("DELETE", f"/queue/default/job/{deferred['id']}")[0], 200)
        self.assertEqual(self.call("POST", "/queue/default/pause")[1]["paused"], True)
        self.assertEqual(self.call("POST", "/queue/default/resume")[1].get("paused"), None)
        self.assertEqual(self.call("POST", "/queue/default/purge")[0], 200)
        self.assertEqual(self.call("POST", "/queue/nowhere/pause")[0], 404)

    def test_failure_log(self):
        job = self.call("POST", "/job/c", {"url": "http://w/", "payload": {"p": 1}, "timeout": 3})[1]
        self.clock.advance(0)
        self.answer(job["id"], Result("failure", 500, "boom"))
        other = self.call("POST", "/job/c", {"url": "http://w/"})[1]
        self.clock.advance(0)
        self.answer(other["id"], Result("internal-failure", 0, "Request failed: refused"))
        code, page = self.call("GET", "/queue/default/failed?limit=1")
        self.assertEqual((code, len(page["failed_jobs"])), (200, 1))
        self.assertEqual(self.call("GET", "/queue/default/failed?order=created")[0], 200)
        entry = page["failed_jobs"][0]["id"]
        self.assertEqual(self.call("GET", f"/queue/default/failed/{entry}")[0], 200)
        self.assertEqual(self.call("POST", f"/queue/default/failed/{entry}/retry")[0], 200)
        self.assertEqual(self.call("POST", f"/queue/default/failed/{entry}/retry")[0], 404)
        remaining = self.call("GET", "/queue/default/failed")[1]["failed_jobs"][0]["id"]
        self.assertEqual(self.call("DELETE", f"/queue/default/failed/{remaining}")[0], 200)
        self.assertEqual(self.call("GET", f"/queue/default/failed/{remaining}")[0], 404)
        self.assertEqual(self.call("GET", "/queue/default/failed/0")[0], 404)
        self.assertEqual(self.call("GET", "/queue/default/failed/x")[0], 400)
        self.assertEqual(self.call("GET", "/queue/default/failed?order=oldest")[0], 400)

    def test_operations(self):
        self.assertEqual(self.call("GET", "/")[0], 200)
        self.assertEqual(self.call("GET", "/version")[0], 200)
        self.assertEqual(self.call("GET", "/settings")[0], 200)
        self.assertEqual(self.call("GET", "/stats")[0], 200)
        self.assertEqual(self.call("GET", "/health")[0], 200)
        self.assertEqual(self.call("GET", "/metrics")[0], 404)  # no Metrics in this process

    def test_unavailable(self):
        self.store.ping = lambda: fail(StoreUnavailable("down"))
        self.assertEqual(self.call("GET", "/health")[0], 503)
        self.manager.ready = False
        self.assertEqual(self.call("POST", "/job/c", {"url": "http://w/"})[0], 503)
        self.assertEqual(self.call("GET", "/queue/default/waiting")[0], 503)

    def test_openapi_document(self):
        code, text = self.call("GET", "/openapi.yaml")
        self.assertEqual(code, 200)
        with open(CANONICAL, encoding="utf-8") as f:
            self.assertEqual(text, f.read())
        self.assertEqual(openapi_document(), text.encode("utf-8"))

    def test_console(self):
        self.assertEqual(self.call("GET", "/ui")[0], 302)
        self.assertEqual(self.call("GET", "/ui/")[0], 200)
        self.assertEqual(self.call("GET", "/ui/no-such-file.js")[0], 404)
        self.assertEqual(self.call("GET", "/ui/../setup.py")[0], 404)
