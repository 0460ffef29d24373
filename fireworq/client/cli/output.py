"""
What the command line prints: tables (rich) for people, JSON for scripts
(``--json``), errors on stderr, and the exit codes of docs/cli.md.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterable, List, Optional, Sequence

import click
from rich.console import Console
from rich.table import Table

from fireworq.client.errors import APIError, Forbidden, NotFound, TransportError, Unauthorized

#: Exit codes (docs/cli.md).
OK = 0
FAILED = 1          # the server refused the request (an API error not listed below)
USAGE = 2           # bad flags or input (click's own code for usage errors)
UNREACHABLE = 3     # no answer: connection refused, broken, timed out
NOT_FOUND = 4       # 404
DENIED = 5          # 401 or 403
PARTIAL = 6         # a push of many jobs stored some but not all


def exit_code(error: BaseException) -> int:
    """The exit code for an error of the client."""
    if isinstance(error, TransportError):
        return UNREACHABLE
    if isinstance(error, NotFound):
        return NOT_FOUND
    if isinstance(error, (Unauthorized, Forbidden)):
        return DENIED
    return FAILED


def error_text(error: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(error, APIError):
        return f"{error.status} {error.reason or 'Error'}: {error.message}"
    return str(error)


class Output:
    """Prints results as tables or JSON."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        # Piped into another program, a table keeps each row on one line.
        piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
        self.out = Console(soft_wrap=False, highlight=False, width=100_000 if piped else None)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def json(self, value: Any) -> None:
        """Print ``value`` as JSON (one document)."""
        click.echo(json.dumps(value, ensure_ascii=False, indent=None if not sys.stdout.isatty() else 2))

    def json_line(self, value: Any) -> None:
        """Print ``value`` as one JSON line (for streams)."""
        click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: Optional[str] = None) -> None:
        """Print a table; cells None are shown empty."""
        table = Table(title=title, box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        count = 0
        for row in rows:
            table.add_row(*["" if v is None else str(v) for v in row])
            count += 1
        if count == 0:
            self.err.print("(none)")
            return
        self._print_trimmed(table)

    def _print_trimmed(self, renderable: Any) -> None:
        with self.out.capture() as captured:
            self.out.print(renderable)
        click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def fields(self, value: dict) -> None:
        """Print an object as ``name  value`` lines."""
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, item in value.items():
            table.add_row(str(key), item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
        self._print_trimmed(table)

    def result(self, value: Any, text: str = "") -> None:
        """Print a single result: JSON with ``--json``, else ``text`` or its fields."""
        if self.as_json:
            self.json(value)
        elif text:
            self.out.print(text, markup=False)
        elif isinstance(value, dict):
            self.fields(value)
        else:
            click.echo(json.dumps(value, ensure_ascii=False, indent=2))

    def note(self, text: str) -> None:
        """A message for people, on stderr."""
        self.err.print(text, markup=False)

    def error(self, text: str) -> None:
        """An error message on stderr."""
        self.err.print(f"error: {text}", markup=False, style="red")


def to_json(value: Any) -> Any:
    """Objects of the client as their JSON (lists too)."""
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


def short(value: Any, width: int = 40) -> str:
    """A value as compact JSON, cut to ``width`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def millis_time(value: Any) -> Any:
    """Milliseconds since the epoch as an RFC 3339 time in UTC (other values as they are)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        import datetime

        when = datetime.datetime.fromtimestamp(value / 1000, datetime.timezone.utc)
        return when.isoformat(timespec="seconds").replace("+00:00", "Z")
    return value


def names(items: List[Any]) -> str:
    """A list for a table cell."""
    return ", ".join(str(i) for i in items or [])
