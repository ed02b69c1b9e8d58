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


# -- a template's processes grouped --------------------------------------------------------------


def waiting(name: str, *reasons: Reason) -> Decision:
    return Decision(process=name, decision="wait", reasons=reasons)


def test_paired_members_waiting_on_their_own_ancestors_say_so_in_one_row() -> None:
    items = ("customers", "orders", "products")
    group = [
        waiting(f"publish.{t}", Reason(Code.ANCESTORS, f"extract.{t} (never succeeded)"))
        for t in items
    ]
    templates = {f"publish.{t}": "publish" for t in items}
    out = text_of(plan_table(AT, group, UTC, templates=templates))
    [row] = [line for line in out.splitlines() if "publish" in line]
    assert "publish.* ×3" in row
    assert "ancestors: extract.{item} (never succeeded)" in row
    assert "extract.customers" not in out  # not the first member's reasons for all three


def test_members_whose_reasons_differ_are_not_shown_with_the_first_ones() -> None:
    group = [
        waiting("publish.a", Reason(Code.ANCESTORS, "extract (running)")),
        waiting("publish.b", Reason(Code.ANCESTORS, "extract (running)")),
        waiting("publish.c", Reason(Code.ANCESTORS, "load (failed)")),
    ]
    templates = {d.process: "publish" for d in group}
    rows = [
        " ".join(line.split())
        for line in text_of(plan_table(AT, group, UTC, templates=templates)).splitlines()
        if "publish" in line
    ]
    assert rows == [
        "publish.* ×2 │ wait │ ancestors: extract (running)",
        "publish.c │ wait │ ancestors: load (failed)",
    ]


def test_many_different_details_are_summed_up_not_hidden() -> None:
    group = [
        waiting(f"t.i{n}", Reason(Code.ANCESTORS, f"up{n} (never succeeded)"), Reason(Code.HOLD))
        for n in range(10)
    ]
    templates = {d.process: "t" for d in group}
    out = " ".join(text_of(plan_table(AT, group, UTC, templates=templates)).split())
    assert "t.* ×10 │ wait │ ancestors: up0 (never succeeded), … (10 different); hold" in out


def test_the_footer_counts_a_hidden_groups_processes() -> None:
    """25 held processes, then a held template of 100: the table shows 20 rows, and the footer
    counts the 5 processes and the 100 of the template it did not show."""
    held = Reason(Code.HOLD)
    plain = [waiting(f"p{n:02d}", held) for n in range(25)]
    members = [waiting(f"t.i{n:03d}", held) for n in range(100)]
    templates = {d.process: "t" for d in members}
    out = text_of(plan_table(AT, plain + members, UTC, templates=templates))
    assert "0 to start, 125 waiting" in out
    assert "… and 105 more waiting (hold 105)" in out
    shown = text_of(plan_table(AT, members + plain, UTC, templates=templates))
    assert "t.* ×100" in shown and "… and 6 more waiting (hold 6)" in shown


def test_a_template_of_10_000_processes_is_explained_in_a_few_lines() -> None:
    from planner.interfaces.terminal.run_views import template_view

    items = [f"i{n:05d}" for n in range(10_000)]
    decided = [Decision(process=f"t.{items[0]}", decision="start")]
    decided += [
        waiting(f"t.{item}", Reason(Code.ANCESTORS, f"up.{item} (never succeeded)"))
        for item in items[1:9_000]
    ]
    decided += [waiting(f"t.{item}", Reason(Code.SLOTS, "all 4 busy")) for item in items[9_000:]]
    out = text_of(template_view("t", AT, decided, UTC))
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert len(lines) < 15
    assert "template t at 2026-03-02 06:00:00 UTC: 10,000 processes, 1 to start, 9,999 waiting" in (
        " ".join(lines)
    )
    assert "1 │ start │ │ t.i00000" in lines
    assert (
        "8,999 │ wait │ ancestors: up.{item} (never succeeded) │ t.i00001, t.i00002, t.i00003,"
        " t.i00004, t.i00005, … and 8994 more"
    ) in lines
    assert (
        "1,000 │ wait │ slots: all 4 busy │ t.i09000, t.i09001, t.i09002, t.i09003, t.i09004, …"
        in (" ".join(lines))
    )
    assert (
        "`planner explain t.ITEM` explains one process; `planner explain t --all` (or"
        " `--format json`) lists every one"
    ) in " ".join(lines)
    every = text_of(template_view("t", AT, decided[:50], UTC, show_all=True))
    assert all(f"t.{item}" in every for item in items[:50])  # expanded on demand


def test_planner_plan_groups_paired_members_by_their_reasons(tmp_path: Path) -> None:
    path = tmp_path / "paired.yaml"
    path.write_text(
        "processes:\n"
        "  extract: {foreach: [orders, customers, products], run: workflows.jobs.demo:noop,"
        " hold: true}\n"
        "  publish:\n"
        "    foreach: [orders, customers, products]\n"
        "    run: workflows.jobs.demo:noop\n"
        '    ancestors: ["extract.{item}"]\n'
    )
    url = f"sqlite:///{tmp_path}/p.db"
    assert CliRunner().invoke(cli, ["--db", url, "apply", str(path)]).exit_code == 0
    rows = [" ".join(line.split()) for line in plan(url, "--wide").splitlines()]
    assert "extract.* ×3 │ wait │ hold" in rows
    assert "publish.* ×3 │ wait │ ancestors: extract.{item} (never succeeded)" in rows


def test_planner_explain_sums_a_template_up_and_lists_each_process_with_all(
    tmp_path: Path,
) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "processes:\n"
        "  t: {foreach: [" + ", ".join(f"i{n:03d}" for n in range(200)) + "],"
        " run: workflows.jobs.demo:noop, hold: true}\n"
    )
    url = f"sqlite:///{tmp_path}/m.db"
    assert CliRunner().invoke(cli, ["--db", url, "apply", str(path)]).exit_code == 0

    def explain(*args: str) -> list[str]:
        result = CliRunner().invoke(cli, ["--db", url, "explain", "t", "--wide", *args])
        assert result.exit_code == 0, result.output
        return [" ".join(line.split()) for line in result.output.splitlines()]

    summed = explain()
    assert len(summed) < 15
    assert any(line.startswith("200 │ wait │ hold") for line in summed)
    every = explain("--all")
    assert all(any(f"t.i{n:03d}" in line for line in every) for n in range(200))
