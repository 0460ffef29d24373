"""
The ``fireworq`` command (click): global options, and the commands that
list, show and change queues, routings, failures, schedules, hooks and
tokens.  Pushing is in L{fireworq.client.cli.push}, ``tail`` here.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, List, Optional

import click

from fireworq import __version__
from fireworq.client.cli.output import (
    FAILED,
    OK,
    UNREACHABLE,
    Output,
    error_text,
    exit_code,
    millis_time,
    names,
    short,
    to_json,
)
from fireworq.client.errors import FireworqError
from fireworq.client.sync import Client


class State:
    """What the global options set up: the client and the output."""

    def __init__(
        self, url: Optional[str], token: Optional[str], timeout: float, as_json: bool, retries: int,
        ca_file: Optional[str] = None, uds: Optional[str] = None,
    ) -> None:
        from fireworq.client.retry import RetryPolicy

        self.client = Client(
            url, token=token, timeout=timeout, retry=RetryPolicy(attempts=max(1, retries + 1)), ca_file=ca_file,
            uds=uds,
        )
        self.output = Output(as_json)


pass_state = click.make_pass_decorator(State)


def run(state: State, action: Callable[[], Any]) -> Any:
    """Run an API call; on an error print it and exit with its code."""
    try:
        return action()
    except FireworqError as e:
        state.output.error(error_text(e))
        raise SystemExit(exit_code(e))


def listing(
    ctx: click.Context,
    fetch: Callable[[Client], Any],
    columns: List[str],
    row: Callable[[Any], List[Any]],
    as_json: Callable[[Any], Any] = lambda items: items,
) -> None:
    """
    What a group (queues, routings, ...) prints when called without a
    subcommand: the items ``fetch(client)`` answers, as JSON (``as_json``
    of them) or as a table of ``columns``, one ``row(item)`` each.
    """
    if ctx.invoked_subcommand is not None:
        return
    state: State = ctx.obj
    items = run(state, lambda: fetch(state.client))
    if state.output.as_json:
        return state.output.json(as_json(items))
    state.output.table(columns, (row(item) for item in items))


def json_value(text: str) -> Any:
    """A JSON argument, or a usage error naming it."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise click.BadParameter(f"not JSON: {e}")


def pairs(values: Any, what: str) -> dict:
    """``key=value`` options as a dict."""
    out = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} must be KEY=VALUE, not {item!r}")
        out[key] = value
    return out


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


# -- the server -----------------------------------------------------------------

@cli.command()
@pass_state
def health(state: State) -> None:
    """Whether the server and its store answer (exit 1 when not)."""
    body = run(state, state.client.health)
    state.output.result(body, "" if state.output.as_json else f"{body.get('status')}: {body.get('message') or body.get('driver')}")
    if body.get("status") != "ok":
        raise SystemExit(1)


@cli.command()
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


# -- queues -----------------------------------------------------------------------

@cli.group(invoke_without_command=True)
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


cli.add_command(queue_pause, "pause")
cli.add_command(queue_resume, "resume")
cli.add_command(queue_purge, "purge")


# -- routings ---------------------------------------------------------------------

@cli.group(invoke_without_command=True)
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


# -- jobs and failures ----------------------------------------------------------------

def _limit(items: Any, limit: int) -> Any:
    for count, item in enumerate(items):
        if limit and count >= limit:
            return
        yield item


@cli.command()
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
    items = run(state, lambda: list(_limit(found(), limit)))
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


@cli.command()
@click.argument("queue")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many (0: all).")
@click.option("--name", "job_name", help="Only jobs with this name (a trailing * matches a prefix).")
@click.option("--tag", "tags", multiple=True, metavar="KEY:VALUE", help="Only jobs with this tag (repeat).")
@pass_state
def completed(state: State, queue: str, limit: int, job_name: Optional[str], tags: Any) -> None:
    """Kept finished jobs of a queue that keeps history, newest first."""
    _show_jobs(state, queue, "completed", limit, None, job_name, list(tags))


@cli.group()
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


