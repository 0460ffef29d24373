"""
``fireworq failed``: list, show, retry and delete failure-log entries.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import click

from fireworq.client.cli.common import State, limited, pass_state, run
from fireworq.client.cli.output import UNREACHABLE, error_text, exit_code, short, to_json
from fireworq.client.errors import FireworqError


@click.group()
def failed() -> None:
    """The failure log of a queue: list, show, retry, delete."""


@failed.command("list")
@click.argument("queue")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many (0: all).")
@click.option("--order", type=click.Choice(["failed", "created"]), default="failed", show_default=True)
@click.option("--name", "job_name", help="Only jobs with this name (a trailing * matches a prefix).")
@click.option("--tag", "tags", multiple=True, metavar="KEY:VALUE", help="Only jobs with this tag (repeat).")
@pass_state
def failed_list(state: State, queue: str, limit: int, order: str, job_name: Optional[str], tags: Any) -> None:
    """Failure-log entries, most recent first."""
    size = min(limit or 1000, 1000)
    items = run(state, lambda: list(limited(state.client.iter_failed(
        queue, page_size=size, order=order, name=job_name, tags=list(tags) or None), limit)))
    if state.output.as_json:
        return state.output.json(to_json(items))
    state.output.table(
        ["id", "job_id", "category", "failed_at", "fails", "status", "code", "message"],
        ([f.id, f.job_id, f.category, f.raw.get("failed_at"), f.fail_count,
          f.result.status if f.result else "", f.result.code if f.result else "",
          short(f.result.message, 60) if f.result else ""] for f in items),
    )


@failed.command("show")
@click.argument("queue")
@click.argument("failure_id", type=int)
@pass_state
def failed_show(state: State, queue: str, failure_id: int) -> None:
    """One failure-log entry."""
    state.output.result(run(state, lambda: state.client.failed_job(queue, failure_id)).to_json())


def _each(state: State, ids: Any, every: bool, queue: str, action: Callable[[int], Any], verb: str) -> None:
    if every:
        ids = [f.id for f in run(state, lambda: list(state.client.iter_failed(queue, page_size=1000)))]
    if not ids:
        raise click.UsageError("give failure ids, or --all")
    done, errors = [], 0
    for failure_id in ids:
        try:
            done.append(to_json(action(failure_id)))
        except FireworqError as e:
            errors += 1
            state.output.error(f"entry {failure_id}: {error_text(e)}")
            if exit_code(e) == UNREACHABLE:
                raise SystemExit(UNREACHABLE)
    if state.output.as_json:
        state.output.json(done)
    else:
        state.output.note(f"{verb} {len(done)} of {len(ids)} entries")
    if errors:
        raise SystemExit(1)


@failed.command("retry")
@click.argument("queue")
@click.argument("failure_ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every entry of the queue.")
@pass_state
def failed_retry(state: State, queue: str, failure_ids: Any, every: bool) -> None:
    """Push failed jobs again (and remove their entries)."""
    _each(state, list(failure_ids), every, queue, lambda i: state.client.retry_failed(queue, i), "retried")


@failed.command("delete")
@click.argument("queue")
@click.argument("failure_ids", type=int, nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every entry of the queue.")
@pass_state
def failed_delete(state: State, queue: str, failure_ids: Any, every: bool) -> None:
    """Delete failure-log entries."""
    _each(state, list(failure_ids), every, queue, lambda i: state.client.delete_failed(queue, i), "deleted")
