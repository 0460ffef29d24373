"""
Fuzzing the real server with schemathesis, driven by fireworq/openapi.yaml.

One test starts ``twistd fireworq`` (sqlite store) and a worker, and runs
the schemathesis command line against the server in a child process: every
operation of the description, with valid and invalid data (examples,
boundary values, random data and sequences that follow the description's
links), a fixed seed and a bounded number of examples.  It requires:

- no 5xx answer (``not_a_server_error``);
- every answer conforms to the description: documented status code, content
  type, headers and body schema;
- invalid requests are refused with a 4xx (``negative_data_rejection``);
- methods the description does not list are answered 405 (``unsupported_method``);
- afterwards the server still answers ``/health`` with 200 and its error log
  holds no internal error.

Pushed jobs would be delivered to whatever URL the fuzzer invents, so a
schemathesis hook (at the end of this module, loaded by schemathesis from
this file) points every valid worker URL at the test's own worker.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from typing import Any, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.support.cases import ServerTestCase
from tests.support.polling import wait_until
from tests.support.server import REPO, FireworqProcess

#: The description the fuzzer reads (the packaged one, which the server serves).
SPEC = os.path.join(REPO, "fireworq", "openapi.yaml")

#: Reproducible runs: the same seed gives the same generated requests.
SEED = 20240607

#: Test cases per operation and phase of the main run (about 3800 requests
#: for its ~50 operations; 50-60 s on two cores at load 7, 112 s at load 12).
MAX_EXAMPLES = 50

#: The main run's phases.
PHASES = ("examples", "coverage", "fuzzing", "stateful")

#: Test cases per operation and phase of the runs with auth on: their point
#: is the auth gate on every route (tokens, tenants), which fewer cases show
#: as well; they also skip the coverage phase (boundary values of every
#: field, whatever max_examples says: the main run checks those).
AUTH_MAX_EXAMPLES = 20
AUTH_PHASES = ("examples", "fuzzing", "stateful")

#: Operations the fuzzer leaves out: GET /events streams without end (every
#: request would wait out the request timeout); tests/test_events_e2e.py
#: covers it.
EXCLUDED_OPERATIONS = ("events",)

#: A run's time limit: this much for the fuzzer's start and the test's own
#: checks, plus per operation a fixed share (examples phase; the coverage
#: phase, when run, does not depend on max_examples) and a share per case of
#: the fuzzing phase.  Measured at load 12 on two cores: examples 0.1 s,
#: coverage 0.6 s per operation, fuzzing 0.027 s per case -- the limits are
#: about twice that, so that a busy machine passes and a hung run still ends
#: (a flat 80 s ran out for 54 operations near load 10).
BUDGET_BASE = 20.0
BUDGET_PER_OPERATION = 0.4
BUDGET_COVERAGE_PER_OPERATION = 1.2
BUDGET_PER_CASE = 0.05


def fuzzed_operations(spec: str = SPEC) -> int:
    """How many operations of the description the fuzzer runs."""
    import yaml

    with open(spec) as f:
        paths = yaml.safe_load(f)["paths"]
    ids = [
        operation.get("operationId")
        for item in paths.values()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch", "head", "options") and isinstance(operation, dict)
    ]
    return sum(1 for op in ids if op not in EXCLUDED_OPERATIONS)


def run_budget(max_examples: int, phases: tuple = PHASES, operations: Optional[int] = None) -> float:
    """
    Seconds a fuzz run of ``max_examples`` cases per operation and the
    given ``phases`` may take: it grows with the number of operations
    (every new route adds its cases), so a new route does not make the run
    overrun its limit.
    """
    if operations is None:
        operations = fuzzed_operations()
    per_operation = BUDGET_PER_OPERATION + BUDGET_PER_CASE * max_examples
    if "coverage" in phases:
        per_operation += BUDGET_COVERAGE_PER_OPERATION
    return BUDGET_BASE + operations * per_operation


#: What every answer is checked for.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
)

#: The environment variable telling the hook where the worker listens.
WORKER_ENV = "FIREWORQ_FUZZ_WORKER"


def schemathesis_command(
    base_url: str,
    report_dir: str,
    token: Optional[str] = None,
    max_examples: int = MAX_EXAMPLES,
    phases: tuple = PHASES,
) -> List[str]:
    """The schemathesis command line of the fuzz run (every request with ``token``, if given)."""
    auth = ["--header", f"Authorization: Bearer {token}"] if token else []
    excluded = [arg for op in EXCLUDED_OPERATIONS for arg in ("--exclude-operation-id", op)]
    return [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        SPEC,
        "--url",
        base_url,
        "--seed",
        str(SEED),
        "--max-examples",
        str(max_examples),
        "--checks",
        ",".join(CHECKS),
        "--phases",
        ",".join(phases),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--max-redirects",
        "0",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        report_dir,
        "--no-color",
    ] + excluded + auth


class _Collect(ProcessProtocol):
    """Collects a child's output; ``ended`` fires with its exit code."""

    def __init__(self) -> None:
        self.output: List[bytes] = []
        self.ended: Deferred = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if reason.check(ProcessDone):
            code: Optional[int] = 0
        elif reason.check(ProcessTerminated):
            code = reason.value.exitCode
            if code is None:
                code = -(reason.value.signal or 1)
        else:  # pragma: no cover - not raised by spawnProcess
            code = -1
        self.ended.callback(code)

    def text(self) -> str:
        return b"".join(self.output).decode("utf-8", "replace")


