"""
``twistd fireworq``: the command-line options (one per setting, A8) and the
service maker.

A bad setting, given as an option or as a ``FIREWORQ_*`` variable, stops
start-up with one line on standard error naming the setting, and exit
status 2.
"""

from __future__ import annotations

import sys
from typing import Optional

from twisted.python import usage

from fireworq import __version__
from fireworq.config import SETTINGS, Config, ConfigError, load


class Options(usage.Options):
    """The options of ``twistd fireworq``; each overrides its FIREWORQ_* variable."""

    synopsis = "[options]"
    longdesc = (
        "Fireworq: a lightweight, language-independent job queue server. "
        "Every option can also be given as the environment variable "
        "FIREWORQ_<NAME> (upper case, underscores); the option wins."
    )
    optParameters = [[s.option, None, None, s.description] for s in SETTINGS]

    config: Optional[Config] = None

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"Fireworq {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        try:
            self.config = load({s.name: self[s.option] for s in SETTINGS})
        except ConfigError as e:
            sys.stderr.write(f"fireworq: {e}\n")
            sys.stderr.flush()
            raise SystemExit(2)


def makeService(options: Options):
    """Build the server service from parsed options."""
    from fireworq.service import FireworqService

    assert options.config is not None
    return FireworqService(options.config)
