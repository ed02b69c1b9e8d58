"""The tables and views the commands print for people (``--format table``, the default).

Each function is pure: records of the core and the store in, a rich renderable or lines of text
out; ``planner.interfaces.cli`` prints them. ``status_view`` is drawn from ``status_json``, so the
table and the document never disagree.

Tables fit the terminal (``fit.FitTable``): at 80 columns the least important columns go first
(the worker, the scheduled time, the end…), ``wide`` keeps them all. Times are the registry's,
compact against ``now`` (``style.Times``), and each view names the zone once, in its first line
or the table's caption.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text

from planner.core.events import Decision, Explanation, Reason
from planner.interfaces.terminal.documents import status_json
from planner.interfaces.terminal.fit import Col, FitTable
from planner.interfaces.terminal.style import (
    Times,
    plural,
    reasons_text,
    seconds_text,
    status_text,
)
from planner.simulation.simulate import Simulation
from registry.definitions.durations import format_duration
from registry.definitions.templates import alike
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import ActiveRun, AttemptRecord, LoggedDecision

__all__ = [
    "PLAN_WAITS_SHOWN",
    "attempts_table",
    "explanation_view",
    "gantt",
    "grouped_rows",
    "plan_table",
    "simulation_view",
    "status_view",
]


# -- plan ---------------------------------------------------------------------------------------


#: waiting processes the ``plan`` table lists before it counts the rest (``planner plan --all``)
PLAN_WAITS_SHOWN = 20


def grouped_rows(
    decisions: Sequence[Decision], templates: Mapping[str, str]
) -> list[tuple[Decision, list[str]]]:
    """Rows of a plan and the processes each stands for: a template's processes with the same
    decision and reasons are one row, ``TEMPLATE.* ×N``, their items put back as ``{item}`` in
    the details, or the details summed up where they differ (``registry.definitions.templates
    .alike``)."""
    first = {d.process: d for d in decisions}
    said = alike(
        [
            (d.process, (d.decision, *(r.code for r in d.reasons)), [r.detail for r in d.reasons])
            for d in decisions
        ],
        templates,
    )
    rows: list[tuple[Decision, list[str]]] = []
    for group in said:
        d = first[group.names[0]]
        if group.template is not None:
            reasons = tuple(Reason(r.code, t) for r, t in zip(d.reasons, group.texts, strict=True))
            d = Decision(process=group.label, decision=d.decision, reasons=reasons)
        rows.append((d, list(group.names)))
    return rows


def plan_table(
    at: datetime,
    decisions: Sequence[Decision],
    tz: tzinfo,
    *,
    waits: int | None = PLAN_WAITS_SHOWN,
    now: datetime | None = None,
    wide: bool = False,
    templates: Mapping[str, str] | None = None,
) -> RenderableType:
    """Every start, then the first ``waits`` waiting processes in the planner's order (the best
    candidates held back by capacity first), and a count of the others by their first reason;
    ``waits=None`` lists them all. A registry of 20,000 processes is a screen, not 20,000 rows:
    the JSON document (``plan_json``) is the complete one. With ``templates`` (process → its
    template), a template's processes that share a decision and reasons are one row,
    ``TEMPLATE.* ×N`` (``grouped_rows``); a row counts as a line of the table, and as its processes
    in the counts."""
    times = Times(tz, now, wide)
    starts = sum(d.decision == "start" for d in decisions)
    total = len(decisions)
    singly = [(d, [d.process]) for d in decisions]
    rows = grouped_rows(decisions, templates) if templates else singly
    table = FitTable(
        [Col("process"), Col("decision"), Col("reasons", text=True)],
        title=f"plan at {times(at)} {times.zone}: {starts:,} to start, {total - starts:,} waiting",
        wide=wide,
    )
    hidden: Counter[str] = Counter()
    shown_waits = 0
    for d, names in rows:
        if d.decision != "start":
            if waits is not None and shown_waits >= waits:
                hidden[d.reasons[0].code.value if d.reasons else "-"] += len(names)
                continue
            shown_waits += 1
        style = "bold green" if d.decision == "start" else ""
        table.add_row(d.process, Text(d.decision, style=style), reasons_text(d.reasons))
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


def simulation_view(
    sim: Simulation,
    tz: tzinfo,
    *,
    width: int = 60,
    now: datetime | None = None,
    wide: bool = False,
) -> Group:
    """The simulated runs, a tally, and a text Gantt at most ``width`` characters wide (less on
    a narrower terminal)."""
    times = Times(tz, now, wide)
    runs = sorted(sim.runs, key=lambda r: (r.start, r.process, r.attempt))
    table = FitTable(
        [
            Col("process"),
            Col("run id", keep=20),
            Col("attempt", keep=10),
            Col("start", keep=90),
            Col("end", keep=40),
            Col("duration", keep=60),
            Col("status"),
        ],
        title=f"simulation {times(sim.start)} → {times(sim.end)} {times.zone}, "
        f"{plural(sim.slots, 'slot')}",
        wide=wide,
    )
    for r in runs:
        table.add_row(
            r.process,
            r.run_id,
            str(r.attempt),
            times(r.start),
            times(r.end),
            seconds_text((r.end - r.start).total_seconds()),
            status_text(r.status.value),
        )
    counts = Counter(r.status.value for r in runs)
    tally = ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items())) or "no runs"
    footer = Text(f"{plural(len(runs), 'run')} ({tally}); makespan {format_duration(sim.makespan)}")
    return Group(table, footer, Text(""), _Gantt(sim, times, width))


class _Gantt:
    """``gantt`` drawn as wide as the terminal allows, up to its ``width``."""

    def __init__(self, sim: Simulation, times: Times, width: int) -> None:
        self.sim, self.times, self.width = sim, times, width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        pad = max((len(r.process) for r in self.sim.runs), default=0)
        room = max(options.max_width - pad - 3, 10)
        chart = gantt(self.sim, self.times.tz, width=min(self.width, room), times=self.times)
        yield Text(chart, no_wrap=True, overflow="crop")


def gantt(sim: Simulation, tz: tzinfo, *, width: int = 60, times: Times | None = None) -> str:
    """A crude text Gantt chart: one row per process, ``#`` succeeded, ``x`` failed, ``>`` running
    at the end of the simulation; the axis spans from the start to the last run's end."""
    if not sim.runs:
        return "(no runs)"
    when = times or Times(tz)
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
    left, right = when(t0), when(t1)
    axis = f"{' ' * pad}  {left}{right.rjust(max(width - len(left), len(right) + 1))}"
    return "\n".join([*lines, axis])


