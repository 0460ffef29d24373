"""
``fireworq health``, ``stats`` and ``tail``: the server, its counters and its live events.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from fireworq.client.cli.common import State, pass_state, run
from fireworq.client.cli.output import error_text, exit_code, short
from fireworq.client.errors import FireworqError


@click.command()
@pass_state
def health(state: State) -> None:
    """Whether the server and its store answer (exit 1 when not)."""
    body = run(state, state.client.health)
    state.output.result(body, "" if state.output.as_json else f"{body.get('status')}: {body.get('message') or body.get('driver')}")
    if body.get("status") != "ok":
        raise SystemExit(1)


@click.command()
@click.argument("queue", required=False)
@pass_state
def stats(state: State, queue: Optional[str]) -> None:
    """Counters of every queue (or of QUEUE) on the node answering."""
    if queue:
        body = run(state, lambda: state.client.queue_stats(queue))
        state.output.result(body)
        return
    body = run(state, state.client.queues_stats)
    if state.output.as_json:
        return state.output.json(body)
    columns = ["queue", "pushes", "pops", "successes", "failures", "permanent", "workers", "idle", "active"]
    keys = ["total_pushes", "total_pops", "total_successes", "total_failures", "total_permanent_failures",
            "total_workers", "idle_workers", "active_nodes"]
    state.output.table(columns, ([name] + [c.get(k) for k in keys] for name, c in sorted(body.items())))


@click.command()
@click.option("--queue", "queue_names", multiple=True, help="Only these queues (repeat).")
@click.option("--stats/--no-stats", "with_stats", default=False, help="Show the 2 s stats events too.")
@pass_state
def tail(state: State, queue_names: Any, with_stats: bool) -> None:
    """Print live job events until interrupted (JSON lines with --json)."""
    try:
        for event in state.client.events(list(queue_names) or None):
            if event.type == "stats" and not with_stats:
                continue
            if state.output.as_json:
                state.output.json_line({"type": event.type, "id": event.id, "data": event.data})
                continue
            data = event.data if isinstance(event.data, dict) else {}
            job = data.get("job") or {}
            result = job.get("result")
            if isinstance(result, dict):  # the worker's answer: status, HTTP code, message
                result = " ".join(str(result.get(k, "")) for k in ("status", "code", "message")).strip()
            state.output.out.print(
                f"{data.get('time', '')} {event.type:<14} {data.get('queue', '')} "
                f"{job.get('id', '')} {job.get('category', '')} {short(result or '', 80)}".rstrip(),
                markup=False, highlight=False,
            )
    except KeyboardInterrupt:
        return
    except FireworqError as e:
        state.output.error(error_text(e))
        raise SystemExit(exit_code(e))
