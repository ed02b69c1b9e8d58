"""What goes into the planning core (events) and what comes out (instructions and decisions).

Events are facts the drivers observed: the registry changed, a run finished, an operator asked for
something, the cluster grew. Instructions are what the core wants done: start this run, this run is
settled (retrying or terminal). Decisions say, per process, ``start`` or ``wait`` with the SPEC's
reason codes; ``explain``, the dashboard and the decision log all read them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import LoggedDecision, Request


class Code(enum.StrEnum):
    """The SPEC's reason codes: why a process is not started now."""

    DISABLED = "disabled"
    HOLD = "hold"
    WINDOW = "window"
    MAX_RUNS = "max_runs"
    DONE = "done"
    NOT_DUE = "not_due"
    FAILED = "failed"
    REFRESH_WINDOW = "refresh_window"
    NOT_BEFORE = "not_before"
    ANCESTORS = "ancestors"
    RETRY_DELAY = "retry_delay"
    MAX_ACTIVE = "max_active"
    #: its ``condition`` has not answered true since its last start, within its interval
    CONDITION = "condition"
    #: its row in the database does not validate (an operator's SQL edit); the detail says why
    INVALID = "invalid"
    # capacity: the process is a candidate but there is no room for it
    SLOTS = "slots"
    POOL = "pool"
    RESOURCES = "resources"
    RESERVED = "reserved"


CAPACITY_CODES = frozenset({Code.SLOTS, Code.POOL, Code.RESOURCES, Code.RESERVED})


@dataclass(frozen=True, slots=True)
class Reason:
    code: Code
    detail: str = ""

    def as_json(self) -> dict[str, str]:
        return {"code": self.code.value, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.code.value}: {self.detail}" if self.detail else self.code.value


