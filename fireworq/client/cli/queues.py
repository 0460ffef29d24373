"""
``fireworq queues``: list, show, put, delete, pause, resume and purge queues.
"""

from __future__ import annotations

from typing import Any

import click

from fireworq.client.cli.common import State, json_value, listing, pairs, pass_state, run
from fireworq.client.cli.output import short, to_json


@click.group(invoke_without_command=True)
@click.pass_context
def queues(ctx: click.Context) -> None:
    """List queues; subcommands show, put, delete, pause, resume, purge."""
    listing(
        ctx, lambda client: client.queues(),
        ["name", "polling_interval", "max_workers", "max/s", "burst", "paused", "other"],
        lambda q: [q.name, q.polling_interval, q.max_workers, q.max_dispatches_per_second, q.max_burst_size,
                   "yes" if q.paused else "",
                   short({k: v for k, v in q.extra.items() if k != "paused"}) if q.extra else ""],
        as_json=to_json,
    )


@queues.command("show")
@click.argument("name")
@pass_state
def queue_show(state: State, name: str) -> None:
    """One queue's definition."""
    state.output.result(run(state, lambda: state.client.queue(name)).to_json())


@queues.command("put")
@click.argument("name")
@click.option("--polling-interval", type=int, help="Milliseconds between polls.")
@click.option("--max-workers", type=int, help="Deliveries at the same time.")
@click.option("--max-dispatches-per-second", type=float, help="Throttle: average rate.")
@click.option("--max-burst-size", type=int, help="Throttle: burst (with the rate).")
@click.option("--set", "settings", multiple=True, metavar="FIELD=JSON",
              help="Any other field of the definition (B7 defaults, retention, signing…).")
@pass_state
def queue_put(state: State, name: str, settings: Any, **fields: Any) -> None:
    """Create or replace a queue (--set signing=true signs its deliveries, --set retention=3600 keeps finished jobs)."""
    body = {k: v for k, v in fields.items() if v is not None}
    body.update({k: json_value(v) for k, v in pairs(settings, "--set").items()})
    state.output.result(run(state, lambda: state.client.put_queue(name, **body)).to_json())


@queues.command("delete")
@click.argument("name")
@pass_state
def queue_delete(state: State, name: str) -> None:
    """Delete a queue's definition (its jobs stay stored)."""
    state.output.result(run(state, lambda: state.client.delete_queue(name)).to_json(), f"deleted queue {name}")


@queues.command("pause")
@click.argument("name")
@pass_state
def queue_pause(state: State, name: str) -> None:
    """Stop dispatching a queue; pushes are still taken."""
    state.output.result(run(state, lambda: state.client.pause(name)).to_json(), f"paused queue {name}")


@queues.command("resume")
@click.argument("name")
@pass_state
def queue_resume(state: State, name: str) -> None:
    """Dispatch a paused queue again."""
    state.output.result(run(state, lambda: state.client.resume(name)).to_json(), f"resumed queue {name}")


@queues.command("purge")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
@pass_state
def queue_purge(state: State, name: str, yes: bool) -> None:
    """Delete the waiting and deferred jobs of a queue."""
    if not yes:
        click.confirm(f"Delete every waiting and deferred job of {name}?", abort=True, err=True)
    count = run(state, lambda: state.client.purge(name))
    state.output.result({"purged": count}, f"purged {count} jobs from {name}")
