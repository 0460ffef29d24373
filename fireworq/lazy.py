"""
Package attributes imported on first use (PEP 562 ``__getattr__``): for a
package whose names must not load their modules when it is imported (the
server package for the ``--workers`` supervisor, the MySQL store package
for a server of another store).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """
    A module ``__getattr__`` for ``package``: each name of ``where`` (name
    -> the module that defines it) is imported on first use and then kept
    in the package, so later uses are plain attribute reads.

        __getattr__ = lazy_attributes(__name__, {"Name": "package.module"})
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