# -- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryChanged:
    """The registry now reads ``registry``; ``applied_at`` says when each process first appeared."""

    registry: RegistryDef
    applied_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityChanged:
    """The cluster now offers ``threads`` threads and, per worker, these Dask resources.

    ``resources=None`` means resources are not tracked (simulation): every request fits."""

    threads: int
    resources: tuple[Mapping[str, float], ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    """An attempt ended at ``at`` (cancelled also covers a run cancelled while waiting to retry)."""

    run_id: str
    status: RunStatus  # succeeded | failed | timed_out | cancelled
    at: datetime
    duration_s: float | None = None  # measured on the worker; else at - decision time
    #: False when the job's ``retry_on`` or ``on_error`` said not to retry this failure
    retry: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerRequested:
    """A request, made at ``at``, for an extra run of ``process``: at once, or from ``due`` on
    (``trigger --at``). A backfill's request carries the fire time its run stands for
    (``scheduled``): only its own run satisfies it."""

    process: str
    at: datetime
    params: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False  # also bypass ancestors
    request_id: int | None = None
    scheduled: datetime | None = None
    due: datetime | None = None

    @classmethod
    def of(cls, request: Request) -> TriggerRequested:
        """The event of a stored trigger request (``request.process`` set)."""
        assert request.process is not None
        return cls(
            process=request.process,
            at=request.created,
            params=dict(request.params),
            force=request.force,
            request_id=request.id,
            scheduled=request.scheduled,
            due=request.due,
        )

    def due_at(self, t: datetime) -> bool:
        return self.due is None or self.due <= t

    @property
    def run_scheduled(self) -> datetime:
        """The scheduled time of the run it asks for."""
        if self.scheduled is not None:
            return self.scheduled
        return self.due if self.due is not None else self.at


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessReset:
    process: str
    at: datetime


#: ``LoggedDecision.decision`` of a condition's answer in the decision log
CONDITION_ANSWER = "condition"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionAnswered:
    """The driver asked ``process``'s condition at ``at``: true (go) or not, and why not (the
    value it gave, or the error it raised)."""

    process: str
    value: bool
    at: datetime
    detail: str = ""

    def logged(self) -> LoggedDecision:
        """The answer as a row of the decision log, where the shells that only read the
        database find it (``of_logged``): decision ``condition``, one reason ``condition``
        whose detail is ``true``, or why not (``false …``, ``error: …``, ``timed out …``)."""
        said = "true" if self.value else (self.detail or "false")
        return LoggedDecision(
            at=self.at,
            process=self.process,
            decision=CONDITION_ANSWER,
            reasons=((Code.CONDITION.value, said),),
        )

    @classmethod
    def of_logged(cls, row: LoggedDecision) -> ConditionAnswered | None:
        """The answer a decision-log row records (``logged``); None for any other row."""
        if row.decision != CONDITION_ANSWER or len(row.reasons) != 1:
            return None
        code, said = row.reasons[0]
        if code != Code.CONDITION.value:
            return None
        value = said == "true"
        return cls(process=row.process, value=value, at=row.at, detail="" if value else said)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainKept:
    """The driver could not withdraw chained run ``run_id`` in time: Dask began it (its
    ancestor succeeded first). Reported before any other event of the next step."""

    run_id: str


Event = (
    RegistryChanged
    | CapacityChanged
    | RunFinished
    | TriggerRequested
    | ProcessReset
    | ChainKept
    | ConditionAnswered
)


# -- instructions and decisions ------------------------------------------------------------------


class StartKind(enum.StrEnum):
    FIRE = "fire"  # a cron/every fire time
    SINGLE = "single"  # a single process's run (first, or again after its refresh window)
    TRIGGER = "trigger"  # an operator's request
    RETRY = "retry"  # the next attempt of a failed run


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRun:
    """Start attempt ``attempt`` of run ``run_id`` now (the driver records it, then submits it)."""

    run_id: str
    process: str
    attempt: int
    kind: StartKind
    scheduled: datetime
    decided_at: datetime
    params: Mapping[str, Any]
    final_attempt: bool  # no retry follows if this attempt fails
    request_id: int | None = None
    #: in ``Step.chained``: the run in flight whose success starts this one (Dask starts it)
    after: str | None = None
    #: in ``Step.starts``: a chained run that now starts; it was recorded and handed to Dask
    #: ahead, so the driver neither records nor submits it again
    ahead: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettled:
    """What became of a finished attempt's run: terminal ``status``, or retrying at ``retry_at``."""

    run_id: str
    process: str
    attempt: int
    status: RunStatus
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    process: str
    decision: str  # "start" | "wait"
    reasons: tuple[Reason, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "decision": self.decision,
            "reasons": [r.as_json() for r in self.reasons],
        }


# -- built in bulk -------------------------------------------------------------------------------

# A frozen dataclass's ``__init__`` is called from C, with a keyword per field, and sets each
# field through ``object.__setattr__``: most of the cost of a cold evaluation's one decision (and
# often one reason) per process. These set the same fields directly, at less than half the cost;
# ``tests/test_core_bulk.py`` checks that they build what the constructors build, field for field.
_new = object.__new__
_set = object.__setattr__


def make_reason(code: Code, detail: str) -> Reason:
    """``Reason(code, detail)``, for the paths that build one per process."""
    reason = _new(Reason)
    _set(reason, "code", code)
    _set(reason, "detail", detail)
    return reason


def make_decision(process: str, decision: str, reasons: tuple[Reason, ...] = ()) -> Decision:
    """``Decision(process=process, decision=decision, reasons=reasons)``, for the paths that
    build one per process."""
    made = _new(Decision)
    _set(made, "process", process)
    _set(made, "decision", decision)
    _set(made, "reasons", reasons)
    return made


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """The result of handling events at one instant."""

    at: datetime
    starts: tuple[StartRun, ...] = ()
    settled: tuple[RunSettled, ...] = ()
    decisions: tuple[Decision, ...] = ()  # only decisions that changed since the last step
    next_wakeup: datetime | None = None  # the earliest time a time-based rule may change
    #: runs decided ahead, each to start when its ``after`` run succeeds (chained dispatch)
    chained: tuple[StartRun, ...] = ()
    #: chained runs withdrawn: they must not start, and leave no record
    withdrawn: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    process: str
    at: datetime
    decision: str  # "start" | "wait" | "running"
    reasons: tuple[Reason, ...]
    running: tuple[str, ...]  # run ids in flight
    next_possible: datetime | None  # earliest time the time-based rules allow a start
    blocked_until: str  # human sentence: what must happen for it to start
