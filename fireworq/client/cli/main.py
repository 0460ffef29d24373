"""
The ``fireworq`` command (click): the global options, and every command
put under them.  The commands live in one module per resource: L{server}
(health, stats, tail), L{queues}, L{routings}, L{jobs} (jobs, completed,
job), L{failed}, L{schedules}, L{hooks}, L{tokens} (tokens, whoami),
L{signing} (signing-key) and L{push}; L{common} holds what they share,
L{output} how they print.
"""

from __future__ import annotations

import sys
from typing import Optional

import click

from fireworq import __version__
from fireworq.client.cli.common import State
from fireworq.client.cli.failed import failed
from fireworq.client.cli.hooks import hooks
from fireworq.client.cli.jobs import completed, job, job_cancel, jobs
from fireworq.client.cli.queues import queue_pause, queue_purge, queue_resume, queues
from fireworq.client.cli.routings import routings
from fireworq.client.cli.schedules import schedules
from fireworq.client.cli.server import health, stats, tail
from fireworq.client.cli.signing import signing_key
from fireworq.client.cli.tokens import tokens, whoami
from fireworq.client.cli.output import OK
from fireworq.client.cli.push import push


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="FIREWORQ_URL", default="http://127.0.0.1:8080", show_default=True,
              help="The server (env FIREWORQ_URL).")
@click.option("--token", envvar="FIREWORQ_TOKEN", default=None, help="Bearer token (env FIREWORQ_TOKEN).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for an answer.")
@click.option("--retries", type=int, default=3, show_default=True,
              help="Retries of calls that are safe to repeat, after a 503 or a lost connection.")
@click.option("--ca-file", envvar="FIREWORQ_CA_FILE", default=None, type=click.Path(exists=True, dir_okay=False),
              help="PEM file of the CA that issued an https:// server's certificate (env FIREWORQ_CA_FILE).")
@click.option("--unix-socket", "uds", envvar="FIREWORQ_UNIX_SOCKET", default=None,
              help="Connect to a server on a unix: bind through this socket (env FIREWORQ_UNIX_SOCKET).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables (for scripts).")
@click.version_option(__version__, prog_name="fireworq")
@click.pass_context
def cli(ctx: click.Context, url: str, token: Optional[str], timeout: float, retries: int, ca_file: Optional[str],
        uds: Optional[str], as_json: bool) -> None:
    """Push jobs to a Fireworq server and look at its queues (docs/cli.md)."""
    ctx.obj = State(url, token, timeout, as_json, retries, ca_file, uds)
    ctx.call_on_close(ctx.obj.client.close)


for _command in (
    failed, hooks, jobs, completed, job, queues, routings, schedules, health, stats, tail, signing_key, tokens,
    whoami, push,
):
    cli.add_command(_command)
# Short forms: ``fireworq pause Q`` is ``fireworq queues pause Q``, and so on.
cli.add_command(queue_pause, "pause")
cli.add_command(queue_resume, "resume")
cli.add_command(queue_purge, "purge")
cli.add_command(job_cancel, "cancel")


def main(argv: Optional[list] = None) -> int:
    """The console script: run the command line, return its exit code."""
    try:
        cli.main(args=argv, prog_name="fireworq", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
