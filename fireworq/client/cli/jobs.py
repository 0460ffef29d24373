"""
``fireworq jobs``, ``completed`` and ``job``: the jobs of a queue, one job, cancel and retry.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from fireworq.client.cli.common import State, limited, pass_state, run
from fireworq.client.cli.output import FAILED, UNREACHABLE, error_text, exit_code, short, to_json
from fireworq.client.errors import FireworqError


@click.command()
@click.argument("queue")
@click.option("--state", "job_state", type=click.Choice(["waiting", "deferred", "grabbed", "completed"]),
              default="waiting", show_default=True, help="completed: kept finished jobs.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many (0: all).")
@click.option("--order", type=click.Choice(["asc", "desc"]))
@click.option("--name", "job_name", help="Only jobs with this name (a trailing * matches a prefix).")
@click.option("--tag", "tags", multiple=True, metavar="KEY:VALUE", help="Only jobs with this tag (repeat: all must match).")
@pass_state
def jobs(state: State, queue: str, job_state: str, limit: int, order: Optional[str], job_name: Optional[str],
         tags: Any) -> None:
    """Jobs of a queue in one state."""
    _show_jobs(state, queue, job_state, limit, order, job_name, list(tags))


def _show_jobs(state: State, queue: str, job_state: str, limit: int, order: Optional[str], job_name: Optional[str],
               tags: list) -> None:
    size = min(limit or 1000, 1000)
    filters = dict(name=job_name, tags=tags or None)
    if job_state == "completed":
        found = lambda: state.client.iter_completed(queue, page_size=size, **filters)  # noqa: E731
    else:
        found = lambda: state.client.iter_jobs(queue, job_state, page_size=size, order=order, **filters)  # noqa: E731
    items = run(state, lambda: list(limited(found(), limit)))
    if state.output.as_json:
        return state.output.json(to_json(items))
    if job_state == "completed":
        state.output.table(
            ["id", "category", "name", "attempts", "finished_at", "code", "message", "payload"],
            ([j.id, j.category, j.raw.get("name"), j.attempts, (j.result or {}).get("finished_at"),
              (j.result or {}).get("code"), short((j.result or {}).get("message") or "", 40), short(j.payload)]
             for j in items),
        )
        return
    state.output.table(
        ["id", "category", "url", "status", "next_try", "fail_count", "payload"],
        ([j.id, j.category, j.url, j.status, j.raw.get("next_try"), j.fail_count, short(j.payload)] for j in items),
    )


@click.command()
@click.argument("queue")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many (0: all).")
@click.option("--name", "job_name", help="Only jobs with this name (a trailing * matches a prefix).")
@click.option("--tag", "tags", multiple=True, metavar="KEY:VALUE", help="Only jobs with this tag (repeat).")
@pass_state
def completed(state: State, queue: str, limit: int, job_name: Optional[str], tags: Any) -> None:
    """Kept finished jobs of a queue that keeps history, newest first."""
    _show_jobs(state, queue, "completed", limit, None, job_name, list(tags))


@click.group()
def job() -> None:
    """One job of a queue: show, cancel, retry (a kept finished job)."""


@job.command("show")
@click.argument("queue")
@click.argument("job_id", type=int)
@pass_state
def job_show(state: State, queue: str, job_id: int) -> None:
    """One job (also a kept finished one, with its state and result)."""
    state.output.result(run(state, lambda: state.client.job(queue, job_id)).to_json())


@job.command("cancel")
@click.argument("queue")
@click.argument("job_ids", type=int, nargs=-1, required=True)
@pass_state
def job_cancel(state: State, queue: str, job_ids: Any) -> None:
    """Delete waiting jobs; cancel jobs being delivered (their delivery is aborted)."""
    done, codes = [], []
    for job_id in job_ids:
        try:
            found = state.client.cancel_job(queue, job_id)
        except FireworqError as e:
            codes.append(exit_code(e))
            state.output.error(f"job {job_id}: {error_text(e)}")
            if exit_code(e) == UNREACHABLE:
                raise SystemExit(UNREACHABLE)
            continue
        done.append(found.to_json())
        if not state.output.as_json:
            verb = "canceling job {} (its delivery is being aborted)" if found.canceling else "deleted job {}"
            state.output.out.print(verb.format(job_id), markup=False)
    if state.output.as_json:
        state.output.json(done)
    if codes:
        raise SystemExit(codes[0] if len(job_ids) == 1 else FAILED)


@job.command("retry")
@click.argument("queue")
@click.argument("job_id", type=int)
@pass_state
def job_retry(state: State, queue: str, job_id: int) -> None:
    """Run a kept finished job again, as a new job."""
    pushed = run(state, lambda: state.client.retry_job(queue, job_id))
    state.output.result(pushed.to_json(), f"pushed job {pushed.id} to queue {pushed.queue_name}")