# -- explain ------------------------------------------------------------------------------------


def explanation_view(
    ex: Explanation,
    decisions: Sequence[LoggedDecision],
    attempts: Sequence[AttemptRecord],
    tz: tzinfo,
    *,
    now: datetime | None = None,
    wide: bool = False,
) -> Group:
    times = Times(tz, now, wide)
    style = {"start": "bold green", "running": "cyan"}.get(ex.decision, "bold yellow")
    head = Text.assemble(
        (ex.process, "bold"), f" at {times(ex.at)} {times.zone}: ", (ex.decision, style)
    )
    lines: list[RenderableType] = [head]
    lines += [Text(f"  - {reason}") for reason in ex.reasons]
    if ex.running:
        lines.append(Text(f"running: {', '.join(ex.running)}"))
    if ex.next_possible is not None:
        lines.append(Text(f"earliest start by time rules: {times(ex.next_possible)}"))
    lines.append(Text(f"waits for: {ex.blocked_until}"))
    if decisions:
        table = FitTable(
            [Col("at"), Col("decision"), Col("reasons", text=True)],
            title="recent decisions",
            wide=wide,
        )
        for d in decisions:
            reasons = [f"{c}: {t}" if t else c for c, t in d.reasons]
            table.add_row(times(d.at), d.decision, "; ".join(reasons))
        lines += [Text(""), table]
    if attempts:
        recent = attempts_table(
            attempts, tz, title="recent attempts", now=now, wide=wide, label_zone=False
        )
        lines += [Text(""), recent]
    return Group(*lines)


# -- history and status -------------------------------------------------------------------------


