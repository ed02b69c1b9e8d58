"""The house style of terminal output, shared by every view: one console, one way to write a value.

Table cells are ``Text`` objects, never markup strings, so a ``[`` in an error message or a
detail prints as it is. When stdout is not a terminal, rich drops colour by itself; we also widen
the console so piped tables are not folded to 80 columns. Times in tables are in the registry's
timezone: compact in tables (``Times``), in full elsewhere (``when_text``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from registry.definitions.durations import format_duration
from registry.lifecycle import RunStatus

__all__ = [
    "FAILED",
    "Times",
    "add_row",
    "console",
    "emit_json",
    "iso",
    "new_table",
    "plural",
    "reasons_text",
    "seconds_text",
    "show",
    "status_text",
    "value_text",
    "when_text",
    "zone_name",
]

#: Terminal statuses a user must hear about.
FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
_PIPE_WIDTH = 200
_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "timed_out": "bold red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "cyan",
    "retrying": "magenta",
}


# -- output -------------------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout/stderr (looked up now, so test runners can swap them)."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not _isatty(stream) and "COLUMNS" not in os.environ
    return Console(file=stream, highlight=False, emoji=False, width=_PIPE_WIDTH if piped else None)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def show(*renderables: RenderableType, stderr: bool = False, wide: bool = False) -> None:
    """Print; ``wide`` (``--wide``) prints lines longer than the terminal uncropped."""
    out = console(stderr=stderr)
    for item in renderables:
        out.print(item, crop=not wide)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


# -- values -------------------------------------------------------------------------------------


def iso(value: datetime | None, tz: tzinfo) -> str | None:
    return None if value is None else value.astimezone(tz).isoformat()


def when_text(value: datetime | None, tz: tzinfo) -> str:
    """A time in full: seconds precision, with the offset of the registry's timezone."""
    return "" if value is None else value.astimezone(tz).isoformat(sep=" ", timespec="seconds")


def zone_name(tz: tzinfo) -> str:
    """How a header names the registry's timezone: its IANA key (``Europe/Madrid``, ``UTC``)."""
    return str(getattr(tz, "key", None) or tz)


@dataclass(frozen=True, slots=True)
class Times:
    """How a view writes times: in the registry's zone ``tz`` (named once, in a header), to the
    second today and to the minute on other days — ``03:00:12``, ``12-01 03:00``, and
    ``2025-12-01 03:00`` in another year — "today" being that of ``now``. ``wide``, or no
    ``now`` to compare with, writes every time in full (``2026-12-01 03:00:12``)."""

    tz: tzinfo
    now: datetime | None = None
    wide: bool = False

    def __call__(self, value: datetime | None) -> str:
        if value is None:
            return ""
        local = value.astimezone(self.tz)
        if self.wide or self.now is None:
            return local.strftime("%Y-%m-%d %H:%M:%S")
        today = self.now.astimezone(self.tz).date()
        if local.date() == today:
            return local.strftime("%H:%M:%S")
        if local.year == today.year:
            return local.strftime("%m-%d %H:%M")
        return local.strftime("%Y-%m-%d %H:%M")

    @property
    def zone(self) -> str:
        return zone_name(self.tz)


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 attempt``, ``2 attempts`` (``many`` when adding an s will not do: ``1 process``)."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def seconds_text(value: float | None) -> str:
    if value is None or not math.isfinite(value) or value < 0:
        return ""
    return format_duration(timedelta(seconds=round(value, 2 if value < 10 else 1)))


def value_text(value: Any) -> str:
    """A definition value as one would write it in the YAML file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime | time):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, tuple | list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


# -- cells and tables ---------------------------------------------------------------------------


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def reasons_text(reasons: Iterable[Any]) -> Text:
    return Text("; ".join(str(r) for r in reasons))


def new_table(title: str | None, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def add_row(table: Table, *cells: str | Text) -> None:
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))