def failures_section(output: str, limit: int = 12000) -> str:
    """The part of schemathesis' report that explains the failures."""
    start = output.find("= FAILURES =")
    if start == -1:
        return output[-limit:]
    start = output.rfind("\n", 0, start) + 1
    return output[start : start + limit]


class BudgetTests(SynchronousTestCase):
    """The fuzz runs' time limits follow the description's size."""

    def test_operations_of_the_description(self) -> None:
        import yaml

        with open(SPEC) as f:
            paths = yaml.safe_load(f)["paths"]
        every = [op["operationId"] for item in paths.values() for op in item.values() if isinstance(op, dict) and "operationId" in op]
        self.assertEqual(fuzzed_operations(), len(every) - len(EXCLUDED_OPERATIONS))

    def test_budget_grows_with_operations(self) -> None:
        # 53 operations took 112 s at load 12 (a flat 80 s limit ran out);
        # the limit grows with the operations, about twice the measured time.
        self.assertGreater(run_budget(MAX_EXAMPLES, PHASES, 53), 2 * 112)
        self.assertGreater(run_budget(MAX_EXAMPLES, PHASES, 100), run_budget(MAX_EXAMPLES, PHASES, 53))
        self.assertGreaterEqual(FuzzTests.budget, run_budget(MAX_EXAMPLES, PHASES, 53))
        self.assertGreater(FuzzTests.timeout, FuzzTests.budget)
        # The auth runs: fewer cases, no coverage phase (~85 s at load 12 with it, 20 cases).
        self.assertEqual((AuthFuzzTests.phases, TenantFuzzTests.max_examples), (AUTH_PHASES, AUTH_MAX_EXAMPLES))
        self.assertNotIn("coverage", AUTH_PHASES)
        self.assertGreater(TenantFuzzTests.budget, 80.0)
        self.assertGreater(TenantFuzzTests.timeout, TenantFuzzTests.budget)
        # A ceiling, not the usual time: even so the module stays under ~8 min.
        total = FuzzTests.budget + AuthFuzzTests.budget + TenantFuzzTests.budget
        self.assertLess(total, 8 * 60)


class FuzzTests(ServerTestCase):
    """Schemathesis against a real server."""

    #: Cases per operation and phase, and the run's time limit (which grows with the operations).
    max_examples = MAX_EXAMPLES
    phases = PHASES
    budget = run_budget(MAX_EXAMPLES, PHASES)
    timeout = int(budget) + 60
    #: Server settings of the run, and the token every request carries.
    settings: dict = {}
    token: Optional[str] = None

    def api(self, server: FireworqProcess, method: str, path: str, body: Any = None) -> Deferred:
        """One API call of the test itself (with the run's token)."""
        if self.token is None:
            return server.call(method, path, body)
        from tests.test_auth_cluster import call

        return call(server, method, path, self.token, body)

    @inlineCallbacks
    def seed_failure_log(self, server: FireworqProcess, count: int = 5):
        """
        Give the failure log of the default queue a few entries (ids from 1),
        so that the failure-log operations find something to show, retry and
        delete.
        """
        for _ in range(count):
            code, body = yield self.api(server, 
                "POST", "/job/seed", {"url": self.worker.url("/permanent"), "payload": {"seed": 1}}
            )
            self.assertEqual(code, 200, body)

        def failed():
            d = self.api(server, "GET", "/queue/default/failed")
            d.addCallback(lambda r: len(r[1]["failed_jobs"]) >= count)
            return d

        yield wait_until(failed, 15, message="the seeded jobs to fail")

    @inlineCallbacks
    def test_schemathesis(self):
        if importlib.util.find_spec("schemathesis") is None:
            self.fail("schemathesis is not installed: pip install -e '.[test]'")
        server = yield self.server(**self.settings)
        yield self.seed_failure_log(server)
        # Signed deliveries: the default queue signs, so the fuzzed pushes
        # are signed, and its signing-key operations find secrets.  It keeps
        # finished jobs (job history), so job answers carry state, attempts
        # and results, and /completed and job retries find jobs.
        code, body = yield self.api(server, "PUT", "/queue/default", {"signing": True, "retention": 3600})
        self.assertEqual(code, 200, body)
        code, body = yield self.api(server, "POST", "/job/seed", {"url": self.worker.url("/success"), "name": "seed"})
        self.assertEqual(code, 200, body)

        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        env["SCHEMATHESIS_HOOKS"] = os.path.abspath(__file__)
        env[WORKER_ENV] = f"127.0.0.1:{self.worker.port}"
        report_dir = os.path.join(self.workdir, "schemathesis-report")
        collect = _Collect()
        child = reactor.spawnProcess(
            collect,
            sys.executable,
            schemathesis_command(server.url(""), report_dir, self.token, self.max_examples, self.phases),
            env=env,
            path=self.workdir,
        )

        def overrun() -> None:
            collect.output.append(f"\n*** killed after {self.budget:.0f}s ***\n".encode())
            child.signalProcess(signal.SIGKILL)

        deadline = reactor.callLater(self.budget, overrun)
        code = yield collect.ended
        if deadline.active():
            deadline.cancel()
        output = collect.text()
        with open(os.path.join(self.workdir, "schemathesis.log"), "w") as f:
            f.write(output)
        self.assertEqual(
            code,
            0,
            f"schemathesis found problems (exit status {code}; full output in "
            f"{self.workdir}/schemathesis.log):\n{failures_section(output)}",
        )
        self.assertIn("generated", output)

        status, body = yield self.api(server, "GET", "/health")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "ok")
        internal = [
            line
            for line in server.stderr().splitlines()
            if '"level":"fatal"' in line or "Traceback" in line
        ]
        self.assertEqual(internal, [], "the server logged internal errors")
        self.assertIsNone(server.process.poll(), "the server exited")


