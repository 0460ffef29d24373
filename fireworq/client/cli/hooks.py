"""
``fireworq hooks``: list, show, put and delete event hooks.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from fireworq.client.cli.common import State, listing, pass_state, run
from fireworq.client.cli.output import names


@click.group(invoke_without_command=True)
@click.pass_context
def hooks(ctx: click.Context) -> None:
    """List event hooks; subcommands show, put, delete."""
    listing(ctx, lambda client: client.hooks(), ["name", "url", "events", "queues"],
            lambda h: [h.get("name"), h.get("url"), names(h.get("events")), h.get("queues")])


@hooks.command("show")
@click.argument("name")
@pass_state
def hook_show(state: State, name: str) -> None:
    """One hook."""
    state.output.result(run(state, lambda: state.client.hook(name)))


@hooks.command("put")
@click.argument("name")
@click.option("--url", "hook_url", required=True, help="Where to POST the events.")
@click.option("--event", "events", multiple=True, required=True, help="job.pushed, job.completed, … (repeat).")
@click.option("--queues", help="Glob of the queues whose events are sent.")
@click.option("--secret", help="whsec_… (made by the server when absent).")
@pass_state
def hook_put(state: State, name: str, hook_url: str, events: Any, queues: Optional[str], secret: Optional[str]) -> None:
    """Create or replace a hook (the answer shows a new secret once)."""
    state.output.result(run(state, lambda: state.client.put_hook(name, url=hook_url, events=list(events), queues=queues, secret=secret)))


@hooks.command("delete")
@click.argument("name")
@pass_state
def hook_delete(state: State, name: str) -> None:
    """Delete a hook."""
    state.output.result(run(state, lambda: state.client.delete_hook(name)), f"deleted hook {name}")
