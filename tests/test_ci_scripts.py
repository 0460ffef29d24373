"""
The CI plumbing: `.ci/run` sums the per-Python sections of `make test-all`
into its one last line, and `tests/support/find-python` fails loudly (never
skips) when a supported Python is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Dict, Optional, Tuple

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args: list, env: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
    done = subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout


class SummaryTests(TestCase):
    """`.ci/run --summarise LOG STATUS` reads an earlier run's output."""

    def summarise(self, log: str, status: int = 0) -> Tuple[int, str]:
        fd, path = tempfile.mkstemp(suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(log)
        self.addCleanup(os.unlink, path)
        code, out = run(["bash", ".ci/run", "--summarise", path, str(status)])
        return code, out.strip().splitlines()[-1]

    def test_sums_the_pythons(self) -> None:
        code, line = self.summarise(
            "=== Python 3.11 ===\nPASSED (skips=2, successes=700)\n"
            "=== Python 3.12 ===\nPASSED (successes=702)\n"
            "=== Python 3.13 ===\nFAILED (failures=2, errors=1, successes=699)\n",
            1,
        )
        self.assertEqual((code, line), (1, "2101 passed, 3 failed, 2 skipped"))

    def test_all_passing(self) -> None:
        code, line = self.summarise(
            "=== Python 3.11 ===\nPASSED (successes=5)\n=== Python 3.12 ===\nPASSED (successes=5)\n"
        )
        self.assertEqual((code, line), (0, "10 passed, 0 failed"))

    def test_a_missing_python_or_summary_fails(self) -> None:
        code, line = self.summarise(
            "=== Python 3.11 ===\nPASSED (successes=5)\n"
            "=== Python 3.12 ===\nFAILED (errors=1): Python 3.12 not found\n"
            "=== Python 3.13 ===\nTraceback: the venv could not be made\n",
            1,
        )
        self.assertEqual((code, line), (1, "5 passed, 2 failed"))

    def test_a_syntax_warning_counts_as_a_failure(self) -> None:
        code, line = self.summarise(
            "=== Python 3.13 ===\n"
            "FAILED (errors=1): Python 3.13: a file does not compile without SyntaxWarning (above)\n"
            "PASSED (successes=5)\n"
        )
        self.assertEqual((code, line), (1, "5 passed, 1 failed"))

    def test_no_python_at_all(self) -> None:
        code, line = self.summarise("make: *** No rule to make target 'test-all'.\n", 2)
        self.assertEqual((code, line), (2, "0 passed, 1 failed"))


class FindPythonTests(TestCase):
    def test_finds_the_running_version(self) -> None:
        version = "%d.%d" % sys.version_info[:2]
        code, out = run(["tests/support/find-python", version])
        self.assertEqual(code, 0, out)
        found = out.strip()
        code, reported = run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        self.assertEqual(reported.strip(), version)

    def test_a_missing_version_fails_loudly(self) -> None:
        code, out = run(
            ["tests/support/find-python", "3.99"], env={"PATH": "/usr/bin:/bin", "PYENV_ROOT": ROOT}
        )
        self.assertNotEqual(code, 0)
        self.assertIn("no Python 3.99 found", out)
        self.assertIn("FIREWORQ_PYTHON_3_99", out)

    def test_an_override_that_is_not_that_version_fails(self) -> None:
        code, out = run(
            ["tests/support/find-python", "3.99"], env={"FIREWORQ_PYTHON_3_99": sys.executable}
        )
        self.assertNotEqual(code, 0)
        self.assertIn("is not a working Python 3.99", out)
