"""
``fireworq push``: one job from flags, or many from JSON lines (a file or
stdin) in batch pushes, with a progress bar and a summary.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, IO, Iterator, List, Optional, Tuple

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from fireworq.client.cli.common import State, json_value, pairs, pass_state, run
from fireworq.client.cli.output import OK, PARTIAL, USAGE, error_text, exit_code
from fireworq.client.errors import APIError

def count_lines(path: str) -> Optional[int]:
    """Lines of a regular file (for the progress bar's total), None for pipes."""
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    last = b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (0 if last == b"\n" else 1)


def read_jobs(
    stream: IO[str], defaults: Dict[str, Any], payload_lines: bool, bad: List[Tuple[int, str]], lines: List[int]
) -> Iterator[Any]:
    """
    The jobs of JSON lines: each line a job object (``defaults`` fill what
    it leaves out), or with ``payload_lines`` each line a payload.  Blank
    lines are skipped; a line that is not JSON (or not an object) is noted
    in ``bad`` and skipped.  A line with every field of ``defaults`` is
    passed on as its bytes (sent as written).  ``lines`` receives the line number of each job.
    """
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError as e:
            bad.append((number, f"not JSON: {e}"))
            continue
        if payload_lines:
            job = dict(defaults)
            job["payload"] = value
        elif isinstance(value, dict):
            if all(key in value for key in defaults):
                # Sent as written: no need to encode it again.
                lines.append(number)
                yield text.encode("utf-8")
                continue
            job = dict(defaults)
            job.update(value)
        else:
            bad.append((number, "a line must be a JSON object (a job), or use --payload-lines"))
            continue
        lines.append(number)
        yield job


@click.command()
@click.argument("category")
@click.argument("worker_url", required=False)
@click.option("--payload", help="The payload as JSON.")
@click.option("--payload-text", help="The payload as a string (sent as is).")
@click.option("-f", "--file", "path", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Push many jobs: JSON lines of job objects from this file ('-' for stdin).")
@click.option("--payload-lines", is_flag=True, help="With --file, each line is a payload for WORKER_URL.")
@click.option("--run-after", type=int, help="Seconds before the first try.")
@click.option("--max-retries", type=int, help="Retries after failures.")
@click.option("--retry-delay", type=int, help="Seconds between tries.")
@click.option("--timeout", "job_timeout", type=int, help="Seconds the worker may take.")
@click.option("--name", help="(B7) A name for people and filters.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="(B7) A tag (repeat).")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE", help="(B7) A delivery header (repeat).")
@click.option("--priority", type=int, help="(B7) -100..100, higher first.")
@click.option("--retry-backoff", type=float, help="(B7) Factor between retry delays.")
@click.option("--retry-max-delay", type=int, help="(B7) Longest retry delay, seconds.")
@click.option("--retry-jitter", is_flag=True, default=None, help="(B7) Spread retry delays.")
@click.option("--success", type=click.Choice(["status", "2xx"]), help="(B7) What counts as success.")
@click.option("--deadline", type=int, help="(B7) Seconds after the push after which no try starts.")
@click.option("--idempotency-key", help="(B7) Push at most once per key (one job only).")
@click.option("--set", "settings", multiple=True, metavar="FIELD=JSON", help="Any other job field.")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Batch requests at a time.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
@pass_state
def push(state: State, category: str, worker_url: Optional[str], payload: Optional[str], payload_text: Optional[str],
         path: Optional[str], payload_lines: bool, settings: Any, concurrency: int, progress: Optional[bool],
         tags: Any, headers: Any, job_timeout: Optional[int], **options: Any) -> None:
    """
    Push one job of CATEGORY to WORKER_URL, or many with --file.

    With --file each line is a job object ({"url": …, "payload": …, …}); the
    flags (and WORKER_URL) are defaults for what a line leaves out.  Jobs
    are sent in batches of 1000; a line the server refuses is reported and
    the rest of its batch is still pushed.
    """
    fields: Dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if job_timeout is not None:
        fields["timeout"] = job_timeout
    if tags:
        fields["tags"] = pairs(tags, "--tag")
    if headers:
        fields["headers"] = pairs(headers, "--header")
    fields.update({k: json_value(v) for k, v in pairs(settings, "--set").items()})
    if payload is not None and payload_text is not None:
        raise click.UsageError("give --payload or --payload-text, not both")
    if path is None:
        if payload_lines:
            raise click.UsageError("--payload-lines needs --file")
        if not worker_url:
            raise click.UsageError("give WORKER_URL (or --file)")
        body = json_value(payload) if payload is not None else payload_text
        key = fields.pop("idempotency_key", None)
        job = run(state, lambda: state.client.push(category, worker_url, body, idempotency_key=key, **fields))
        replayed = " (replayed: pushed before with this key)" if job.replayed else ""
        state.output.result(job.to_json(), f"pushed job {job.id} to queue {job.queue_name}{replayed}")
        return
    if payload is not None or payload_text is not None:
        raise click.UsageError("--payload is for one job; with --file the lines hold the payloads")
    if "idempotency_key" in fields:
        raise click.UsageError("--idempotency-key is for one job; with --file give each line its own idempotency_key")
    if worker_url:
        fields["url"] = worker_url
    push_file(state, category, path, fields, payload_lines, concurrency, progress)


def push_file(state: State, category: str, path: str, defaults: Dict[str, Any], payload_lines: bool,
              concurrency: int, progress: Optional[bool]) -> None:
    """Push the jobs of a JSON-lines file and print the summary; exit 6 when some were not pushed."""
    output = state.output
    total = count_lines(path)
    bad: List[Tuple[int, str]] = []
    lines: List[int] = []
    show = output.err.is_terminal if progress is None else progress
    started = time.monotonic()
    with click.open_file(path, "r", encoding="utf-8") as stream:
        bar = Progress(
            TextColumn("pushing"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>9} jobs/s"), TimeElapsedColumn(),
            console=output.err, disable=not show, transient=False,
        )
        with bar:
            task = bar.add_task("push", total=total, rate="")
            counted = [0]

            def advance(stored: int, failed: int) -> None:
                counted[0] += stored + failed
                done = counted[0] + len(bad)
                elapsed = max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=done, rate=f"{done / elapsed:,.0f}")

            try:
                result = state.client.push_many(
                    category, read_jobs(stream, defaults, payload_lines, bad, lines),
                    concurrency=concurrency, keep_jobs=False, on_progress=advance,
                )
                bar.update(task, completed=result.total + len(bad))
            except UnicodeDecodeError as e:
                output.error(f"{path}: not UTF-8 text: {e}")
                raise SystemExit(USAGE)
    elapsed = time.monotonic() - started
    failures = [
        {"line": lines[f.index + i], "status": getattr(f.error, "status", None), "message": error_text(f.error)}
        for f in result.failures for i in range(f.count)
    ]
    failures += [{"line": number, "status": None, "message": message} for number, message in bad]
    failures.sort(key=lambda f: f["line"])
    summary = {
        "lines": result.total + len(bad),
        "pushed": result.pushed,
        "failed": len(failures),
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(result.pushed / elapsed) if elapsed > 0 else None,
        "failures": failures,
    }
    if output.as_json:
        output.json(summary)
    else:
        output.note(
            f"pushed {result.pushed} of {summary['lines']} jobs to {category} in {elapsed:.1f} s "
            f"({summary['jobs_per_second'] or 0:,} jobs/s); {len(failures)} failed"
        )
        for failure in failures[:20]:
            output.note(f"  line {failure['line']}: {failure['message']}")
        if len(failures) > 20:
            output.note(f"  … and {len(failures) - 20} more (--json lists them all)")
    if failures:
        codes = {exit_code(f.error) for f in result.failures if not isinstance(f.error, APIError) or f.error.status != 400}
        if result.pushed == 0 and len(codes) == 1:
            raise SystemExit(codes.pop())
        raise SystemExit(PARTIAL)
    raise SystemExit(OK)
