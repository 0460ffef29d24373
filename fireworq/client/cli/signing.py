"""
``fireworq signing-key``: show and rotate a signing queue's secret.
"""

from __future__ import annotations

from typing import Any

import click

from fireworq.client.cli.common import State, pass_state, run


@click.group("signing-key")
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
