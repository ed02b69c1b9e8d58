"""``planner stats`` and ``planner purge`` for people and programs.

Pure rendering: the store's ``ProcessStats`` and ``Purged`` in, a rich table, lines or the JSON
documents out (the ``stats`` document is public: SPEC "JSON outputs").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.table import Table

from planner.interfaces.terminal.style import add_row, iso, new_table, seconds_text, when_text
from registry.storage.retention import Purged
from registry.storage.statistics import ProcessStats

__all__ = ["purge_lines", "stats_json", "stats_table"]


def stats_json(figures: Sequence[ProcessStats], since: datetime, tz: tzinfo) -> dict[str, Any]:
    return {"since": iso(since, tz), "processes": [f.document() for f in figures]}


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def stats_table(figures: Sequence[ProcessStats], since: datetime, tz: tzinfo) -> Table:
    """One row per process; the counts first, so a narrow terminal drops the figures last."""
    table = new_table(
        f"runs created since {when_text(since, tz)}",
        "process",
        "runs",
        "ok",
        "failed",
        "timed out",
        "cancelled",
        "success",
        "p50",
        "p90",
        "late p90",
    )
    for f in figures:
        add_row(
            table,
            f.process,
            str(f.runs),
            str(f.succeeded),
            str(f.failed),
            str(f.timed_out),
            str(f.cancelled),
            _rate(f.success_rate),
            seconds_text(f.duration_p50_s),
            seconds_text(f.duration_p90_s),
            seconds_text(f.lateness_p90_s),
        )
    return table


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def purge_lines(purged: Purged, *, dry_run: bool) -> list[str]:
    """What was (or, dry, would be) removed, one kind per line; one line if nothing."""
    verb = "would remove" if dry_run else "removed"
    if purged.total == 0:
        return [f"nothing to purge ({'dry run' if dry_run else 'nothing removed'})"]
    lines = []
    if purged.runs or purged.attempts:
        lines.append(
            f"{verb} {_count(purged.runs, 'run', 'runs')} "
            f"({_count(purged.attempts, 'attempt', 'attempts')})"
        )
    if purged.requests:
        lines.append(f"{verb} {_count(purged.requests, 'handled request', 'handled requests')}")
    if purged.logs:
        lines.append(f"{verb} the logs of {_count(purged.logs, 'attempt', 'attempts')}")
    if purged.decisions:
        lines.append(f"{verb} {_count(purged.decisions, 'decision', 'decisions')}")
    return lines
