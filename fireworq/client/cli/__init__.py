"""The ``fireworq`` command-line tool (docs/cli.md); ``main`` is the console script."""

from fireworq.client.cli.main import cli, main

__all__ = ["cli", "main"]
