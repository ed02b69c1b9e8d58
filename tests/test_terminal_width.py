"""Every table of the command line at 80 columns: no line longer than 80, no time split over two
lines, times compact in the registry's zone (named once), the least important columns left out
first; ``--wide`` shows them all. And plurals that agree with their counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console, RenderableType

from planner.core.events import Code, Decision, Explanation, Reason
from planner.interfaces.terminal import (
    FinishedAttempt,
    RunReport,
    attempts_table,
    explanation_view,
    plan_table,
    run_summary_view,
    simulation_view,
    status_view,
)
from planner.interfaces.terminal.fit import Col, FitTable
from planner.interfaces.terminal.style import Times, plural
from planner.simulation.simulate import simulate
from registry.lifecycle import RunStatus
from registry.records import ActiveRun, AttemptRecord, ErrorInfo, LoggedDecision
from tests.factories import proc, registry

MADRID = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # 09:00 in Madrid
LONG_ERROR = "the upstream database refused the connection: too many clients already, retry later"


def render(renderable: RenderableType, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def assert_fits(lines: list[str], expected_times: list[str], width: int = 80) -> None:
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, "\n".join(too_long)
    text = "\n".join(lines)
    for t in expected_times:
        assert t in text, f"{t!r} is not on one line:\n{text}"


def attempts(n: int = 3) -> list[AttemptRecord]:
    out = []
    for i in range(n):
        end = NOW - timedelta(days=i, minutes=1)
        out.append(
            AttemptRecord(
                process=f"extract_customers_{i}",
                run_id=f"extract_customers_{i}-12",
                attempt=2,
                status=RunStatus.FAILED,
                scheduled=end - timedelta(minutes=5),
                queued=end - timedelta(minutes=5),
                start=end - timedelta(seconds=13.4),
                end=end,
                worker="tls://127.0.0.1:42201",
                error=ErrorInfo(type="RuntimeError", message=LONG_ERROR),
            )
        )
    return out


def test_compact_times_today_this_year_and_another() -> None:
    times = Times(MADRID, NOW)
    assert times(NOW) == "09:00:00"
    assert times(NOW - timedelta(days=1)) == "12-01 09:00"
    assert times(NOW - timedelta(days=400)) == "2025-10-28 09:00"
    assert Times(MADRID, NOW, wide=True)(NOW) == "2026-12-02 09:00:00"
    assert Times(MADRID)(NOW) == "2026-12-02 09:00:00"  # no "today" to compare with: in full
    assert times.zone == "Europe/Madrid" and Times(UTC).zone == "UTC"


def test_history_at_80_columns_drops_the_least_important_columns() -> None:
    table = attempts_table(attempts(), MADRID, now=NOW)
    lines = render(table)
    times = Times(MADRID, NOW)
    assert_fits(lines, [times(a.start) for a in attempts() if a.start])
    header = lines[0]
    for kept in ("run id", "status", "start", "error"):
        assert kept in header
    for dropped in ("worker", "scheduled", "end"):
        assert dropped not in header
    assert lines[-1] == "times in Europe/Madrid"  # the zone, once
    assert "RuntimeError: the upstream" in "\n".join(lines)  # the error wraps, whole words
    # piped (200 columns) it all fits
    wide_header = render(table, width=200)[0]
    assert all(c in wide_header for c in ("process", "worker", "scheduled", "end", "duration"))


def test_wide_keeps_every_column_with_times_in_full() -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(attempts_table(attempts(), MADRID, now=NOW, wide=True), crop=False)
    lines = console.export_text().splitlines()
    assert all(c in lines[0] for c in ("process", "worker", "scheduled", "end", "error"))
    assert max(len(line) for line in lines) > 80  # the terminal wraps them: that is --wide
    assert "2026-12-02 08:54:00" in "\n".join(lines)  # scheduled, in full, in Madrid


def test_plan_at_80_columns() -> None:
    decisions = [
        Decision(process="extract", decision="start"),
        Decision(
            process="report_daily_for_the_board",
            decision="wait",
            reasons=(
                Reason(Code.ANCESTORS, "extract (running), load_customers (never succeeded)"),
                Reason(Code.NOT_BEFORE, "03:00 (in 18h 00m)"),
            ),
        ),
    ]
    lines = render(plan_table(NOW, decisions, MADRID, now=NOW))
    assert_fits(lines, ["09:00:00"])
    assert lines[0] == "plan at 09:00:00 Europe/Madrid: 1 to start, 1 waiting"


def test_simulation_at_80_columns() -> None:
    reg = registry(
        proc("extract_customers", expected_duration=3600),
        proc("load_customers_into_the_warehouse", ancestors=["extract_customers"]),
        proc("report", ancestors=["load_customers_into_the_warehouse"], expected_duration=600),
        timezone="Europe/Madrid",
    )
    sim = simulate(reg, start=NOW, until=NOW + timedelta(days=1), slots=2)
    lines = render(simulation_view(sim, MADRID, now=NOW))
    times = Times(MADRID, NOW)
    assert_fits(lines, [times(r.start) for r in sim.runs])
    assert "3 runs (3 succeeded)" in "\n".join(lines)


def test_explain_at_80_columns() -> None:
    ex = Explanation(
        process="report_daily_for_the_board",
        at=NOW,
        decision="wait",
        reasons=(Reason(Code.ANCESTORS, "extract (running), load_customers (never succeeded)"),),
        running=(),
        next_possible=NOW + timedelta(hours=18),
        blocked_until="extract and load_customers to succeed",
    )
    logged = [
        LoggedDecision(
            at=NOW - timedelta(days=1, minutes=i),
            process="report_daily_for_the_board",
            decision="wait",
            reasons=(("ancestors", "extract (running), load_customers (never succeeded)"),),
        )
        for i in range(3)
    ]
    lines = render(explanation_view(ex, logged, attempts(), MADRID, now=NOW))
    times = Times(MADRID, NOW)
    assert_fits(lines, [times(d.at) for d in logged] + [times(NOW + timedelta(hours=18))])
    assert "Europe/Madrid" in lines[0]


def test_status_at_80_columns() -> None:
    reg = registry(proc("extract_customers_0"), proc("b"), timezone="Europe/Madrid")
    active = [
        ActiveRun(
            run_id=f"extract_customers_{i}-13",
            process=f"extract_customers_{i}",
            attempt=1,
            status=RunStatus.RETRYING if i else RunStatus.RUNNING,
            scheduled=NOW - timedelta(days=i),
            started=NOW - timedelta(days=i, minutes=3),
            retry_at=NOW + timedelta(minutes=5) if i else None,
        )
        for i in range(2)
    ]
    iso = (NOW - timedelta(hours=2)).astimezone(MADRID).isoformat()
    planners: dict[str, Any] = {
        "leader": {"instance": "x", "host": "host-a", "pid": 42, "since": iso, "renewed": iso},
        "standbys": [],
        "last_seen": None,
        "triggers": [{"request": 7, "process": "b", "force": False, "requested": iso}],
    }
    view = status_view(
        reg,
        active,
        attempts(),
        MADRID,
        failures_since=NOW - timedelta(days=1),
        planners=planners,
        now=NOW,
    )
    lines = render(view)
    times = Times(MADRID, NOW)
    assert_fits(lines, [times(r.started) for r in active] + ["07:00:00"])
    assert lines[0].startswith("2 processes, slots: cluster threads, timezone Europe/Madrid")
    nobody: dict[str, Any] = {"leader": None, "standbys": [], "last_seen": None}
    alone = status_view(reg, [], [], MADRID, failures_since=NOW, planners=nobody, now=NOW)
    assert "planner: none alive" in render(alone)


def test_run_summary_at_80_columns_and_its_plurals() -> None:
    one = RunReport(
        attempts=(
            FinishedAttempt(
                process="b",
                run_id="b-1",
                attempt=1,
                status="failed",
                duration_s=0.5,
                error=ErrorInfo(type="RuntimeError", message=LONG_ERROR * 3),
            ),
        ),
        started=1,
    )
    lines = render(run_summary_view(one))
    assert_fits(lines, [])
    text = " ".join(" ".join(lines).split())
    assert "1 attempt started; 1 finished: 1 failed" in text
    assert "1 attempt failed:" in text and "1 attempts" not in text
    two = RunReport(
        attempts=(
            FinishedAttempt(process="a", run_id="a-1", attempt=1, status="succeeded"),
            FinishedAttempt(process="a", run_id="a-2", attempt=1, status="succeeded"),
        ),
        started=2,
        ahead=1,
    )
    assert "2 attempts started (1 handed to Dask ahead); 2 finished: 2 succeeded" in render(
        run_summary_view(two)
    )


def test_a_table_too_narrow_for_its_essential_columns_folds_them_within_the_width() -> None:
    table = FitTable([Col("process"), Col("status")])
    table.add_row("x" * 150, "succeeded")
    lines = render(table)
    assert_fits(lines, ["succeeded"])
    assert "".join(line.split("│")[0].strip() for line in lines[2:]) == "x" * 150


@pytest.mark.parametrize(
    ("n", "word", "many", "text"),
    [
        (0, "attempt", None, "0 attempts"),
        (1, "attempt", None, "1 attempt"),
        (2, "attempt", None, "2 attempts"),
        (1, "process", "processes", "1 process"),
        (2_000, "process", "processes", "2,000 processes"),
    ],
)
def test_plural(n: int, word: str, many: str | None, text: str) -> None:
    assert plural(n, word, many) == text


def test_stats_at_80_columns() -> None:
    from planner.interfaces.terminal.figures import stats_table
    from registry.storage.statistics import ProcessStats

    figures = [
        ProcessStats(
            process=f"load_customers_into_the_warehouse_{i}",
            runs=1200,
            succeeded=1100,
            failed=60,
            timed_out=20,
            cancelled=20,
            duration_p50_s=75.5,
            duration_p90_s=3700,
            lateness_p90_s=12.5,
        )
        for i in range(2)
    ]
    lines = render(stats_table(figures, NOW - timedelta(days=7), MADRID, now=NOW))
    assert_fits(lines, ["11-25 09:00"])
    header = lines[1]
    assert all(c in header for c in ("process", "runs", "ok", "failed", "success", "p90"))
    assert "late p90" not in header