class AuthFuzzTests(FuzzTests):
    """
    The same run against a server with auth on, every request carrying the
    admin token (so the token routes are fuzzed too); afterwards a request
    without a token is still refused.
    """

    settings = {"auth": "on", "admin_token": "fuzz-admin-token-0123456789abcdef"}
    token = "fuzz-admin-token-0123456789abcdef"
    max_examples = AUTH_MAX_EXAMPLES
    phases = AUTH_PHASES
    budget = run_budget(AUTH_MAX_EXAMPLES, AUTH_PHASES)
    timeout = int(budget) + 60

    @inlineCallbacks
    def test_schemathesis(self):
        yield super().test_schemathesis()
        server = self.servers[-1]
        status, _ = yield server.call("GET", "/queues")
        self.assertEqual(status, 401)

    @inlineCallbacks
    def server(self, **settings: Any) -> Any:
        server = yield super().server(**settings)
        self.servers = getattr(self, "servers", []) + [server]
        return server


class TenantFuzzTests(AuthFuzzTests):
    """
    The run with a tenant token (every scope, queues ``default*``): lists
    filtered, other queues answered 404, token management refused 403 --
    still no 5xx and every answer as described.
    """

    @inlineCallbacks
    def seed_failure_log(self, server: FireworqProcess, count: int = 5):
        yield super().seed_failure_log(server, count)
        code, made = yield self.api(
            server, "POST", "/tokens", {"name": "fuzz tenant", "scopes": ["push", "read", "admin"], "queues": "default*"}
        )
        self.assertEqual(code, 201, made)
        self.token = made["token"]


# -- the schemathesis hook ----------------------------------------------------
#
# Schemathesis loads this file as the module "_schemathesis_hooks"
# (SCHEMATHESIS_HOOKS); trial imports it as tests.test_fuzz and skips this part.

if __name__ == "_schemathesis_hooks":  # pragma: no cover - runs in the fuzzer
    import hashlib
    from urllib.parse import urlsplit, urlunsplit

    import schemathesis

    from fireworq.names import InvalidName, check_worker_url

    _WORKER = os.environ[WORKER_ENV]
    #: Worker paths (tests/support/worker.py) the rewritten URLs spread over.
    _OUTCOMES = ("/success", "/failure", "/permanent", "/garbage", "/invalid", "/flaky/1")

    def _local(job: Any) -> Any:
        """``job`` with a valid worker URL pointed at the test's worker."""
        if not isinstance(job, dict) or not isinstance(job.get("url"), str):
            return job
        try:
            check_worker_url(job["url"])
        except InvalidName:
            return job  # the server refuses it: keep it as generated
        digest = hashlib.sha256(job["url"].encode("utf-8", "surrogatepass")).digest()
        path = _OUTCOMES[digest[0] % len(_OUTCOMES)]
        query = urlsplit(job["url"]).query
        rewritten = dict(job)
        rewritten["url"] = urlunsplit(("http", _WORKER, path, query, ""))
        return rewritten

    @schemathesis.hook
    def map_body(context: Any, body: Any) -> Any:
        """Keep deliveries of fuzzed jobs on the loopback worker."""
        if isinstance(body, list):
            return [_local(job) for job in body]
        return _local(body)

