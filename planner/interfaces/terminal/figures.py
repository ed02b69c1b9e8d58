"""``planner stats`` and ``planner purge`` for people and programs.

Pure rendering: the store's ``ProcessStats`` and ``Purged`` in, a rich table, lines or the JSON
documents out (the ``stats`` document is public: SPEC "JSON outputs").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from planner.interfaces.terminal.fit import Col, FitTable
from planner.interfaces.terminal.style import Times, iso, seconds_text
from registry.storage.retention import Purged
from registry.storage.statistics import ProcessStats

__all__ = ["purge_lines", "stats_json", "stats_table"]


def stats_json(figures: Sequence[ProcessStats], since: datetime, tz: tzinfo) -> dict[str, Any]:
    return {"since": iso(since, tz), "processes": [f.document() for f in figures]}


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def stats_table(
    figures: Sequence[ProcessStats],
    since: datetime,
    tz: tzinfo,
    *,
    now: datetime | None = None,
    wide: bool = False,
) -> FitTable:
    """One row per process; on a narrow terminal the figures go before the counts (lateness,
    then p50, then the rarer outcomes), ``wide`` keeps them all."""
    times = Times(tz, now, wide)
    table = FitTable(
        [
            Col("process"),
            Col("runs"),
            Col("ok", keep=90),
            Col("failed", keep=90),
            Col("timed out", keep=50),
            Col("cancelled", keep=40),
            Col("success", keep=80),
            Col("p50", keep=30),
            Col("p90", keep=60),
            Col("late p90", keep=20),
        ],
        title=f"runs created since {times(since)} {times.zone}",
        wide=wide,
    )
    for f in figures:
        table.add_row(
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
