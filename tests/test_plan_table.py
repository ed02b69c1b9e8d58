"""``planner plan``'s table is a screen, not one row per process; ``--all`` and JSON are complete.

The table lists every start and the first ``PLAN_WAITS_SHOWN`` waiting processes in the planner's
order, then counts the others by their first reason.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from planner.core.events import Code, Decision, Reason
from planner.interfaces.cli import cli
from planner.interfaces.terminal import PLAN_WAITS_SHOWN, plan_table

AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def text_of(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def decisions(starts: int, slots_waits: int, ancestor_waits: int) -> list[Decision]:
    out = [Decision(process=f"s{i:02d}", decision="start") for i in range(starts)]
    out += [
        Decision(process=f"w{i:02d}", decision="wait", reasons=(Reason(Code.SLOTS, "all busy"),))
        for i in range(slots_waits)
    ]
    out += [
        Decision(
            process=f"a{i:02d}",
            decision="wait",
            reasons=(Reason(Code.ANCESTORS, "x (never succeeded)"), Reason(Code.HOLD)),
        )
        for i in range(ancestor_waits)
    ]
    return out


def test_the_table_shows_the_starts_the_first_waits_and_counts_the_rest() -> None:
    out = text_of(plan_table(AT, decisions(3, 15, 12), UTC))
    assert "plan at 2026-03-02 06:00:00 UTC: 3 to start, 27 waiting" in out
    shown = [line.split()[0] for line in out.splitlines()[3:] if line[:1] in "swa"]
    assert shown == [
        *(f"s{i:02d}" for i in range(3)),
        *(f"w{i:02d}" for i in range(15)),
        *(f"a{i:02d}" for i in range(PLAN_WAITS_SHOWN - 15)),
    ]
    assert out.rstrip().endswith(
        "… and 7 more waiting (ancestors 7); `planner plan --all` lists every process,"
        " `--format json` too"
    )


def test_every_row_with_waits_none_and_no_count_when_all_fit() -> None:
    everything = text_of(plan_table(AT, decisions(1, 30, 30), UTC, waits=None))
    assert all(f"w{i:02d}" in everything and f"a{i:02d}" in everything for i in range(30))
    assert "more waiting" not in everything
    fits = text_of(plan_table(AT, decisions(2, 10, 10), UTC))
    assert "a09" in fits and "more waiting" not in fits


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A database with 30 independent processes and 2 slots."""
    path = tmp_path / "many.yaml"
    body = "".join(f"  p{i:02d}: {{run: 'workflows.jobs.demo:noop'}}\n" for i in range(30))
    path.write_text("slots: 2\nprocesses:\n" + body)
    url = f"sqlite:///{tmp_path}/p.db"
    assert CliRunner().invoke(cli, ["--db", url, "apply", str(path)]).exit_code == 0
    return url


def plan(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", url, "plan", "--at", "2026-03-02T06:00", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_planner_plan_bounds_the_table_and_all_lists_every_process(url: str) -> None:
    out = plan(url)
    assert "2 to start, 28 waiting" in " ".join(out.split())  # the title wraps to the table
    assert sum(" wait " in line for line in out.splitlines()) == PLAN_WAITS_SHOWN
    assert f"… and {28 - PLAN_WAITS_SHOWN} more waiting (slots {28 - PLAN_WAITS_SHOWN})" in out
    everything = plan(url, "--all")
    assert sum(" wait " in line for line in everything.splitlines()) == 28
    assert "more waiting" not in everything
    doc = json.loads(plan(url, "--format", "json"))
    assert len(doc["decisions"]) == 30  # the document is always complete
    assert json.loads(plan(url, "--all", "--format", "json")) == doc
