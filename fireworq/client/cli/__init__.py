"""The ``fireworq`` command-line tool (docs/cli.md); ``main`` is the console script."""

from fireworq.client.cli.main import cli, main
from fireworq.client.cli.push import push

cli.add_command(push)

__all__ = ["cli", "main"]
