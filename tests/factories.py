"""Small builders for definitions, so core tests read like the YAML they stand for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from planner.core.events import RunFinished, Step
from planner.core.planner import Planner
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, Ranking, RegistryDef

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday, midnight UTC


def at(hh: int, mm: int = 0, *, day: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hh, minutes=mm)


def proc(name: str, **fields: Any) -> ProcessDef:
    for key in ("every", "refresh_window", "expected_duration", "retry_delay", "timeout"):
        if isinstance(fields.get(key), int | float):
            fields[key] = timedelta(seconds=fields[key])
    if "ancestors" in fields:
        fields["ancestors"] = tuple(fields["ancestors"])
    fields.setdefault("run", "workflows.jobs.demo:noop")
    return ProcessDef(name=name, **fields)


def registry(
    *processes: ProcessDef,
    slots: int | None = None,
    pools: dict[str, int] | None = None,
    timezone: str = "UTC",
    ranking: Ranking = Ranking.ADP,
) -> RegistryDef:
    return RegistryDef(
        timezone=timezone,
        slots=slots,
        pools=pools or {},
        ranking=ranking,
        processes={p.name: p for p in processes},
    )


# -- driving a Planner by hand (core tests) ------------------------------------------------------


def started(step: Step) -> list[str]:
    """The processes a step started, in start order."""
    return [s.process for s in step.starts]


def run_of(planner: Planner, process: str) -> str:
    """The id of ``process``'s oldest run in flight (not one waiting to retry)."""
    ps = planner.states.get(process) or planner.orphans.get(process)
    flights = sorted(ps.flights.values(), key=lambda f: (f.started, f.run_id)) if ps else []
    if not flights:
        raise LookupError(f"no run of {process!r} in flight")
    return flights[0].run_id


def finish(
    planner: Planner, process: str, when: datetime, status: RunStatus = RunStatus.SUCCEEDED
) -> Step:
    """Feed the end of ``process``'s oldest run in flight at ``when``."""
    run_id = run_of(planner, process)
    return planner.handle(when, RunFinished(run_id=run_id, status=status, at=when))


def reasons_of(planner: Planner, process: str) -> dict[str, str]:
    """``process``'s last known reasons (as the queue shows them): code -> detail."""
    for name, reasons in planner.queue():
        if name == process:
            return {r.code.value: r.detail for r in reasons}
    raise LookupError(process)