def attempts_table(
    attempts: Sequence[AttemptRecord],
    tz: tzinfo,
    *,
    title: str | None = None,
    now: datetime | None = None,
    wide: bool = False,
    label_zone: bool = True,
) -> FitTable:
    """One row per attempt. On a narrow terminal the worker goes first, then the scheduled and
    end times, the attempt number, the duration, the process (the run id names it too)…
    ``label_zone``: name the zone in the caption (not when the view named it already)."""
    times = Times(tz, now, wide)
    table = FitTable(
        [
            Col("process", keep=55),
            Col("run id"),
            Col("attempt", keep=30),
            Col("status"),
            Col("scheduled", keep=10),
            Col("start", keep=70),
            Col("end", keep=20),
            Col("duration", keep=50),
            Col("worker", keep=5),
            Col("error", keep=80, text=True),
        ],
        title=title,
        caption=f"times in {times.zone}" if label_zone else None,
        wide=wide,
    )
    for a in attempts:
        error = f"{a.error.type}: {a.error.message}" if a.error else ""
        table.add_row(
            a.process,
            a.run_id,
            str(a.attempt),
            status_text(a.status.value),
            times(a.scheduled),
            times(a.start),
            times(a.end),
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
    now: datetime | None = None,
    wide: bool = False,
) -> Group:
    times = Times(tz, now, wide)
    doc = status_json(registry, active, failures, tz, planners=planners)
    slots = registry.slots if registry.slots is not None else "cluster threads"
    count = plural(doc["processes"], "process", "processes")
    lines: list[RenderableType] = [
        Text(f"{count}, slots: {slots}, timezone {registry.timezone} (times below in it)"),
        Text(f"held: {', '.join(doc['held']) or '-'}"),
        Text(f"disabled: {', '.join(doc['disabled']) or '-'}"),
    ]
    for item in doc["invalid"]:
        lines.append(Text(f"invalid: {item['message']}", style="bold red"))
    for problem in doc["problems"]:
        lines.append(Text(f"registry problem: {problem}", style="bold red"))
    if planners is not None:
        lines.extend(_planner_lines(planners, bool(active), times))
    lines.append(Text(""))
    if active:
        table = FitTable(
            [
                Col("process", keep=55),
                Col("run id"),
                Col("attempt", keep=30),
                Col("status"),
                Col("scheduled", keep=10),
                Col("queued", keep=60),
                Col("retry at", keep=40),
            ],
            title=f"{plural(len(active), 'run')} in flight",
            wide=wide,
        )
        for r in active:
            table.add_row(
                r.process,
                r.run_id,
                str(r.attempt),
                status_text(r.status.value),
                times(r.scheduled),
                times(r.started),
                times(r.retry_at),
            )
        lines.append(table)
    else:
        lines.append(Text("no runs in flight"))
    lines.append(Text(""))
    if failures:
        title = f"failed attempts since {times(failures_since)}"
        lines.append(
            attempts_table(failures, tz, title=title, now=now, wide=wide, label_zone=False)
        )
    else:
        lines.append(Text(f"no failed attempts since {times(failures_since)}"))
    return Group(*lines)


def _planner_lines(
    planners: dict[str, Any], runs_in_flight: bool, times: Times
) -> list[RenderableType]:
    """Who plans: the lease holder and standbys, or that no planner is alive."""

    def at(iso_text: str | None) -> str:
        return times(datetime.fromisoformat(iso_text)) if iso_text else "-"

    out: list[RenderableType] = []
    leader = planners["leader"]
    if leader is not None:
        who = f"{leader['host']}:{leader['pid']}" if leader["host"] else leader["instance"]
        out.append(
            Text(
                f"planner: {who}, leading since {at(leader['since'])}, "
                f"renewed {at(leader['renewed'])}"
            )
        )
    else:
        last = planners["last_seen"]
        seen = (
            f"; last planner seen {last['host']}:{last['pid']} at {at(last['seen'])}"
            if last
            else ""
        )
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
        due = f", due {at(trigger['due'])}" if trigger.get("due") else ""
        if trigger.get("retry_of"):  # a retry's request keeps its run's old fire time too
            fire = f", retry of {trigger['retry_of']}"
        elif trigger.get("scheduled"):
            fire = f", backfill of {at(trigger['scheduled'])}"
        else:
            fire = ""
        out.append(
            Text(
                f"pending trigger #{trigger['request']}: {trigger['process']} "
                f"(requested {at(trigger['requested'])}{due}{fire}{forced}): `planner explain` "
                "says why it waits"
            )
        )
    return out
