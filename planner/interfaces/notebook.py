"""Helpers for the notebooks in ``notebooks/``: tables (pandas) and figures (Bokeh) of plans.

Everything here turns records of the registry, the core, the simulator and the store into a
``pandas.DataFrame`` or a Bokeh figure, and changes nothing — except ``record_simulation``, which
writes a simulation's runs into a store through the store API, to give the history notebook a
realistic database without a cluster.

Times in frames are timezone-aware pandas timestamps in the registry's timezone. Bokeh has no notion
of timezones (a datetime axis shows UTC), so the figures plot naive wall-clock times of the
timezone they are given.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

import networkx as nx
import pandas as pd
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.models.annotations.arrows import Arrow, VeeHead
from bokeh.plotting import figure

from planner.core.events import Decision, Explanation
from planner.core.schedule import Schedule, zone
from planner.simulation.simulate import Outcome, SimRun, Simulation
from registry.definitions.durations import format_duration
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import AttemptRecord, ErrorInfo
from registry.storage.store import Store

__all__ = [
    "STATUS_COLORS",
    "RandomOutcomes",
    "attempts_frame",
    "compare_simulations",
    "dag_figure",
    "delays_figure",
    "duration_summary",
    "durations_figure",
    "explanations_table",
    "gantt_figure",
    "plan_table",
    "record_simulation",
    "registry_table",
    "runs_frame",
]

STATUS_COLORS = {
    "succeeded": "#4daf4a",
    "failed": "#e41a1c",
    "timed_out": "#ff7f00",
    "cancelled": "#999999",
    "running": "#377eb8",
    "queued": "#377eb8",
    "retrying": "#984ea3",
}
_KIND_COLORS = {"cron": "#8da0cb", "every": "#66c2a5", "single": "#e5e5e5"}
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


# -- the registry -----------------------------------------------------------------------------


def registry_table(registry: RegistryDef) -> pd.DataFrame:
    """One row per process: schedule, priority, reservation, ancestors and other planning inputs."""
    rows = [
        {
            "process": d.name,
            "schedule": _schedule_text(d),
            "priority": d.priority,
            "reserve": d.reserve,
            "ancestors": ", ".join(d.ancestors),
            "not_before": _value_text(d.not_before),
            "refresh_window": _value_text(d.refresh_window),
            "expected_duration": _value_text(d.expected_duration),
            "pool": d.pool or "",
            "retries": d.retries,
        }
        for d in registry.processes.values()
    ]
    return pd.DataFrame(rows).set_index("process") if rows else pd.DataFrame()


def dag_figure(
    registry: RegistryDef,
    *,
    colors: Mapping[str, str] | None = None,
    width: int = 700,
    height: int | None = None,
) -> figure:
    """The dependency graph, left to right by generation (roots first), edges ancestor → process.

    Nodes are coloured by kind (cron, every, single) unless ``colors`` gives a colour per process
    (for instance by run status, with ``STATUS_COLORS``); reserved processes have a thick outline.
    """
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(registry.processes)
    graph.add_edges_from((a, d.name) for d in registry.processes.values() for a in d.ancestors)
    position: dict[str, tuple[float, float]] = {}
    layers = [sorted(layer) for layer in nx.topological_generations(graph)]
    tallest = max((len(layer) for layer in layers), default=1)
    for x, layer in enumerate(layers):
        for i, name in enumerate(layer):
            position[name] = (float(x), (len(layer) - 1) / 2 - i)
    box_w, box_h = 0.6, 0.5
    nodes = ColumnDataSource(
        {
            "name": list(position),
            "x": [position[n][0] for n in position],
            "y": [position[n][1] for n in position],
            "fill": [
                (colors or {}).get(n, _KIND_COLORS[_kind(registry.processes[n])]) for n in position
            ],
            "line": [3 if registry.processes[n].reserve else 1 for n in position],
            "schedule": [_schedule_text(registry.processes[n]) for n in position],
            "priority": [registry.processes[n].priority for n in position],
            "ancestors": [", ".join(registry.processes[n].ancestors) or "-" for n in position],
            "not_before": [_value_text(registry.processes[n].not_before) for n in position],
            "expected": [_value_text(registry.processes[n].expected_duration) for n in position],
        }
    )
    edges = list(graph.edges)
    arrows = ColumnDataSource(
        {
            "x0": [position[a][0] + box_w / 2 for a, _ in edges],
            "y0": [position[a][1] for a, _ in edges],
            "x1": [position[b][0] - box_w / 2 for _, b in edges],
            "y1": [position[b][1] for _, b in edges],
        }
    )
    fig = figure(
        title="Process graph (ancestor → process)",
        width=width,
        height=height or max(220, 110 * tallest),
        x_range=Range1d(start=-0.6, end=max(len(layers) - 1, 0) + 0.6),
        y_range=Range1d(start=-tallest / 2 - 0.1, end=tallest / 2 + 0.1),
        tools="pan,wheel_zoom,reset,save",
        toolbar_location="right",
    )
    fig.add_layout(
        Arrow(
            end=VeeHead(size=10),
            x_start="x0",
            y_start="y0",
            x_end="x1",
            y_end="y1",
            source=arrows,
        )
    )
    boxes = fig.rect(
        "x",
        "y",
        width=box_w,
        height=box_h,
        source=nodes,
        fill_color="fill",
        line_color="#333333",
        line_width="line",
    )
    fig.text("x", "y", text="name", source=nodes, text_align="center", text_baseline="middle")
    fig.add_tools(
        HoverTool(
            renderers=[boxes],
            tooltips=[
                ("process", "@name"),
                ("schedule", "@schedule"),
                ("priority", "@priority"),
                ("ancestors", "@ancestors"),
                ("not before", "@not_before"),
                ("expected", "@expected"),
            ],
        )
    )
    fig.axis.visible = False
    fig.grid.visible = False
    return fig


# -- plans and simulations --------------------------------------------------------------------


def plan_table(decisions: Iterable[Decision]) -> pd.DataFrame:
    """A dry run (``Planner.plan``) as a table, in the planner's order: starts best-first, then
    the waiting processes; ``codes`` holds the reason codes, ``reasons`` codes with details."""
    rows = [
        {
            "process": d.process,
            "decision": d.decision,
            "codes": ", ".join(r.code.value for r in d.reasons),
            "reasons": "; ".join(str(r) for r in d.reasons),
        }
        for d in decisions
    ]
    return pd.DataFrame(rows, columns=["process", "decision", "codes", "reasons"])


def explanations_table(explanations: Iterable[Explanation], *, tz: str = "UTC") -> pd.DataFrame:
    """``Planner.explain`` for several processes: decision, reasons, the earliest time the
    time-based rules allow a start, and what must happen for the process to start."""
    rows = [
        {
            "process": e.process,
            "decision": e.decision,
            "reasons": "; ".join(str(r) for r in e.reasons),
            "next_possible": e.next_possible,
            "needs": e.blocked_until,
        }
        for e in explanations
    ]
    frame = pd.DataFrame(rows, columns=["process", "decision", "reasons", "next_possible", "needs"])
    frame["next_possible"] = _timestamps(frame["next_possible"], tz)
    return frame.set_index("process")


def runs_frame(runs: Iterable[SimRun | AttemptRecord], *, tz: str = "UTC") -> pd.DataFrame:
    """Simulated runs or stored attempts as rows of process, run, attempt, status, start, end,
    duration_s (attempts that never began on a worker are left out)."""
    rows = [
        {
            "process": r.process,
            "run_id": r.run_id,
            "attempt": r.attempt,
            "status": r.status.value,
            "start": r.start,
            "end": r.end,
            "duration_s": (r.end - r.start).total_seconds(),
        }
        for r in runs
        if r.start is not None and r.end is not None
    ]
    frame = pd.DataFrame(
        rows, columns=["process", "run_id", "attempt", "status", "start", "end", "duration_s"]
    )
    for column in ("start", "end"):
        frame[column] = _timestamps(frame[column], tz)
    return frame.sort_values(["start", "process", "attempt"], ignore_index=True)


def gantt_figure(
    runs: Iterable[SimRun | AttemptRecord],
    *,
    tz: str = "UTC",
    title: str = "Runs",
    order: Sequence[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
    width: int = 900,
) -> figure:
    """One bar per attempt, one row per process (in ``order``, else by first start), coloured by
    status; the time axis shows wall-clock time in ``tz``, over ``window`` if given (give several
    figures the same window to compare them)."""
    frame = runs_frame(runs, tz=tz)
    processes = list(order) if order is not None else list(dict.fromkeys(frame["process"]))
    frame = frame[frame["process"].isin(processes)]
    source = ColumnDataSource(
        {
            "process": list(frame["process"]),
            "run_id": list(frame["run_id"]),
            "attempt": list(frame["attempt"]),
            "status": list(frame["status"]),
            "left": list(_wall(frame["start"])),
            "right": list(_wall(frame["end"])),
            "duration": [format_duration(timedelta(seconds=round(s))) for s in frame["duration_s"]],
            "color": [STATUS_COLORS.get(s, "#cccccc") for s in frame["status"]],
        }
    )
    fig = figure(
        title=title,
        y_range=FactorRange(factors=processes[::-1]),
        x_axis_type="datetime",
        x_axis_label=f"time ({tz})",
        width=width,
        height=80 + 32 * max(len(processes), 1),
        tools=_TOOLS,
    )
    if window is not None:
        start, end = (t.astimezone(zone(tz)).replace(tzinfo=None) for t in window)
        fig.x_range = Range1d(start=start, end=end)
    bars = fig.hbar(
        y="process",
        left="left",
        right="right",
        height=0.6,
        color="color",
        line_color="#333333",
        source=source,
    )
    fig.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[
                ("run", "@run_id (attempt @attempt)"),
                ("status", "@status"),
                ("start", "@left{%F %T}"),
                ("end", "@right{%F %T}"),
                ("duration", "@duration"),
            ],
            formatters={"@left": "datetime", "@right": "datetime"},
        )
    )
    fig.ygrid.grid_line_color = None
    return fig


def compare_simulations(
    simulations: Mapping[str, Simulation],
    *,
    processes: Sequence[str] | None = None,
    tz: str = "UTC",
) -> pd.DataFrame:
    """One row per variant: slots, finished runs, makespan, and when each process first started
    and first finished (local time of day; ``+1d`` when on a later day than the simulation start).
    """
    rows: list[dict[str, Any]] = []
    for label, sim in simulations.items():
        names = processes or sorted({r.process for r in sim.runs})
        row: dict[str, Any] = {
            "variant": label,
            "slots": sim.slots,
            "runs": sum(r.status is not RunStatus.RUNNING for r in sim.runs),
            "makespan": format_duration(sim.makespan),
        }
        for name in names:
            mine = [r for r in sim.runs if r.process == name]
            done = [r for r in mine if r.status is not RunStatus.RUNNING]
            row[f"{name} start"] = _clock(min((r.start for r in mine), default=None), sim, tz)
            row[f"{name} end"] = _clock(min((r.end for r in done), default=None), sim, tz)
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


# -- history ------------------------------------------------------------------------------------


def attempts_frame(attempts: Iterable[AttemptRecord], *, tz: str = "UTC") -> pd.DataFrame:
    """Stored attempts (``store.history()``), oldest first, with ``delay_s`` = start − scheduled
    (punctuality: how late the job began on a worker after its fire / request / decision time)."""
    rows = [
        {
            "process": a.process,
            "run_id": a.run_id,
            "attempt": a.attempt,
            "status": a.status.value,
            "scheduled": a.scheduled,
            "queued": a.queued,
            "start": a.start,
            "end": a.end,
            "duration_s": a.duration_s,
            "delay_s": None if a.start is None else (a.start - a.scheduled).total_seconds(),
            "worker": a.worker,
            "error_type": None if a.error is None else a.error.type,
            "error": None if a.error is None else a.error.message,
        }
        for a in attempts
    ]
    columns = [
        "process",
        "run_id",
        "attempt",
        "status",
        "scheduled",
        "queued",
        "start",
        "end",
        "duration_s",
        "delay_s",
        "worker",
        "error_type",
        "error",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("scheduled", "queued", "start", "end"):
        frame[column] = _timestamps(frame[column], tz)
    for column in ("duration_s", "delay_s"):
        frame[column] = frame[column].astype(float)
    return frame.sort_values(["queued", "process", "attempt"], ignore_index=True)


def duration_summary(attempts: pd.DataFrame) -> pd.DataFrame:
    """Per process, from an ``attempts_frame``: attempts, successes, failures (failed or timed
    out) and seconds of successful attempts — mean, median, p90 (the planner's estimate) and max.
    """
    finished = attempts[attempts["status"].isin([s.value for s in RunStatus if s.terminal])]
    ok = finished[finished["status"] == RunStatus.SUCCEEDED.value].groupby("process")["duration_s"]
    bad = finished["status"].isin([RunStatus.FAILED.value, RunStatus.TIMED_OUT.value])
    summary = pd.DataFrame(
        {
            "attempts": finished.groupby("process").size(),
            "succeeded": ok.size(),
            "failed": bad.groupby(finished["process"]).sum(),
            "mean_s": ok.mean(),
            "median_s": ok.median(),
            "p90_s": ok.quantile(0.9, interpolation="higher"),
            "max_s": ok.max(),
        }
    )
    counts = ["attempts", "succeeded", "failed"]
    summary[counts] = summary[counts].fillna(0).astype(int)
    return summary.round(2)


def durations_figure(attempts: pd.DataFrame, *, width: int = 700) -> figure:
    """Box plot of successful durations per process (box: quartiles, whiskers: min and max,
    dots: every attempt)."""
    ok = attempts[attempts["status"] == RunStatus.SUCCEEDED.value]
    processes = sorted(ok["process"].unique())
    stats = ok.groupby("process")["duration_s"].describe().reindex(processes)
    fig = figure(
        title="Duration of successful attempts",
        y_range=FactorRange(factors=processes[::-1]),
        x_axis_label="seconds",
        width=width,
        height=80 + 45 * max(len(processes), 1),
        tools=_TOOLS,
    )
    box = ColumnDataSource(
        {
            "process": processes,
            "min": list(stats["min"]),
            "q1": list(stats["25%"]),
            "median": list(stats["50%"]),
            "q3": list(stats["75%"]),
            "max": list(stats["max"]),
        }
    )
    fig.segment("min", "process", "max", "process", source=box, line_color="#555555")
    fig.hbar(
        y="process",
        left="q1",
        right="q3",
        height=0.5,
        source=box,
        fill_color="#a6cee3",
        line_color="#333333",
    )
    fig.scatter(
        "median", "process", source=box, marker="dash", size=28, angle=1.5708, color="#1f1f1f"
    )
    jitter = random.Random(0)
    dots = ColumnDataSource(
        {
            "x": list(ok["duration_s"]),
            "y": [(p, jitter.uniform(-0.2, 0.2)) for p in ok["process"]],
            "run_id": list(ok["run_id"]),
        }
    )
    points = fig.scatter("x", "y", source=dots, size=4, alpha=0.5, color="#1f78b4")
    fig.add_tools(HoverTool(renderers=[points], tooltips=[("run", "@run_id"), ("s", "@x")]))
    return fig


def delays_figure(attempts: pd.DataFrame, *, tz: str = "UTC", width: int = 900) -> figure:
    """Punctuality over time: start − scheduled (seconds) of each attempt, one colour a process."""
    began = attempts.dropna(subset=["start"])
    fig = figure(
        title="Start − scheduled",
        x_axis_type="datetime",
        x_axis_label=f"scheduled ({tz})",
        y_axis_label="seconds late",
        width=width,
        height=320,
        tools=_TOOLS,
    )
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    for i, (name, group) in enumerate(began.groupby("process", sort=True)):
        fig.scatter(
            list(_wall(group["scheduled"])),
            list(group["delay_s"]),
            legend_label=str(name),
            color=palette[i % len(palette)],
            size=6,
            alpha=0.7,
        )
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    return fig


# -- a realistic history from the simulator ---------------------------------------------------


class RandomOutcomes(Mapping[str, Outcome]):
    """Per-run outcomes for ``simulate``, drawn from a seeded generator at every lookup.

    ``simulate`` looks a process up once for each attempt it starts, so every attempt gets its own
    draw: a duration around the process's ``expected_duration`` (log-normal, spread ``jitter``),
    failure with probability ``failure_rates[process]`` (ending after part of the duration), and
    time-out with probability ``timeout_rates[process]`` when the process has a ``timeout``.
    """

    def __init__(
        self,
        registry: RegistryDef,
        *,
        seed: int = 0,
        jitter: float = 0.25,
        failure_rates: Mapping[str, float] | None = None,
        timeout_rates: Mapping[str, float] | None = None,
        default_duration: timedelta = timedelta(minutes=1),
    ) -> None:
        self._processes = dict(registry.processes)
        self._random = random.Random(seed)
        self._jitter = jitter
        self._failure_rates = dict(failure_rates or {})
        self._timeout_rates = dict(timeout_rates or {})
        self._default = default_duration

    def __getitem__(self, process: str) -> Outcome:
        definition = self._processes[process]
        draw = self._random
        duration = (definition.expected_duration or self._default) * draw.lognormvariate(
            0.0, self._jitter
        )
        if definition.timeout is not None and draw.random() < self._timeout_rates.get(process, 0):
            return Outcome(duration=definition.timeout, status=RunStatus.TIMED_OUT)
        if draw.random() < self._failure_rates.get(process, 0.0):
            return Outcome(duration=duration * draw.uniform(0.1, 1.0), status=RunStatus.FAILED)
        if definition.timeout is not None:
            duration = min(duration, definition.timeout)
        return Outcome(duration=duration)

    def __iter__(self) -> Iterator[str]:
        return iter(self._processes)

    def __len__(self) -> int:
        return len(self._processes)


def record_simulation(
    store: Store,
    registry: RegistryDef,
    simulation: Simulation,
    *,
    latency: Callable[[SimRun], timedelta] | None = None,
    worker: str = "simulated-worker",
) -> int:
    """Write the finished attempts of ``simulation`` into ``store`` as the live driver would
    (create_run / retry_run, attempt_started, finish_attempt); returns how many attempts.

    The simulator decides and starts at the same instant; ``latency(run)`` adds the time between
    queueing and the job beginning on a worker (at most half the attempt, which keeps its end).
    ``scheduled`` is the fire time for recurrent
    processes (the latest fire at or before the decision) and the decision time otherwise, as in
    the live driver. Runs still running at the end of the simulation are left out, and a run whose
    last attempt failed with retries left stays ``retrying``.
    """
    tz = zone(registry.timezone)
    by_run: dict[str, list[SimRun]] = {}
    for run in sorted(simulation.runs, key=lambda r: (r.start, r.run_id, r.attempt)):
        if run.status is not RunStatus.RUNNING:
            by_run.setdefault(run.run_id, []).append(run)
    written = 0
    for run_id, attempts in by_run.items():
        first = attempts[0]
        definition = registry.processes[first.process]
        scheduled = _scheduled(definition, first.start, simulation.start, tz)
        for attempt in attempts:
            if attempt.attempt == 1:
                store.create_run(
                    run_id=run_id,
                    process=attempt.process,
                    scheduled=scheduled,
                    queued=attempt.start,
                    params=definition.params,
                )
            else:
                store.retry_run(run_id, attempt=attempt.attempt, queued=attempt.start)
            delay = latency(attempt) if latency is not None else timedelta(0)
            began = attempt.start + min(delay, (attempt.end - attempt.start) / 2)
            store.attempt_started(run_id, attempt.attempt, start=began, worker=worker)
            retry_at = None
            retryable = attempt.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
            if retryable and attempt.attempt <= definition.retries:
                retry_at = attempt.end + definition.retry_wait(attempt.attempt)
            store.finish_attempt(
                run_id,
                attempt.attempt,
                status=attempt.status,
                end=attempt.end,
                error=_simulated_error(attempt, definition),
                retry_at=retry_at,
            )
            written += 1
    return written


def _scheduled(definition: ProcessDef, decided: datetime, anchor: datetime, tz: Any) -> datetime:
    if not definition.recurrent:
        return decided
    schedule = Schedule(
        anchor=definition.start_at or anchor, tz=tz, cron=definition.cron, every=definition.every
    )
    return schedule.latest_at_or_before(decided) or decided


def _simulated_error(run: SimRun, definition: ProcessDef) -> ErrorInfo | None:
    if run.status is RunStatus.FAILED:
        return ErrorInfo(type="SimulatedFailure", message=f"{run.process} failed (simulated)")
    if run.status is RunStatus.TIMED_OUT:
        limit = format_duration(definition.timeout) if definition.timeout else "its timeout"
        return ErrorInfo(type="TimeoutError", message=f"no result within {limit}")
    return None


# -- values -------------------------------------------------------------------------------------


def _kind(definition: ProcessDef) -> str:
    if definition.cron is not None:
        return "cron"
    return "every" if definition.every is not None else "single"


def _schedule_text(definition: ProcessDef) -> str:
    if definition.cron is not None:
        return f"cron {definition.cron}"
    if definition.every is not None:
        return f"every {format_duration(definition.every)}"
    return "single"


def _value_text(value: timedelta | time | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, timedelta):
        return format_duration(value)
    return value.isoformat(timespec="minutes")


def _timestamps(values: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_convert(tz)


def _wall(values: pd.Series) -> pd.Series:
    """Aware timestamps as naive wall-clock times of their timezone (what Bokeh plots)."""
    return values.dt.tz_localize(None)


def _clock(value: datetime | None, sim: Simulation, tz: str) -> str | None:
    if value is None:
        return None
    local, origin = value.astimezone(zone(tz)), sim.start.astimezone(zone(tz))
    days = (local.date() - origin.date()).days
    return local.strftime("%H:%M") + (f" (+{days}d)" if days else "")
