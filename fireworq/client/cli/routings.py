"""
``fireworq routings``: list, put and delete routings.
"""

from __future__ import annotations

import click

from fireworq.client.cli.common import State, listing, pass_state, run
from fireworq.client.cli.output import to_json


@click.group(invoke_without_command=True)
@click.pass_context
def routings(ctx: click.Context) -> None:
    """List routings; subcommands put, delete."""
    listing(ctx, lambda client: client.routings(), ["category", "queue"],
            lambda r: [r.job_category, r.queue_name], as_json=to_json)


@routings.command("put")
@click.argument("category")
@click.argument("queue")
@pass_state
def routing_put(state: State, category: str, queue: str) -> None:
    """Send jobs of CATEGORY to QUEUE."""
    state.output.result(run(state, lambda: state.client.put_routing(category, queue)).to_json(), f"{category} -> {queue}")


@routings.command("delete")
@click.argument("category")
@pass_state
def routing_delete(state: State, category: str) -> None:
    """Delete the routing of CATEGORY."""
    state.output.result(run(state, lambda: state.client.delete_routing(category)).to_json(), f"deleted routing {category}")
