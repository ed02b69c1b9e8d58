"""The simulated driver: the planning core on a virtual clock. No Dask, no database writes.

It feeds the same ``Planner`` the same kinds of events the live driver does — a run finished, a
time was reached — so what ``planner simulate`` shows is what ``planner run`` would do if every
run took its estimated duration. Durations come from ``--durations`` (process → duration or
``{duration, status}``), else the process's ``expected_duration``, else ``DEFAULT_DURATION``.
Conditions are true, or, with ``--conditions``, false until the time given for the process.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from planner.core.events import ConditionAnswered, Decision, Event, RunFinished, Step
from planner.core.planner import Planner
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import ProcessHistory

DEFAULT_DURATION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How a simulated run of a process ends."""

    duration: timedelta
    status: RunStatus = RunStatus.SUCCEEDED


@dataclass(frozen=True, slots=True, kw_only=True)
class SimRun:
    process: str
    run_id: str
    attempt: int
    start: datetime
    end: datetime
    status: RunStatus  # "running" when it would still run at the end of the simulation

    def as_json(self, tz: Any) -> dict[str, Any]:
        return {
            "process": self.process,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "start": self.start.astimezone(tz).isoformat(),
            "end": self.end.astimezone(tz).isoformat(),
            "status": self.status.value,
        }


@dataclass(slots=True, kw_only=True)
class Simulation:
    start: datetime
    end: datetime
    slots: int
    runs: list[SimRun] = field(default_factory=list)
    decisions: list[tuple[datetime, Decision]] = field(default_factory=list)
    steps: int = 0

    @property
    def makespan(self) -> timedelta:
        """From the simulation start to the end of the last finished run."""
        ends = [r.end for r in self.runs if r.status is not RunStatus.RUNNING]
        return (max(ends) - self.start) if ends else timedelta(0)

    def as_json(self, tz: Any) -> dict[str, Any]:
        return {
            "start": self.start.astimezone(tz).isoformat(),
            "end": self.end.astimezone(tz).isoformat(),
            "slots": self.slots,
            "runs": [r.as_json(tz) for r in sorted(self.runs, key=lambda r: (r.start, r.process))],
        }


def simulate(
    registry: RegistryDef,
    *,
    start: datetime,
    until: datetime,
    slots: int | None = None,
    outcomes: Mapping[str, Outcome] | None = None,
    histories: Mapping[str, ProcessHistory] | None = None,
    keep_decisions: bool = False,
    chaining: bool = True,
    conditions: Mapping[str, datetime] | None = None,
) -> Simulation:
    """Run the planner from ``start`` to ``until`` with virtual time.

    Chained runs (``Step.chained``) start as Dask would start them: at their ancestor's end, as
    the ``ahead`` starts of the step that handles it; ``chaining=False`` turns chaining off (the
    decisions are the same: ``tests/test_chaining.py``). A process's condition is asked when the
    core says so (``conditions_due``), as the live driver asks it, and answers true — from the
    time ``conditions`` gives for that process on, when it gives one."""
    outcomes = outcomes or {}
    true_from = conditions or {}
    asks: dict[str, datetime] = {}  # conditions to answer, and when
    # a simulated condition, once true, stays true: asking it again only refreshes its answer,
    # so such an ask is answered at the next step that comes anyway, never a step of its own
    # (the live driver keeps a waiting candidate's answer fresh every few seconds; here that
    # would be a step every few virtual seconds for as long as it waits)
    true_now: set[str] = set()
    planner = Planner(
        registry,
        now=start,
        applied_at=dict.fromkeys(registry.processes, start),
        histories=histories,
        slots=slots,
        chaining=chaining,
        slot_ahead=chaining,  # as on the planner's own cluster: it changes no decision either
    )
    sim = Simulation(start=start, end=until, slots=planner.slots)
    finishing: list[tuple[datetime, int, str]] = []  # (end, sequence, run id)
    open_runs: dict[str, tuple[str, int, datetime, Outcome]] = {}
    sequence = 0
    now = start
    events: list[Event] = []
    while True:
        step: Step = planner.handle(now, *events)
        asks = {name: max(when, now) for name, when in planner.conditions_due().items()}
        sim.steps += 1
        if keep_decisions:
            sim.decisions += [(now, d) for d in step.decisions]
        for s in step.starts:
            outcome = _outcome_for(registry, s.process, outcomes)
            sequence += 1
            heapq.heappush(finishing, (now + outcome.duration, sequence, s.run_id))
            open_runs[s.run_id] = (s.process, s.attempt, now, outcome)
        next_ask = min(
            (when for name, when in asks.items() if name not in true_now or when <= now),
            default=None,
        )
        soonest = (step.next_wakeup, finishing[0][0] if finishing else None, next_ask)
        candidates = [t for t in soonest if t]
        if not candidates or min(candidates) > until:
            break
        now = min(candidates)
        events = [
            ConditionAnswered(
                process=name,
                value=name not in true_from or now >= true_from[name],
                at=now,
                detail=""
                if name not in true_from
                else f"false until {true_from[name].isoformat()}",
            )
            for name, when in sorted(asks.items())
            if when <= now
        ]
        true_now.update(e.process for e in events if isinstance(e, ConditionAnswered) and e.value)
        while finishing and finishing[0][0] <= now:
            end, _, run_id = heapq.heappop(finishing)
            process, attempt, began, outcome = open_runs.pop(run_id)
            sim.runs.append(
                SimRun(
                    process=process,
                    run_id=run_id,
                    attempt=attempt,
                    start=began,
                    end=end,
                    status=outcome.status,
                )
            )
            events.append(
                RunFinished(
                    run_id=run_id,
                    status=outcome.status,
                    at=end,
                    duration_s=outcome.duration.total_seconds(),
                )
            )
    for run_id, (process, attempt, began, outcome) in open_runs.items():
        sim.runs.append(
            SimRun(
                process=process,
                run_id=run_id,
                attempt=attempt,
                start=began,
                end=began + outcome.duration,
                status=RunStatus.RUNNING,
            )
        )
    sim.runs.sort(key=lambda r: (r.start, r.process, r.attempt))
    return sim


def _outcome_for(registry: RegistryDef, process: str, outcomes: Mapping[str, Outcome]) -> Outcome:
    if process in outcomes:
        return outcomes[process]
    definition = registry.processes.get(process)
    if definition is not None and definition.expected_duration is not None:
        return Outcome(duration=definition.expected_duration)
    return Outcome(duration=DEFAULT_DURATION)
