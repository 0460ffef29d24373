"""
``twistd fireworq``: the command-line options (one per setting, A8) and the
service maker.

A bad setting, given as an option or as a ``FIREWORQ_*`` variable, stops
start-up with one line on standard error naming the setting, and exit
status 2: a value that does not parse, and (L{check_resources}) a bind host
that does not resolve, or a log, pid or sqlite file that cannot be written.
So does an address that cannot be listened on (see L{FireworqService}).

L{makeService} builds the service tree of L{fireworq.server.tree}; the
reactor and the server modules are imported only then, not when twistd
lists its plugins.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

from twisted.python import usage

if TYPE_CHECKING:  # the service (and the reactor) are imported only when twistd runs
    from fireworq.server.tree import FireworqService

from fireworq import __version__
from fireworq.config import SETTINGS, Config, ConfigError, Setting, load
from fireworq.preflight import check_resources
from fireworq.tlsdefer import allow_openssl, defer_openssl


def help_text(setting: Setting) -> str:
    """The ``--help`` text of ``setting``: its description and its default."""
    if "(default:" in setting.description:
        return setting.description
    return f"{setting.description} (default: {setting.default or 'none'})"


class Options(usage.Options):
    """The options of ``twistd fireworq``; each overrides its FIREWORQ_* variable."""

    synopsis = "[options]"
    longdesc = (
        "Fireworq: a lightweight, language-independent job queue server. "
        "Every option can also be given as the environment variable "
        "FIREWORQ_<NAME> (upper case, underscores); the option wins."
    )
    # Defaults stay None so that an option not given lets its FIREWORQ_*
    # variable through; the help text tells each default instead.
    optParameters = [[s.option, None, None, help_text(s)] for s in SETTINGS]

    config: Optional[Config] = None

    #: Switches that may be given bare (B14 writes ``--metrics-public`` so):
    #: option -> the value a bare one means.
    SWITCHES = {"--auth": "on", "--metrics-public": "true"}

    #: Words a switch's separate value may be (as the settings read them).
    SWITCH_WORDS = ("true", "1", "yes", "on", "t", "false", "0", "no", "off", "f")

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        """Parse ``options``, a bare switch (``--metrics-public``) meaning true."""
        if options is None:
            options = sys.argv[1:]
        args = list(options)
        for i, arg in enumerate(args):
            if arg in self.SWITCHES:
                following = args[i + 1] if i + 1 < len(args) else None
                if following is None or following.strip().lower() not in self.SWITCH_WORDS:
                    args[i] = f"{arg}={self.SWITCHES[arg]}"
        super().parseOptions(args)

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"Fireworq {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        try:
            config = load({s.name: self[s.option] for s in SETTINGS})
            check_resources(config)
            self.config = config
        except ConfigError as e:
            sys.stderr.write(f"fireworq: {e}\n")
            sys.stderr.flush()
            raise SystemExit(2)
        if not config.bind_endpoint.startswith("ssl:"):
            # Before twistd imports the reactor: no pyOpenSSL until an https
            # delivery needs it (see fireworq.tlsdefer); an ssl: bind needs
            # the reactor's TLS, so it keeps it.
            defer_openssl()


def makeService(options: Options) -> "FireworqService":
    """Build the server's service tree from parsed options."""
    assert options.config is not None
    if options.config.workers > 1:
        from fireworq.server.workers import Supervisor, slot_from_environment

        if slot_from_environment(options.config) is None:
            # ``--workers N``: this process supervises N servers
            # (fireworq/server/workers.py) and imports nothing of the server.
            try:
                supervisor = Supervisor(options.config)  # imports the reactor
                supervisor.reserve()
            finally:
                allow_openssl()
            return supervisor  # type: ignore[return-value]
    try:
        from fireworq.server.tree import FireworqService
    finally:
        # Twisted's modules are imported (without TLS when deferred): from
        # now on pyOpenSSL imports on first use.
        allow_openssl()

    twistd = getattr(options, "parent", None)
    daemon = twistd is not None and not twistd.get("nodaemon", True)
    return FireworqService(options.config, daemon=daemon)
