"""
``pip install`` of this checkout into a throwaway directory, for the tests
of what an installation has (the ``fireworq`` command, the twistd plugin
outside the clone).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.support.server import REPO


def install_checkout(work: str) -> str:
    """
    Copy what ``setup.py`` packages (setup.py, README.md, fireworq/,
    twisted/) to ``work``/source and ``pip install`` it (no dependencies,
    no build isolation) with ``--target`` ``work``/installed; return that
    target directory.
    """
    source, target = os.path.join(work, "source"), os.path.join(work, "installed")
    os.makedirs(source)
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source)
    for name in ("fireworq", "twisted"):
        shutil.copytree(os.path.join(REPO, name), os.path.join(source, name),
                        ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", target, source],
        check=True, capture_output=True, cwd=work,
    )
    return target
