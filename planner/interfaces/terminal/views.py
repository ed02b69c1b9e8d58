"""The tables and views the commands print for people (``--format table``, the default).

Each function is pure: records of the core and the store in, a rich renderable or lines of text
out; ``planner.interfaces.cli`` prints them. ``status_view`` is drawn from ``status_json``, so the
table and the document never disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from planner.core.events import Decision, Explanation
from planner.interfaces.terminal.documents import status_json
from planner.interfaces.terminal.style import (
    FAILED,
    add_row,
    new_table,
    reasons_text,
    seconds_text,
    status_text,
    when_text,
)
from planner.simulation.simulate import Simulation
from registry.definitions.durations import format_duration
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import ActiveRun, ApplyResult, AttemptRecord, ErrorInfo, LoggedDecision

__all__ = [
    "PLAN_WAITS_SHOWN",
    "apply_lines",
    "attempts_table",
    "explanation_view",
    "gantt",
    "plan_table",
    "run_summary_view",
    "simulation_view",
    "status_view",
]


# -- apply --------------------------------------------------------------------------------------


def apply_lines(result: ApplyResult) -> list[str]:
    if result.unchanged:
        return ["no changes"]
    return [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("added", result.added),
            ("changed", result.changed),
            ("removed", result.removed),
        )
        if names
    ]


# -- plan ---------------------------------------------------------------------------------------


#: waiting processes the ``plan`` table lists before it counts the rest (``planner plan --all``)
PLAN_WAITS_SHOWN = 20


def plan_table(
    at: datetime,
    decisions: Sequence[Decision],
    tz: tzinfo,
    *,
    waits: int | None = PLAN_WAITS_SHOWN,
) -> RenderableType:
    """Every start, then the first ``waits`` waiting processes in the planner's order (the best
    candidates held back by capacity first), and a count of the others by their first reason;
    ``waits=None`` lists them all. A registry of 20,000 processes is a screen, not 20,000 rows:
    the JSON document (``plan_json``) is the complete one."""
    starts = sum(d.decision == "start" for d in decisions)
    table = new_table(
        f"plan at {when_text(at, tz)}: {starts} to start, {len(decisions) - starts} waiting",
        "process",
        "decision",
        "reasons",
    )
    hidden: Counter[str] = Counter()
    shown_waits = 0
    for d in decisions:
        if d.decision != "start":
            if waits is not None and shown_waits >= waits:
                hidden[d.reasons[0].code.value if d.reasons else "-"] += 1
                continue
            shown_waits += 1
        style = "bold green" if d.decision == "start" else ""
        add_row(table, d.process, Text(d.decision, style=style), reasons_text(d.reasons))
    if not hidden:
        return table
    counts = ", ".join(f"{code} {n:,}" for code, n in hidden.most_common())
    more = sum(hidden.values())
    return Group(
        table,
        Text(
            f"… and {more:,} more waiting ({counts}); "
            "`planner plan --all` lists every process, `--format json` too"
        ),
    )


# -- simulate -----------------------------------------------------------------------------------


def simulation_view(sim: Simulation, tz: tzinfo, *, width: int = 60) -> Group:
    runs = sorted(sim.runs, key=lambda r: (r.start, r.process, r.attempt))
    table = new_table(
        f"simulation {when_text(sim.start, tz)} → {when_text(sim.end, tz)}, {sim.slots} slots",
        "process",
        "run id",
        "attempt",
        "start",
        "end",
        "duration",
        "status",
    )
    for r in runs:
        add_row(
            table,
            r.process,
            r.run_id,
            str(r.attempt),
            when_text(r.start, tz),
            when_text(r.end, tz),
            seconds_text((r.end - r.start).total_seconds()),
            status_text(r.status.value),
        )
    counts = Counter(r.status.value for r in runs)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs"
    footer = Text(f"{len(runs)} runs ({tally}); makespan {format_duration(sim.makespan)}")
    return Group(table, footer, Text(""), Text(gantt(sim, tz, width=width)))


def gantt(sim: Simulation, tz: tzinfo, *, width: int = 60) -> str:
    """A crude text Gantt chart: one row per process, ``#`` succeeded, ``x`` failed, ``>`` running
    at the end of the simulation; the axis spans from the start to the last run's end."""
    if not sim.runs:
        return "(no runs)"
    t0 = sim.start
    t1 = min(max(r.end for r in sim.runs), sim.end) if sim.end > t0 else t0
    span = max((t1 - t0).total_seconds(), 1e-9)
    order: list[str] = []
    for r in sorted(sim.runs, key=lambda r: (r.start, r.process)):
        if r.process not in order:
            order.append(r.process)
    rows = {name: ["."] * width for name in order}
    for r in sim.runs:
        first = int((r.start - t0).total_seconds() / span * width)
        last = math.ceil((min(r.end, t1) - t0).total_seconds() / span * width)
        mark = (
            "#"
            if r.status is RunStatus.SUCCEEDED
            else ">"
            if r.status is RunStatus.RUNNING
            else "x"
        )
        for col in range(max(first, 0), min(max(last, first + 1), width)):
            rows[r.process][col] = mark
    pad = max(len(name) for name in order)
    lines = [f"{name.ljust(pad)} |{''.join(cells)}|" for name, cells in rows.items()]
    left, right = when_text(t0, tz), when_text(t1, tz)
    axis = f"{' ' * pad}  {left}{right.rjust(max(width - len(left), len(right) + 1))}"
    return "\n".join([*lines, axis])


