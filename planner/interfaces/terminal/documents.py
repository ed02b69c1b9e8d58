"""The JSON documents the commands print with ``--format json``: what programs read.

The shapes of ``plan``, ``simulate`` and ``history`` are public interface (SPEC, "JSON outputs"):
keys are never renamed. Times are ISO-8601 with the offset of the registry's timezone; durations
are seconds. Each function is pure: records of the core and the store in, a JSON-ready dict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from planner.core.events import Decision, Explanation
from planner.interfaces.terminal.style import iso
from planner.simulation.simulate import Simulation
from registry.model import RegistryDef
from registry.records import ActiveRun, AttemptRecord, ErrorInfo, LoggedDecision

__all__ = [
    "attempt_json",
    "explanation_json",
    "history_json",
    "plan_json",
    "simulation_json",
    "status_json",
]


def plan_json(at: datetime, decisions: Sequence[Decision], tz: tzinfo) -> dict[str, Any]:
    return {"at": iso(at, tz), "decisions": [d.as_json() for d in decisions]}


def simulation_json(sim: Simulation, tz: tzinfo) -> dict[str, Any]:
    return sim.as_json(tz)


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
