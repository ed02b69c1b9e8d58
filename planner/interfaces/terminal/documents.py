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
from registry.records import (
    ActiveRun,
    AttemptRecord,
    ErrorInfo,
    LeaseState,
    LoggedDecision,
    PlannerSeen,
    Request,
    RequestKind,
)

__all__ = [
    "attempt_json",
    "explanation_json",
    "history_json",
    "plan_json",
    "simulation_json",
    "status_json",
]


#: a standby's row is refreshed every second or so; older ones belong to standbys that died
STANDBY_SEEN_S = 30


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
        "params": dict(a.params),
        "result": a.result_document,
    }


def history_json(
    attempts: Sequence[AttemptRecord], tz: tzinfo, *, more: bool = False
) -> dict[str, Any]:
    """The ``history`` document; ``more``: the limit cut the list."""
    return {"runs": [attempt_json(a, tz) for a in attempts], "more": more}


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


def planners_json(lease: LeaseState, now: datetime, tz: tzinfo) -> dict[str, Any]:
    """Who plans for the database: the lease holder (if its lease is live), the standbys, and
    the last planner seen when none is alive."""

    def seen(p: PlannerSeen) -> dict[str, Any]:
        return {
            "host": p.host,
            "pid": p.pid,
            "role": p.role,
            "started": iso(p.started, tz),
            "seen": iso(p.seen, tz),
        }

    live = lease.holder is not None and lease.expires_at is not None and lease.expires_at > now
    holder = lease.planner(lease.holder) if live else None
    leader = None
    if live:
        leader = {
            "instance": lease.holder,
            "host": holder.host if holder else None,
            "pid": holder.pid if holder else None,
            "since": iso(lease.acquired_at, tz),
            "renewed": iso(lease.renewed_at, tz),
            "expires": iso(lease.expires_at, tz),
            "fence": lease.fence,
        }
    # a standby not seen for a while is gone (it would have renewed its row within seconds)
    standbys = [
        seen(p)
        for p in lease.planners
        if p.role == "standby" and (now - p.seen).total_seconds() <= STANDBY_SEEN_S
    ]
    last = max(lease.planners, key=lambda p: p.seen, default=None)
    return {
        "alive": live,
        "leader": leader,
        "standbys": standbys,
        "last_seen": None if last is None else seen(last),
    }


def status_json(
    registry: RegistryDef,
    active: Sequence[ActiveRun],
    failures: Sequence[AttemptRecord],
    tz: tzinfo,
    *,
    planners: dict[str, Any] | None = None,
) -> dict[str, Any]:
    procs = registry.processes.values()
    return {
        "planner": planners,
        "processes": len(registry.processes),
        "slots": registry.slots,
        "timezone": registry.timezone,
        "held": sorted(p.name for p in procs if p.hold),
        "disabled": sorted(p.name for p in procs if not p.enabled),
        # rows of the database that do not validate: left out of planning until repaired
        "invalid": [{"process": n, "message": m} for n, m in sorted(registry.invalid.items())],
        "problems": list(registry.problems),
        "active": [_active_json(r, tz) for r in active],
        "failures": [attempt_json(a, tz) for a in failures],
    }


def triggers_json(requests: Sequence[Request], tz: tzinfo) -> list[dict[str, Any]]:
    """The pending trigger requests, as ``status`` shows them: when each was made, when it is
    due (``trigger --at``; ``None``: now), the fire time a backfill's stands for, and the run a
    retry's repeats (``planner retry``; ``None`` for other triggers)."""
    return [
        {
            "request": r.id,
            "process": r.process,
            "force": r.force,
            "requested": iso(r.created, tz),
            "due": iso(r.due, tz),
            "scheduled": iso(r.scheduled, tz),
            "retry_of": r.run_id,
        }
        for r in requests
        if r.kind is RequestKind.TRIGGER
    ]
