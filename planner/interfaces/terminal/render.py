"""What the command line prints: rich tables for people, JSON documents for programs.

Every function here is pure: it turns records of the core and the store into a JSON-ready dict, a
rich renderable or text; ``planner.interfaces.cli`` decides which one to print. JSON shapes of
``plan``, ``simulate`` and ``history`` are public interface (SPEC, "JSON outputs"): keys are never
renamed. Times are ISO-8601 with the offset of the registry's timezone; durations in JSON are
seconds.

Table cells are ``Text`` objects, never markup strings, so a ``[`` in an error message or a
detail prints as it is. When stdout is not a terminal, rich drops colour by itself; we also widen
the console so piped tables are not folded to 80 columns.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from planner.core.events import Decision, Explanation
from planner.simulation.simulate import Simulation
from registry.definitions.durations import format_duration
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import ActiveRun, ApplyResult, AttemptRecord, ErrorInfo, LoggedDecision

if TYPE_CHECKING:
    from collections.abc import Callable

    from planner.core.events import Step
    from planner.live.loop import LiveDriver

__all__ = [
    "FAILED",
    "apply_lines",
    "attempt_json",
    "attempts_table",
    "console",
    "emit_json",
    "explanation_json",
    "explanation_view",
    "graph_dot",
    "graph_mermaid",
    "history_json",
    "iso",
    "plan_json",
    "plan_table",
    "run_summary_view",
    "show",
    "simulation_json",
    "simulation_view",
    "status_json",
    "status_view",
    "value_text",
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


def show(*renderables: RenderableType, stderr: bool = False) -> None:
    out = console(stderr=stderr)
    for item in renderables:
        out.print(item)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


# -- values -------------------------------------------------------------------------------------


def iso(value: datetime | None, tz: tzinfo) -> str | None:
    return None if value is None else value.astimezone(tz).isoformat()


def _when(value: datetime | None, tz: tzinfo) -> str:
    """A time for a table: seconds precision, in the registry's timezone."""
    return "" if value is None else value.astimezone(tz).isoformat(sep=" ", timespec="seconds")


def _seconds(value: float | None) -> str:
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


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _reasons(reasons: Iterable[Any]) -> Text:
    return Text("; ".join(str(r) for r in reasons))


