"""
``fireworq tokens`` and ``whoami``: the tokens of a server with authentication.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from fireworq.client.cli.common import State, listing, pass_state, run
from fireworq.client.cli.output import millis_time, names


@click.group(invoke_without_command=True)
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


@click.command()
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
