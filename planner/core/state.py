"""The planning core's mutable memory of each process: its definition plus what its runs did.

Only ``planner.core.planner`` mutates these objects; readiness, ranking and reservation read them.
``Readiness`` is the result of one evaluation (``planner.core.readiness.evaluate``), kept here
because each ``ProcState`` holds its last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from planner.core.events import Code, ConditionAnswered, Reason, StartKind, TriggerRequested
from planner.core.schedule import Schedule
from registry.lifecycle import RunStatus
from registry.model import ProcessDef
from registry.records import ProcessHistory

DURATIONS_KEPT = 20


@dataclass(slots=True, kw_only=True)
class Flight:
    """A run the core accounts for: in flight (queued/running) or waiting for its next attempt."""

    run_id: str
    attempt: int
    scheduled: datetime
    started: datetime  # when the current attempt was decided
    params: dict[str, Any] = field(default_factory=dict)
    request_id: int | None = None
    retry_at: datetime | None = None  # set while waiting to retry
    pool: str | None = None  # capacity it holds while in flight
    resources: dict[str, float] = field(default_factory=dict)


class Readiness(NamedTuple):
    """The outcome of evaluating every readiness rule of one process at one instant.

    Immutable like the frozen dataclasses, but a named tuple: a cold evaluation builds one per
    process, and a tuple is several times cheaper to build than a frozen dataclass."""

    reasons: tuple[Reason, ...]
    kind: StartKind
    scheduled: datetime
    next_check: datetime | None
    opens_at: datetime | None  # when the closed time gates open; None if a non-time rule blocks
    retry: Flight | None = None
    trigger: TriggerRequested | None = None

    @property
    def candidate(self) -> bool:
        return not self.reasons


@dataclass(slots=True, kw_only=True)
class ProcState:
    definition: ProcessDef
    anchor: datetime
    schedule: Schedule | None = None
    # history
    runs_created: int = 0
    last_fire: datetime | None = None
    last_start: datetime | None = None
    last_end: datetime | None = None
    last_success_end: datetime | None = None
    successes: int = 0
    last_outcome: RunStatus | None = None
    #: the last ``DURATIONS_KEPT`` successful durations, oldest first (``add_duration``); lists,
    #: not deques: an empty deque takes 760 bytes, 150 MB for two per process at 100,000
    durations: list[float] = field(default_factory=list)
    flights: dict[str, Flight] = field(default_factory=dict)  # queued/running
    retrying: dict[str, Flight] = field(default_factory=dict)  # waiting for next attempt
    triggers: list[TriggerRequested] = field(default_factory=list)  # oldest first
    condition: ConditionAnswered | None = None  # its condition's last answer (driver's)
    # cached evaluation
    next_fire: datetime | None = None  # first fire after last_fire (recurrent only)
    next_fire_valid: bool = False
    reasons: tuple[Reason, ...] = ()
    candidate: bool = False
    ready_since: datetime | None = None
    alarmed: bool = False
    critical_path: float = 0.0
    estimate: float | None = None  # seconds; p90 of recent successes, else expected_duration
    rank: tuple[Any, ...] | None = None  # key under which it sits in the candidate list
    check_version: int = 0  # invalidates stale wake-up heap entries
    logged: tuple[str, tuple[Code, ...]] | None = None  # last decision reported
    #: why its definition in the store is refused; while set, ``definition`` is a placeholder
    invalid: str | None = None
    #: the last evaluation, while it says more than ``reasons`` (a candidate's, a reserved
    #: process's, one with a time rule pending); None for a process that waits on rules alone
    readiness: Readiness | None = None
    evaluated_at: datetime | None = None  # the instant of the last evaluation
    evaluation: int = 0  # the book's sequence number of the last evaluation (later: larger)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def running(self) -> int:
        return len(self.flights)

    @classmethod
    def from_history(
        cls, definition: ProcessDef, anchor: datetime, history: ProcessHistory | None
    ) -> ProcState:
        state = cls(definition=definition, anchor=anchor)
        if history is None:
            state.refresh_estimate()
            return state
        state.runs_created = history.runs_created
        state.last_fire = history.last_fire
        state.last_start = history.last_start
        state.last_end = history.last_end
        state.last_success_end = history.last_success_end
        state.successes = history.successes
        state.last_outcome = history.last_outcome
        state.durations.extend(history.durations[-DURATIONS_KEPT:])
        for run in history.active:
            flight = Flight(
                run_id=run.run_id,
                attempt=run.attempt,
                scheduled=run.scheduled,
                started=run.started,
                params=dict(run.params),
                request_id=run.request_id,
                retry_at=run.retry_at,
                pool=definition.pool,
                resources=dict(definition.resources),
            )
            if run.status is RunStatus.RETRYING:
                state.retrying[run.run_id] = flight
            else:
                state.flights[run.run_id] = flight
        state.refresh_estimate()
        return state

    def add_duration(self, seconds: float) -> None:
        """A successful run took ``seconds``: keep it (the oldest goes past ``DURATIONS_KEPT``)
        and refresh the estimate."""
        self.durations.append(seconds)
        if len(self.durations) > DURATIONS_KEPT:
            del self.durations[0]
        self.refresh_estimate()

    def refresh_estimate(self) -> None:
        """p90 of recent successful durations, else ``expected_duration``, else unknown."""
        if self.durations:
            ordered = sorted(self.durations)
            self.estimate = ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]
        elif self.definition.expected_duration is not None:
            self.estimate = self.definition.expected_duration.total_seconds()
        else:
            self.estimate = None

    def new_run_id(self) -> str:
        self.runs_created += 1
        return f"{self.name}-{self.runs_created}"

    def estimated_end(self, started: datetime, now: datetime) -> datetime | None:
        """When a run of this process started at ``started`` should end; ``None`` if unknown.

        A run past its estimate is assumed to end now (optimistic: overdue runs must not block
        backfilling forever)."""
        if self.estimate is None:
            return None
        return max(started + timedelta(seconds=self.estimate), now)