def _table(title: str | None, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _row(table: Table, *cells: str | Text) -> None:
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


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


def plan_json(at: datetime, decisions: Sequence[Decision], tz: tzinfo) -> dict[str, Any]:
    return {"at": iso(at, tz), "decisions": [d.as_json() for d in decisions]}


def plan_table(at: datetime, decisions: Sequence[Decision], tz: tzinfo) -> Table:
    starts = sum(d.decision == "start" for d in decisions)
    table = _table(
        f"plan at {_when(at, tz)}: {starts} to start, {len(decisions) - starts} waiting",
        "process",
        "decision",
        "reasons",
    )
    for d in decisions:
        style = "bold green" if d.decision == "start" else ""
        _row(table, d.process, Text(d.decision, style=style), _reasons(d.reasons))
    return table


# -- simulate -----------------------------------------------------------------------------------


def simulation_json(sim: Simulation, tz: tzinfo) -> dict[str, Any]:
    return sim.as_json(tz)


def simulation_view(sim: Simulation, tz: tzinfo, *, width: int = 60) -> Group:
    runs = sorted(sim.runs, key=lambda r: (r.start, r.process, r.attempt))
    table = _table(
        f"simulation {_when(sim.start, tz)} → {_when(sim.end, tz)}, {sim.slots} slots",
        "process",
        "run id",
        "attempt",
        "start",
        "end",
        "duration",
        "status",
    )
    for r in runs:
        _row(
            table,
            r.process,
            r.run_id,
            str(r.attempt),
            _when(r.start, tz),
            _when(r.end, tz),
            _seconds((r.end - r.start).total_seconds()),
            _status(r.status.value),
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
    left, right = _when(t0, tz), _when(t1, tz)
    axis = f"{' ' * pad}  {left}{right.rjust(max(width - len(left), len(right) + 1))}"
    return "\n".join([*lines, axis])


# -- explain ------------------------------------------------------------------------------------


def _decision_json(d: LoggedDecision, tz: tzinfo) -> dict[str, Any]:
    return {
        "at": iso(d.at, tz),
        "decision": d.decision,
        "reasons": [{"code": code, "detail": detail} for code, detail in d.reasons],
    }


def explanation_json(
    ex: Explanation,
    decisions: Sequence[LoggedDecision],
    attempts: Sequence[AttemptRecord],
    tz: tzinfo,
) -> dict[str, Any]:
    return {
        "process": ex.process,
        "at": iso(ex.at, tz),
        "decision": ex.decision,
        "reasons": [r.as_json() for r in ex.reasons],
        "running": list(ex.running),
        "next_possible": iso(ex.next_possible, tz),
        "blocked_until": ex.blocked_until,
        "decisions": [_decision_json(d, tz) for d in decisions],
        "attempts": [attempt_json(a, tz) for a in attempts],
    }


def explanation_view(
    ex: Explanation,
    decisions: Sequence[LoggedDecision],
    attempts: Sequence[AttemptRecord],
    tz: tzinfo,
) -> Group:
    style = {"start": "bold green", "running": "cyan"}.get(ex.decision, "bold yellow")
    head = Text.assemble((ex.process, "bold"), f" at {_when(ex.at, tz)}: ", (ex.decision, style))
    lines: list[RenderableType] = [head]
    lines += [Text(f"  - {reason}") for reason in ex.reasons]
    if ex.running:
        lines.append(Text(f"running: {', '.join(ex.running)}"))
    if ex.next_possible is not None:
        lines.append(Text(f"earliest start by time rules: {_when(ex.next_possible, tz)}"))
    lines.append(Text(f"waits for: {ex.blocked_until}"))
    if decisions:
        table = _table("recent decisions", "at", "decision", "reasons")
        for d in decisions:
            reasons = [f"{c}: {t}" if t else c for c, t in d.reasons]
            _row(table, _when(d.at, tz), d.decision, "; ".join(reasons))
        lines += [Text(""), table]
    if attempts:
        lines += [Text(""), attempts_table(attempts, tz, title="recent attempts")]
    return Group(*lines)


# -- history and status -------------------------------------------------------------------------


def _error_json(error: ErrorInfo | None) -> dict[str, str] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def attempt_json(a: AttemptRecord, tz: tzinfo) -> dict[str, Any]:
    return {
        "process": a.process,
        "run_id": a.run_id,
        "attempt": a.attempt,
        "status": a.status.value,
        "scheduled": iso(a.scheduled, tz),
        "start": iso(a.start, tz),
        "end": iso(a.end, tz),
        "duration_s": a.duration_s,
        "worker": a.worker,
        "error": _error_json(a.error),
    }


def history_json(attempts: Sequence[AttemptRecord], tz: tzinfo) -> dict[str, Any]:
    return {"runs": [attempt_json(a, tz) for a in attempts]}


def attempts_table(
    attempts: Sequence[AttemptRecord], tz: tzinfo, *, title: str | None = None
) -> Table:
    table = _table(
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
        _row(
            table,
            a.process,
            a.run_id,
            str(a.attempt),
            _status(a.status.value),
            _when(a.scheduled, tz),
            _when(a.start, tz),
            _when(a.end, tz),
            _seconds(a.duration_s),
            a.worker or "",
            error,
        )
    return table


def _active_json(r: ActiveRun, tz: tzinfo) -> dict[str, Any]:
    return {
        "process": r.process,
        "run_id": r.run_id,
        "attempt": r.attempt,
        "status": r.status.value,
        "scheduled": iso(r.scheduled, tz),
        "queued": iso(r.started, tz),
        "retry_at": iso(r.retry_at, tz),
    }


def status_json(
    registry: RegistryDef,
    active: Sequence[ActiveRun],
    failures: Sequence[AttemptRecord],
    tz: tzinfo,
) -> dict[str, Any]:
    procs = registry.processes.values()
    return {
        "processes": len(registry.processes),
        "slots": registry.slots,
        "timezone": registry.timezone,
        "held": sorted(p.name for p in procs if p.hold),
        "disabled": sorted(p.name for p in procs if not p.enabled),
        "active": [_active_json(r, tz) for r in active],
        "failures": [attempt_json(a, tz) for a in failures],
    }


def status_view(
    registry: RegistryDef,
    active: Sequence[ActiveRun],
    failures: Sequence[AttemptRecord],
    tz: tzinfo,
    *,
    failures_since: datetime,
) -> Group:
    doc = status_json(registry, active, failures, tz)
    slots = registry.slots if registry.slots is not None else "cluster threads"
    lines: list[RenderableType] = [
        Text(f"{doc['processes']} processes, slots: {slots}, timezone {registry.timezone}"),
        Text(f"held: {', '.join(doc['held']) or '-'}"),
        Text(f"disabled: {', '.join(doc['disabled']) or '-'}"),
        Text(""),
    ]
    if active:
        table = _table(
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
            _row(
                table,
                r.process,
                r.run_id,
                str(r.attempt),
                _status(r.status.value),
                _when(r.scheduled, tz),
                _when(r.started, tz),
                _when(r.retry_at, tz),
            )
        lines.append(table)
    else:
        lines.append(Text("no runs in flight"))
    lines.append(Text(""))
    if failures:
        title = f"failed attempts since {_when(failures_since, tz)}"
        lines.append(attempts_table(failures, tz, title=title))
    else:
        lines.append(Text(f"no failed attempts since {_when(failures_since, tz)}"))
    return Group(*lines)


# -- run ----------------------------------------------------------------------------------------


def run_summary_view(
    runs: Sequence[tuple[str, str, int, str, float | None]],
    started: int,
    errors: Mapping[tuple[str, int], ErrorInfo],
) -> Group:
    """``runs``: (process, run id, attempt, status, duration in seconds) of finished attempts."""
    table = _table("finished attempts", "process", "run id", "attempt", "status", "duration")
    for process, run_id, attempt, status, duration in runs:
        _row(table, process, run_id, str(attempt), _status(status), _seconds(duration))
    counts = Counter(status for *_, status, _ in runs)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none finished"
    lines: list[RenderableType] = [table] if runs else []
    lines.append(Text(f"{started} attempts started; {tally}"))
    failed = [r for r in runs if r[3] in FAILED]
    if failed:
        lines.append(Text(f"{len(failed)} attempts failed:", style="bold red"))
        for process, run_id, attempt, status, _ in failed:
            error = errors.get((run_id, attempt))
            why = f": {error.type}: {error.message}" if error else ""
            lines.append(Text(f"  {process} {run_id} attempt {attempt} {status}{why}"))
    return Group(*lines)


# -- graph --------------------------------------------------------------------------------------


def _label_lines(p: ProcessDef) -> list[str]:
    if p.cron is not None:
        when = f"cron {p.cron}"
    elif p.every is not None:
        when = f"every {format_duration(p.every)}"
    else:
        when = "single"
    flags = [f for f, on in (("held", p.hold), ("disabled", not p.enabled)) if on]
    return [p.name, when + (f" ({', '.join(flags)})" if flags else "")]


def _edges(registry: RegistryDef) -> list[tuple[str, str]]:
    return [
        (ancestor, name)
        for name in sorted(registry.processes)
        for ancestor in registry.processes[name].ancestors
    ]


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(registry: RegistryDef) -> str:
    """Graphviz DOT: one node per process (name and schedule), edges ancestor -> process."""
    lines = ["digraph planner {", "  rankdir=LR;", "  node [shape=box];"]
    for name in sorted(registry.processes):
        label = "\\n".join(
            t.replace("\\", "\\\\").replace('"', '\\"')
            for t in _label_lines(registry.processes[name])
        )
        lines.append(f'  {_dot_string(name)} [label="{label}"];')
    lines += [f"  {_dot_string(a)} -> {_dot_string(b)};" for a, b in _edges(registry)]
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(registry: RegistryDef) -> str:
    """Mermaid flowchart; node ids are generated, since process names may hold ``.`` or ``-``."""
    ids = {name: f"p{i}" for i, name in enumerate(sorted(registry.processes))}
    lines = ["flowchart LR"]
    for name, node in ids.items():
        label = "<br/>".join(
            t.replace('"', "#quot;") for t in _label_lines(registry.processes[name])
        )
        lines.append(f'    {node}["{label}"]')
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in _edges(registry)]
    return "\n".join(lines)


def live_status(driver: LiveDriver) -> RenderableType:
    """One line for the terminal while ``planner run`` works: slots, running, done, failed."""
    core, statuses = driver.core, driver.summary.statuses
    failed = statuses.get("failed", 0) + statuses.get("timed_out", 0)
    text = Text()
    text.append(f"slots {core.in_flight}/{core.slots}", style="bold")
    text.append(f"  running {len(driver.running)}  queued {core.in_flight - len(driver.running)}")
    text.append(f"  ready {len(core.candidates)}")
    text.append(f"  done {statuses.get('succeeded', 0)}", style="green")
    text.append(f"  failed {failed}", style="red" if failed else "")
    text.append(f"  cancelled {statuses.get('cancelled', 0)}")
    return text


def live_display(driver: LiveDriver, *, interval: float = 0.25) -> Callable[[], None]:
    """Show ``live_status`` on the terminal while the driver runs; returns the stop function.

    Quiet (a no-op) when stdout is not a terminal. The driver's listener only takes a cheap
    snapshot of counters; rich's own thread redraws."""
    if not sys.stdout.isatty():
        return lambda: None
    import time

    from rich.live import Live

    live = Live(live_status(driver), refresh_per_second=4, transient=True)
    live.start()
    last = [0.0]

    def listener(d: LiveDriver, _step: Step) -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            live.update(live_status(d))

    driver.listeners.append(listener)

    def stop() -> None:
        if listener in driver.listeners:
            driver.listeners.remove(listener)
        live.stop()

    return stop
