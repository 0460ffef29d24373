"""
A real Fireworq server for integration tests: ``twistd -n fireworq`` in a
child process on a free loopback port, with helpers to call its API, stop it
(SIGTERM), kill it (SIGKILL), pause it (SIGSTOP) and read its logs.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import treq
from twisted.internet.defer import inlineCallbacks

from tests.support.ports import free_port
from tests.support.polling import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))




#: The start-up line that tells where the server listens (server/tree.py).
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

#: Names the log files of servers whose port is not known before they start.
_spawns = itertools.count(1)


def twistd() -> List[str]:
    """The command that runs twistd with this interpreter."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class FireworqProcess:
    """
    One server process; ``settings`` are FIREWORQ_* variables (without prefix).

    Without ``port`` the server binds port 0 and the real port is read from
    its start-up line ("listening on 127.0.0.1:PORT" in its error log, on
    standard error), so
    suites running side by side never race for a port picked in advance.  A
    restart of the same object binds that port again.  Reading L{port}
    before the server has said it waits for the line (the server is another
    process); reading it before L{spawn} picks a free port as before.
    Settings that move the start-up line (``error_log``), several processes
    on one port (``workers``) or a ``bind`` of their own keep a picked port.
    """

    def __init__(self, workdir: str, settings: Optional[Dict[str, str]] = None, port: Optional[int] = None) -> None:
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self._port: Optional[int] = port or None
        self.settings = dict(settings or {})
        self.process: Optional[subprocess.Popen] = None
        name = str(port) if port else f"p{os.getpid()}-{next(_spawns)}"
        self.stdout_path = os.path.join(workdir, f"stdout-{name}.log")
        self.stderr_path = os.path.join(workdir, f"stderr-{name}.log")
        #: Where the current spawn's output starts in stderr_path.
        self._stderr_offset = 0

    def _binds_port_zero(self) -> bool:
        keys = {name.lower() for name in self.settings}
        return not (keys & {"error_log", "bind"}) and self.settings.get("workers", "1") in ("", "1")

    @property
    def port(self) -> int:
        """The API's TCP port (see the class docstring)."""
        if self._port is None:
            if self.process is None:
                self._port = free_port()
            else:
                self._port = self._wait_for_port(30.0)
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        self._port = value

    def _read_port(self) -> Optional[int]:
        """The port of this spawn's start-up line, if it was written yet."""
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                f.seek(self._stderr_offset)
                found = LISTENING.search(f.read())
        except OSError:
            return None
        return int(found.group(1)) if found else None

    def _wait_for_port(self, timeout: float) -> int:
        # Blocking is safe here: the server is another process.
        deadline = time.monotonic() + timeout
        while True:
            port = self._read_port()
            if port is not None:
                return port
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the server did not say where it listens:\n" + self.stderr()[-3000:])
            time.sleep(0.02)

    def environment(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORQ_")}
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        if self._port is None and not self._binds_port_zero():
            self._port = free_port()
        env["FIREWORQ_BIND"] = f"127.0.0.1:{self._port or 0}"
        for name, value in self.settings.items():
            env["FIREWORQ_" + name.upper()] = value
        return env

    def command(self) -> List[str]:
        """How to run twistd (a subclass may run it another way)."""
        return twistd()

    def spawn(self, extra_args: Optional[List[str]] = None) -> None:
        """Start the process (without waiting for it to be ready)."""
        env = self.environment()
        self._stderr_offset = os.path.getsize(self.stderr_path) if os.path.exists(self.stderr_path) else 0
        stdout = open(self.stdout_path, "ab")
        stderr = open(self.stderr_path, "ab")
        self.process = subprocess.Popen(
            self.command() + ["--pidfile=", "-n", "fireworq"] + (extra_args or []),
            cwd=self.workdir,
            env=env,
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
            if self._port is None:
                self._port = self._read_port()
                if self._port is None:
                    return False  # not listening yet
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