cli.add_command(job_cancel, "cancel")


@cli.group()
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
    items = run(state, lambda: list(_limit(state.client.iter_failed(
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


# -- schedules, hooks, tokens (B10, B12, B14) -------------------------------------------

@cli.group(invoke_without_command=True)
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


@cli.group(invoke_without_command=True)
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


@cli.group(invoke_without_command=True)
@click.pass_context
def tokens(ctx: click.Context) -> None:
    """List tokens (servers with authentication); subcommands create, show, revoke."""
    listing(ctx, lambda client: client.tokens(), ["id", "name", "scopes", "queues", "rate", "burst", "created_at"],
            lambda t: [t.get("id"), t.get("name"), names(t.get("scopes")), t.get("queues"), t.get("rate"),
                       t.get("burst"), millis_time(t.get("created_at"))])


@tokens.command("show")
@click.argument("token_id")
@pass_state
def token_show(state: State, token_id: str) -> None:
    """One token, without its secret."""
    state.output.result(run(state, lambda: state.client.token(token_id)))


@tokens.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(["push", "read", "admin"]))
@click.option("--queues", help="Glob: the token sees these queues only.")
@click.option("--rate", type=float, help="Requests per second.")
@click.option("--burst", type=int)
@pass_state
def token_create(state: State, name: str, scopes: Any, queues: Optional[str], rate: Optional[float], burst: Optional[int]) -> None:
    """Create a token; its secret is shown only now (with --json, in the field token)."""
    made = run(state, lambda: state.client.create_token(name, list(scopes), queues=queues, rate=rate, burst=burst))
    if state.output.as_json:
        return state.output.json(made)
    state.output.fields(made)
    state.output.note("The token is shown only now: keep it in a secret store.")


@tokens.command("revoke")
@click.argument("token_ids", nargs=-1, required=True)
@pass_state
def token_revoke(state: State, token_ids: Any) -> None:
    """Revoke tokens: the answering node refuses them at once, the others within config_refresh_interval."""
    done = []
    for token_id in token_ids:
        done.append(run(state, lambda: state.client.revoke_token(token_id)))
        if not state.output.as_json:
            state.output.out.print(f"revoked token {token_id}", markup=False)
    if state.output.as_json:
        state.output.json(done)


tokens.add_command(token_revoke, "delete")


@cli.command()
@pass_state
def whoami(state: State) -> None:
    """The token this command uses: its id, name, scopes and queues."""
    me = run(state, state.client.whoami)
    if state.output.as_json:
        return state.output.json(me)
    me = dict(me)
    if "created_at" in me:
        me["created_at"] = millis_time(me["created_at"])
    state.output.fields(me)


# -- signing keys ------------------------------------------------------------------------

@cli.group("signing-key")
def signing_key() -> None:
    """The secrets a signing queue signs its deliveries with: show, rotate."""


def _show_key(state: State, key: Any, verb: str, queue: str) -> None:
    if state.output.as_json:
        return state.output.json(key)
    state.output.fields({k: "" if v is None else v for k, v in key.items()})
    if verb:
        state.output.note(f"{verb} the signing key of {queue}: give the current secret to its workers"
                          + (f" before {key.get('previous_expires_at')}" if key.get("previous_expires_at") else ""))


@signing_key.command("show")
@click.argument("queue")
@pass_state
def signing_key_show(state: State, queue: str) -> None:
    """The current secret (and the previous one while a rotation overlaps)."""
    _show_key(state, run(state, lambda: state.client.signing_key(queue)), "", queue)


@signing_key.command("rotate")
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Do not ask.")
@pass_state
def signing_key_rotate(state: State, queue: str, yes: bool) -> None:
    """Make a new current secret; the old one still signs until the overlap ends."""
    if not yes:
        click.confirm(f"Rotate the signing key of {queue}?", abort=True, err=True)
    _show_key(state, run(state, lambda: state.client.rotate_signing_key(queue)), "rotated", queue)


# -- live events -----------------------------------------------------------------------

@cli.command()
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
