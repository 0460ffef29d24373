"""
``fireworq schedules``: list, show, put, delete and run schedules.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from fireworq.client.cli.common import State, json_value, listing, pairs, pass_state, run


@click.group(invoke_without_command=True)
@click.pass_context
def schedules(ctx: click.Context) -> None:
    """List schedules; subcommands show, put, delete, run."""
    columns = ["name", "cron", "timezone", "category", "enabled", "next_run_at", "last_run_at"]
    listing(ctx, lambda client: client.schedules(), columns, lambda s: [s.get(c) for c in columns])


@schedules.command("show")
@click.argument("name")
@pass_state
def schedule_show(state: State, name: str) -> None:
    """One schedule."""
    state.output.result(run(state, lambda: state.client.schedule(name)))


@schedules.command("put")
@click.argument("name")
@click.option("--cron", required=True, help="5 fields, or @hourly, @daily, …")
@click.option("--category", required=True)
@click.option("--worker", "url", required=True, help="The job's worker URL.")
@click.option("--payload", help="The job's payload (JSON).")
@click.option("--timezone")
@click.option("--disabled", is_flag=True)
@click.option("--catch-up", type=click.Choice(["none", "last"]))
@click.option("--set", "settings", multiple=True, metavar="FIELD=JSON", help="Other job fields (max_retries=3, …).")
@pass_state
def schedule_put(state: State, name: str, cron: str, category: str, url: str, payload: Optional[str],
                 timezone: Optional[str], disabled: bool, catch_up: Optional[str], settings: Any) -> None:
    """Create or replace a schedule."""
    fields = {k: json_value(v) for k, v in pairs(settings, "--set").items()}
    value = run(state, lambda: state.client.put_schedule(
        name, cron=cron, category=category, url=url, payload=json_value(payload) if payload else None,
        timezone=timezone, enabled=False if disabled else None, catch_up=catch_up, **fields))
    state.output.result(value)


@schedules.command("delete")
@click.argument("name")
@pass_state
def schedule_delete(state: State, name: str) -> None:
    """Delete a schedule."""
    state.output.result(run(state, lambda: state.client.delete_schedule(name)), f"deleted schedule {name}")


@schedules.command("run")
@click.argument("name")
@pass_state
def schedule_run(state: State, name: str) -> None:
    """Push a schedule's job now."""
    job = run(state, lambda: state.client.run_schedule(name))
    state.output.result(job.to_json(), f"pushed job {job.id} to queue {job.queue_name}")
