"""The notebooks' tables: pandas frames of the registry, of dry runs and of run histories.

Frames are for reading and for further pandas work, so times are timezone-aware timestamps in the
registry's timezone and durations are float seconds. ``schedule_text`` and ``value_text`` write
definition values the same way here and in the figures' hover tooltips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any

import pandas as pd

from planner.core.events import Decision, Explanation, Reason
from planner.core.schedule import zone
from planner.simulation.simulate import SimRun, Simulation
from registry.definitions.durations import format_duration
from registry.definitions.templates import alike, templates_of
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import AttemptRecord

__all__ = [
    "attempts_frame",
    "compare_simulations",
    "duration_summary",
    "explanations_table",
    "plan_table",
    "registry_table",
    "runs_frame",
]


# -- the registry -----------------------------------------------------------------------------


def registry_table(registry: RegistryDef) -> pd.DataFrame:
    """One row per process: schedule, priority, reservation, ancestors and other planning inputs."""
    rows = [
        {
            "process": d.name,
            "schedule": schedule_text(d),
            "priority": d.priority,
            "reserve": d.reserve,
            "ancestors": ", ".join(d.ancestors),
            "not_before": value_text(d.not_before),
            "refresh_window": value_text(d.refresh_window),
            "expected_duration": value_text(d.expected_duration),
            "pool": d.pool or "",
            "retries": d.retries,
        }
        for d in registry.processes.values()
    ]
    return pd.DataFrame(rows).set_index("process") if rows else pd.DataFrame()


# -- plans and simulations --------------------------------------------------------------------


def plan_table(
    decisions: Iterable[Decision], *, registry: RegistryDef | None = None, expand: bool = False
) -> pd.DataFrame:
    """A dry run (``Planner.plan``) as a table, in the planner's order: starts best-first, then
    the waiting processes; ``codes`` holds the reason codes, ``reasons`` codes with details,
    ``members`` how many processes the row stands for.

    Given the ``registry``, a template's processes are grouped as ``planner plan`` groups them:
    those with the same decision and reasons are one row, ``TEMPLATE.* ×N``, each one's item
    read as ``{item}`` in the details (``registry.definitions.templates.alike``);
    ``expand=True`` (or no registry) gives one row per process."""
    decided = list(decisions)
    templates = templates_of(registry) if registry is not None and not expand else {}
    of = {name: t for t, names in templates.items() for name in names}
    first = {d.process: d for d in decided}
    said = alike(
        [
            (d.process, (d.decision, *(r.code for r in d.reasons)), [r.detail for r in d.reasons])
            for d in decided
        ],
        of,
    )
    rows = []
    for group in said:
        d = first[group.names[0]]
        reasons = [Reason(r.code, text) for r, text in zip(d.reasons, group.texts, strict=True)]
        rows.append(
            {
                "process": group.label,
                "decision": d.decision,
                "codes": ", ".join(r.code.value for r in reasons),
                "reasons": "; ".join(str(r) for r in reasons),
                "members": len(group.names),
            }
        )
    return pd.DataFrame(rows, columns=["process", "decision", "codes", "reasons", "members"])


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


# -- values -------------------------------------------------------------------------------------


def schedule_text(definition: ProcessDef) -> str:
    if definition.cron is not None:
        return f"cron {definition.cron}"
    if definition.every is not None:
        return f"every {format_duration(definition.every)}"
    return "single"


def value_text(value: timedelta | time | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, timedelta):
        return format_duration(value)
    return value.isoformat(timespec="minutes")


def _timestamps(values: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_convert(tz)


def _clock(value: datetime | None, sim: Simulation, tz: str) -> str | None:
    if value is None:
        return None
    local, origin = value.astimezone(zone(tz)), sim.start.astimezone(zone(tz))
    days = (local.date() - origin.date()).days
    return local.strftime("%H:%M") + (f" (+{days}d)" if days else "")
