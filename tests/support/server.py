"""
A real Fireworq server for integration tests: ``twistd -n fireworq`` in a
child process on a free loopback port, with helpers to call its API, stop it
(SIGTERM), kill it (SIGKILL), pause it (SIGSTOP) and read its logs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any, Dict, List, Optional

import treq
from twisted.internet.defer import inlineCallbacks

from tests.support.polling import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def twistd() -> List[str]:
    """The command that runs twistd with this interpreter."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class FireworqProcess:
    """One server process; ``settings`` are FIREWORQ_* variables (without prefix)."""

    def __init__(self, workdir: str, settings: Optional[Dict[str, str]] = None, port: Optional[int] = None) -> None:
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.process: Optional[subprocess.Popen] = None
        self.stdout_path = os.path.join(workdir, f"stdout-{self.port}.log")
        self.stderr_path = os.path.join(workdir, f"stderr-{self.port}.log")

    def environment(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        env["FIREWORQ_BIND"] = f"127.0.0.1:{self.port}"
        for name, value in self.settings.items():
            env["FIREWORQ_" + name.upper()] = value
        return env

    def spawn(self, extra_args: Optional[List[str]] = None) -> None:
        """Start the process (without waiting for it to be ready)."""
        stdout = open(self.stdout_path, "ab")
        stderr = open(self.stderr_path, "ab")
        self.process = subprocess.Popen(
            twistd() + ["--pidfile=", "-n", "fireworq"] + (extra_args or []),
            cwd=self.workdir,
            env=self.environment(),
            stdout=stdout,
            stderr=stderr,
        )
        stdout.close()
        stderr.close()

    @inlineCallbacks
    def start(self, extra_args: Optional[List[str]] = None, timeout: float = 30.0):
        """Start the process and wait until /health answers 200."""
        self.spawn(extra_args)
        yield self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0):
        def healthy():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.stderr()[-3000:]}")
            d = treq.get(self.url("/health"), timeout=2)
            d.addCallback(lambda r: r.code == 200)
            return d

        return wait_until(healthy, timeout, 0.05, lambda: "the server to become healthy:\n" + self.stderr()[-3000:])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @inlineCallbacks
    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None):
        """Call the API; fire with (status code, decoded JSON or text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        response = yield treq.request(method, self.url(path), data=data, timeout=10)
        content = yield response.content()
        try:
            value = json.loads(content)
        except ValueError:
            value = content.decode("utf-8", "replace")
        return response.code, value

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 60.0):
        """SIGTERM and wait (polling) for exit; fire with the exit status."""
        if self.process is None or self.process.poll() is not None:
            return wait_until(lambda: True)
        self.process.send_signal(signal.SIGTERM)
        return wait_until(
            lambda: self.process.poll() is not None and (self.process.returncode,),
            timeout,
            0.05,
            "the server to exit",
        ).addCallback(lambda result: result[0])

    def stdout(self) -> str:
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stderr(self) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def queue_log(self) -> List[Dict[str, Any]]:
        """Parsed queue-log lines (those with tag fireworq.queue) from stdout."""
        lines = []
        for line in self.stdout().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("tag") == "fireworq.queue":
                lines.append(record)
        return lines
