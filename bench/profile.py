"""
Where a server's CPU time goes during a benchmark phase: py-spy samples the
process (``--profile``), and the collapsed stacks are summarised by the
function the process was running and by the part of the server or of its
libraries that function belongs to (self time).

py-spy is not a dependency of the server; ``pip install py-spy`` first.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

#: Parts of the process, by where a frame's code lives (first match wins).
PARTS: List[Tuple[str, str]] = [
    ("fireworq/store/mysql", "fireworq MySQL store"),
    ("fireworq/dispatch", "fireworq dispatch"),
    ("fireworq/web", "fireworq web API"),
    ("fireworq/logging", "fireworq logs"),
    ("fireworq/metrics", "metrics"),
    ("fireworq/", "fireworq (other)"),
    ("MySQLdb", "MySQL driver"),
    ("pymysql", "MySQL driver"),
    ("twisted/enterprise", "adbapi"),
    ("twisted/web/_newclient", "HTTP client (twisted.web)"),
    ("treq", "HTTP client (treq)"),
    ("twisted/web", "HTTP server (twisted.web)"),
    ("klein", "klein"),
    ("werkzeug", "klein"),
    ("twisted/internet/defer", "Deferreds"),
    ("twisted/internet", "reactor and I/O"),
    ("twisted/protocols/basic", "HTTP server (twisted.web)"),
    ("twisted/logger", "logging"),
    # untilConcludes wraps the socket's send(): the time of the system call.
    ("twisted/python/util", "reactor and I/O"),
    ("twisted/python/log", "reactor and I/O"),
    ("twisted/", "twisted (other)"),
    ("json", "json"),
    ("prometheus_client", "metrics"),
    # In the reactor's thread: Queue.put / Condition.notify, waking a database thread.
    ("threading.py", "handing work to the database threads"),
    ("queue.py", "handing work to the database threads"),
]


def py_spy() -> str:
    """The py-spy command. @raise RuntimeError: when it is not installed."""
    found = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(found):
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    return found


class Profiler:
    """py-spy recording one process until L{stop}."""

    def __init__(self, pid: int, output: str, rate: int = 250) -> None:
        self.output = output
        self.process: Optional[subprocess.Popen] = None
        self.process = subprocess.Popen(
            [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
             "--output", output, "--nonblocking", "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Dict[str, object]:
        """Stop sampling; summarise what was recorded."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return summarise(self.output)


_LINE = re.compile(r":\d+\)$")


def _part(frame: str) -> Optional[str]:
    for needle, name in PARTS:
        if needle in frame:
            return name
    return None


def format_summary(title: str, summary: Dict[str, object]) -> str:
    """The summary as Markdown: parts, then the busiest functions."""
    lines = [f"Profile of {title}: {summary['samples']} samples of the reactor thread while busy.", "",
             "| part of the process (self time) | % |", "|---|---|"]
    lines += [f"| {name} | {share} |" for name, share in summary["parts"]]  # type: ignore[union-attr]
    lines += ["", "| function (self time) | % |", "|---|---|"]
    lines += [f"| `{name}` | {share} |" for name, share in summary["functions"]]  # type: ignore[union-attr]
    return "\n".join(lines)


def summarise(path: str, top: int = 15) -> Dict[str, object]:
    """Self time by function and by part, in % of the busy samples of the main thread."""
    self_time: collections.Counter = collections.Counter()
    parts: collections.Counter = collections.Counter()
    total = 0
    if not os.path.exists(path):
        return {"samples": 0, "functions": [], "parts": []}
    with open(path) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = stack.split(";")
            # The reactor's thread only: pool threads waiting on the database
            # would otherwise dominate.
            if not frames or "MainThread" not in frames[0]:
                continue
            count = int(count_text)
            total += count
            self_time[_LINE.sub(")", frames[-1])] += count
            # The part of the deepest frame that belongs to one: where the
            # time was spent (the reactor's frames are under every stack).
            for frame in reversed(frames[1:]):
                part = _part(frame)
                if part is not None:
                    parts[part] += count
                    break
            else:
                parts["other"] += count
    if not total:
        return {"samples": 0, "functions": [], "parts": []}
    return {
        "samples": total,
        "functions": [(name, round(100.0 * n / total, 1)) for name, n in self_time.most_common(top)],
        "parts": [(name, round(100.0 * n / total, 1)) for name, n in parts.most_common()],
    }
