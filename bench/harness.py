"""
Processes of a benchmark run: the server(s) under test, the worker, the
load generator and (for MySQL) a throwaway MariaDB -- started, waited for
and stopped synchronously (the benchmark itself runs no reactor).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Tuple[int, Any]:
    """One HTTP request; (status, decoded JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            code, content = response.status, response.read()
    except urllib.error.HTTPError as e:
        code, content = e.code, e.read()
    try:
        return code, json.loads(content)
    except ValueError:
        return code, content.decode("utf-8", "replace")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as e:  # keep polling
            last = e
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last!r})")


def comparison_settings(store: str, workdir: str, database: Any, label: str) -> Dict[str, str]:
    """
    The settings of one server of a side-by-side comparison (bench.ab,
    bench.instructions): keep-alive on both sides, logs in ``workdir``,
    polling every 200 ms, a fresh database (MySQL) or file (sqlite) named
    after ``label``.
    """
    settings = {
        "driver": store,
        "keep_alive": "true",
        "dispatch_keep_alive": "true",
        "queue_log": os.path.join(workdir, "queue.log"),
        "access_log": os.path.join(workdir, "access.log"),
        "queue_default_polling_interval": "200",
    }
    if database is not None:
        settings["mysql_dsn"] = database.fresh_database(label).dsn
    if store == "sqlite":
        settings["sqlite_path"] = os.path.join(workdir, f"{label}-{time.monotonic_ns()}.sqlite3")
    return settings


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: CPUs of the machine, and whether to pin processes to them (``--pin``).
CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
PINNING: Dict[str, List[int]] = {}


def pin(role: str, pid: int) -> None:
    """Restrict process ``pid`` to the CPUs planned for ``role`` (if pinning)."""
    cpus = PINNING.get(role)
    if not cpus:
        return
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def plan_pinning(servers: int) -> None:
    """
    On a machine with few cores, give the server process(es) CPUs of their
    own and the tools (load generator, worker, MariaDB) the rest, so that
    the figures do not depend on how the scheduler happens to mix them.
    """
    if len(CPUS) < 2:
        return
    PINNING["server"] = CPUS[:max(1, len(CPUS) // 2)] if servers == 1 else CPUS
    PINNING["tools"] = CPUS[max(1, len(CPUS) // 2):] if servers == 1 else CPUS


class Process:
    """A child process with its output in a log file."""

    role = "tools"

    def __init__(self, args: List[str], log_path: str, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None) -> None:
        self.log_path = log_path
        log = open(log_path, "ab")
        self.popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        log.close()
        pin(self.role, self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Server(Process):
    """A ``twistd fireworq`` under test."""

    role = "server"

    def __init__(self, workdir: str, settings: Dict[str, str], repo: str = REPO) -> None:
        """Start ``twistd fireworq`` with the code of checkout ``repo`` (default: this one)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        env["FIREWORQ_BIND"] = f"127.0.0.1:{self.port}"
        for name, value in settings.items():
            env["FIREWORQ_" + name.upper()] = value
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "--pidfile=", "-n", "fireworq"]
        super().__init__(args, os.path.join(workdir, f"server-{self.port}.log"), env=env, cwd=workdir)
        wait_for(lambda: call("GET", self.url + "/health", timeout=2)[0] == 200, 60, "the server")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pids(self) -> List[int]:
        """The server's processes: the one started, then its children (``workers`` > 1)."""
        return [self.pid] + children(self.pid)

    def rss(self) -> int:
        """Resident memory of the server (the sum of its processes)."""
        total = 0
        for pid in self.pids():
            try:
                total += rss_bytes(pid)
            except OSError:
                pass
        return total


def children(pid: int) -> List[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


class Worker(Process):
    """The benchmark worker (bench/worker.py) in its own process."""

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, "-m", "bench.worker", str(self.port)],
                         os.path.join(workdir, "worker.log"), cwd=REPO)
        wait_for(lambda: call("GET", self.url + "/stats", timeout=2)[0] == 200, 30, "the worker")

    def stats(self) -> dict:
        return call("GET", self.url + "/stats")[1]

    def deliveries(self) -> List[Tuple[int, float]]:
        return [tuple(d) for d in call("GET", self.url + "/ids", timeout=120)[1]]

    def reset(self) -> None:
        call("POST", self.url + "/reset", {})


def load(plan: dict) -> dict:
    """Run the load generator (bench/loadgen.py) in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    pin("tools", process.pid)
    out, _ = process.communicate(json.dumps(plan).encode())
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed with status {process.returncode}")
    return json.loads(out)
