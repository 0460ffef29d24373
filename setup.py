"""
Packaging for Fireworq for Python.

The twisted plugin (twisted/plugins/fireworq_plugin.py) is shipped as a
module of the ``twisted.plugins`` namespace so that ``twistd fireworq`` finds
it after ``pip install .`` as well as from a clone.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "fireworq" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="fireworq",
    version=VERSION,
    description="A lightweight, language-independent job queue server (Fireworq-compatible)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # 3.11, 3.12 and 3.13 are tested (make test-all, .ci/run) and named in
    # the classifiers; keep them, the Makefile's PYTHONS and the README in
    # step.  No upper bound: a newer Python is untested, not refused.
    python_requires=">=3.11",
    packages=find_packages(include=["fireworq", "fireworq.*"]) + ["twisted.plugins"],
    package_data={
        "fireworq": ["web/ui/*", "web/ui/**/*", "openapi.yaml"],
        "twisted": ["plugins/fireworq_plugin.py"],
    },
    include_package_data=False,
    entry_points={"console_scripts": ["fireworq = fireworq.client.cli:main"]},
    install_requires=[
        "twisted[tls]>=23.10,<27",
        "klein>=23.5,<26",
        "treq>=23.11,<27",
        "attrs>=22.2,<28",
        "zope.interface>=6.0,<10",
        "prometheus-client>=0.17,<1",
        "service-identity>=21.1,<28",
        "PyMySQL>=1.1,<2",
        # schedules (docs/schedules.md): cron evaluation, and IANA zones where
        # the system has no zoneinfo database
        "cronsim>=2.6,<3",
        "tzdata>=2024.1",
        # fireworq.client and the fireworq command (docs/client.md, docs/cli.md)
        "httpx>=0.27,<1",
        "httpx-sse>=0.4,<0.5",
        "click>=8.1,<9",
        "rich>=13.0,<16",
    ],
    extras_require={
        "mysqlclient": ["mysqlclient>=2.2,<3"],
        "test": [
            "hypothesis>=6.130.12,<7",
            "schemathesis>=4.32,<5",
            "jsonschema>=4.18,<5",
            "PyYAML>=6.0,<7",
            "standardwebhooks>=1.0,<2",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
)
