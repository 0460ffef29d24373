"""
What the commands of ``fireworq`` share: the L{State} the global options set
up, running an API call, the listing a group prints, option values.
"""

from __future__ import annotations

import json
from typing import Any, Callable, List, Optional

import click

from fireworq.client.cli.output import Output, error_text, exit_code
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


def limited(items: Any, limit: int) -> Any:
    """The first ``limit`` of ``items`` (all of them when ``limit`` is 0)."""
    for count, item in enumerate(items):
        if limit and count >= limit:
            return
        yield item