# -- explain ------------------------------------------------------------------------------------


def explanation_view(
    ex: Explanation,
    decisions: Sequence[LoggedDecision],
    attempts: Sequence[AttemptRecord],
    tz: tzinfo,
) -> Group:
    style = {"start": "bold green", "running": "cyan"}.get(ex.decision, "bold yellow")
    head = Text.assemble(
        (ex.process, "bold"), f" at {when_text(ex.at, tz)}: ", (ex.decision, style)
    )
    lines: list[RenderableType] = [head]
    lines += [Text(f"  - {reason}") for reason in ex.reasons]
    if ex.running:
        lines.append(Text(f"running: {', '.join(ex.running)}"))
    if ex.next_possible is not None:
        lines.append(Text(f"earliest start by time rules: {when_text(ex.next_possible, tz)}"))
    lines.append(Text(f"waits for: {ex.blocked_until}"))
    if decisions:
        table = new_table("recent decisions", "at", "decision", "reasons")
        for d in decisions:
            reasons = [f"{c}: {t}" if t else c for c, t in d.reasons]
            add_row(table, when_text(d.at, tz), d.decision, "; ".join(reasons))
        lines += [Text(""), table]
    if attempts:
        lines += [Text(""), attempts_table(attempts, tz, title="recent attempts")]
    return Group(*lines)


# -- history and status -------------------------------------------------------------------------


def attempts_table(
    attempts: Sequence[AttemptRecord], tz: tzinfo, *, title: str | None = None
) -> Table:
    table = new_table(
        title,
        "process",
        "run id",
        "attempt",
        "status",
        "scheduled",
        "start",
        "end",
        "duration",
        "worker",
        "error",
    )
    for a in attempts:
        error = f"{a.error.type}: {a.error.message}" if a.error else ""
        add_row(
            table,
            a.process,
            a.run_id,
            str(a.attempt),
            status_text(a.status.value),
            when_text(a.scheduled, tz),
            when_text(a.start, tz),
            when_text(a.end, tz),
            seconds_text(a.duration_s),
            a.worker or "",
            error,
        )
    return table


def status_view(
    registry: RegistryDef,
    active: Sequence[ActiveRun],
    failures: Sequence[AttemptRecord],
    tz: tzinfo,
    *,
    failures_since: datetime,
    planners: dict[str, Any] | None = None,
) -> Group:
    doc = status_json(registry, active, failures, tz, planners=planners)
    slots = registry.slots if registry.slots is not None else "cluster threads"
    lines: list[RenderableType] = [
        Text(f"{doc['processes']} processes, slots: {slots}, timezone {registry.timezone}"),
        Text(f"held: {', '.join(doc['held']) or '-'}"),
        Text(f"disabled: {', '.join(doc['disabled']) or '-'}"),
    ]
    for item in doc["invalid"]:
        lines.append(Text(f"invalid: {item['message']}", style="bold red"))
    for problem in doc["problems"]:
        lines.append(Text(f"registry problem: {problem}", style="bold red"))
    if planners is not None:
        lines.extend(_planner_lines(planners, bool(active)))
    lines.append(Text(""))
    if active:
        table = new_table(
            f"{len(active)} runs in flight",
            "process",
            "run id",
            "attempt",
            "status",
            "scheduled",
            "queued",
            "retry at",
        )
        for r in active:
            add_row(
                table,
                r.process,
                r.run_id,
                str(r.attempt),
                status_text(r.status.value),
                when_text(r.scheduled, tz),
                when_text(r.started, tz),
                when_text(r.retry_at, tz),
            )
        lines.append(table)
    else:
        lines.append(Text("no runs in flight"))
    lines.append(Text(""))
    if failures:
        title = f"failed attempts since {when_text(failures_since, tz)}"
        lines.append(attempts_table(failures, tz, title=title))
    else:
        lines.append(Text(f"no failed attempts since {when_text(failures_since, tz)}"))
    return Group(*lines)


# -- run ----------------------------------------------------------------------------------------


def run_summary_view(
    runs: Sequence[tuple[str, str, int, str, float | None]],
    started: int,
    errors: Mapping[tuple[str, int], ErrorInfo],
    ahead: int = 0,
) -> Group:
    """``runs``: (process, run id, attempt, status, duration in seconds) of finished attempts;
    ``ahead``: how many of the ``started`` were chained (handed to Dask before their ancestor
    ended)."""
    table = new_table("finished attempts", "process", "run id", "attempt", "status", "duration")
    for process, run_id, attempt, status, duration in runs:
        add_row(table, process, run_id, str(attempt), status_text(status), seconds_text(duration))
    counts = Counter(status for *_, status, _ in runs)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none finished"
    lines: list[RenderableType] = [table] if runs else []
    chained = f" ({ahead} chained ahead)" if ahead else ""
    lines.append(Text(f"{started} attempts started{chained}; {tally}"))
    failed = [r for r in runs if r[3] in FAILED]
    if failed:
        lines.append(Text(f"{len(failed)} attempts failed:", style="bold red"))
        for process, run_id, attempt, status, _ in failed:
            error = errors.get((run_id, attempt))
            why = f": {error.type}: {error.message}" if error else ""
            lines.append(Text(f"  {process} {run_id} attempt {attempt} {status}{why}"))
    return Group(*lines)


def _planner_lines(planners: dict[str, Any], runs_in_flight: bool) -> list[RenderableType]:
    """Who plans: the lease holder and standbys, or that no planner is alive."""
    out: list[RenderableType] = []
    leader = planners["leader"]
    if leader is not None:
        who = f"{leader['host']}:{leader['pid']}" if leader["host"] else leader["instance"]
        out.append(
            Text(f"planner: {who}, leading since {leader['since']}, renewed {leader['renewed']}")
        )
    else:
        last = planners["last_seen"]
        seen = f"; last planner seen {last['host']}:{last['pid']} at {last['seen']}" if last else ""
        out.append(Text(f"planner: none alive{seen}", style="bold yellow"))
        if runs_in_flight:
            out.append(
                Text(
                    "runs below are not being watched: the next `planner run` re-attaches "
                    "or retries them",
                    style="yellow",
                )
            )
    standbys = ", ".join(f"{s['host']}:{s['pid']}" for s in planners["standbys"]) or "-"
    out.append(Text(f"standbys: {standbys}"))
    for trigger in planners.get("triggers", []):
        forced = ", forced" if trigger["force"] else ""
        out.append(
            Text(
                f"pending trigger #{trigger['request']}: {trigger['process']} "
                f"(requested {trigger['requested']}{forced}): `planner explain` says why it waits"
            )
        )
    return out
