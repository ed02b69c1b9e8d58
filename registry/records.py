"""Plain records exchanged between the store, the drivers and the planning core."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from registry.lifecycle import RunStatus

if TYPE_CHECKING:
    from registry.definitions.diff import Change


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """Why an attempt failed: exception type, message, and the tail of the traceback/output."""

    type: str
    message: str
    traceback: str = ""
    #: the exception's class names with its bases (``retry_on`` matches them); not stored
    kinds: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveRun:
    """A run the planner must account for: queued/running, or waiting for its next attempt."""

    run_id: str
    process: str
    attempt: int
    status: RunStatus  # queued, running or retrying
    scheduled: datetime  # fire time (recurrent), request time (trigger) or decision time
    started: datetime  # when the current/last attempt was decided (queued)
    retry_at: datetime | None = None  # for status retrying
    params: Mapping[str, Any] = field(default_factory=dict)
    request_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessHistory:
    """What the planning core needs to know of a process's past runs (since its last reset)."""

    runs_created: int = 0  # highest run sequence number used; run ids are f"{process}-{seq}"
    last_fire: datetime | None = None  # scheduled time of the latest run
    last_start: datetime | None = None  # when the latest run's latest attempt was queued
    last_end: datetime | None = None  # when the latest finished attempt ended
    last_success_end: datetime | None = None  # ignores resets (ancestor freshness needs it)
    successes: int = 0  # successful runs since the last reset
    last_outcome: RunStatus | None = None  # terminal status of the latest finished run since reset
    durations: tuple[float, ...] = ()  # recent successful durations in seconds, oldest first
    active: tuple[ActiveRun, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One attempt of one run, as ``planner history`` shows it."""

    process: str
    run_id: str
    attempt: int
    status: RunStatus
    scheduled: datetime
    queued: datetime
    start: datetime | None = None  # when the job began on the worker
    end: datetime | None = None
    worker: str | None = None
    error: ErrorInfo | None = None
    result: str | None = None  # short summary of the return value / command output
    #: the returned value as JSON (``None`` too when it was not JSON: ``result`` has its repr)
    result_json: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)  # the run's
    #: the captured log; ``history`` leaves it out (``Store.attempt_log`` reads it)
    log: str | None = None

    @property
    def result_document(self) -> Any:
        """The result as ``history --format json`` shows it: the JSON value, else the repr of
        a value that was not JSON, marked ``{"repr": ...}``, else ``None``."""
        if self.result_json is not None:
            return self.result_json
        return None if self.result is None else {"repr": self.result}

    @property
    def duration_s(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


class RequestKind(enum.StrEnum):
    TRIGGER = "trigger"
    CANCEL = "cancel"
    RESET = "reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """An operator's request, written by the CLI and handled by the running planner."""

    id: int
    kind: RequestKind
    created: datetime
    process: str | None = None
    run_id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False
    due: datetime | None = None  # a trigger for a later time (``trigger --at``)
    scheduled: datetime | None = None  # a backfill's fire time, its run's ``ctx.scheduled``


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run as the ``runs`` table holds it (its attempts are ``AttemptRecord``s)."""

    run_id: str
    process: str
    status: RunStatus
    attempt: int  # the current (or last) attempt
    scheduled: datetime
    params: Mapping[str, Any] = field(default_factory=dict)
    created: datetime
    ended: datetime | None = None
    request_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyResult:
    """What ``apply`` changed: processes added, changed and removed, and the settings that
    changed, as ``planner apply --dry-run`` compares them (``registry.definitions.diff``). The
    first apply to a database sets the settings: none of them counts as changed."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    settings: tuple[Change, ...] = ()

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.removed or self.settings)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedDecision:
    at: datetime
    process: str
    decision: str  # "start" | "wait"
    reasons: tuple[tuple[str, str], ...]  # (code, detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerSeen:
    """A planner process that ran on a database: its role, and when it was last seen."""

    instance: str  # "host:pid:token", unique per process
    host: str
    pid: int
    role: str  # "leader" | "standby" | "stopped"
    started: datetime
    seen: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseState:
    """Who plans for a database (``holder`` None: nobody), and the planners seen on it."""

    holder: str | None = None
    fence: int = 0
    acquired_at: datetime | None = None
    renewed_at: datetime | None = None
    expires_at: datetime | None = None
    planners: tuple[PlannerSeen, ...] = ()

    def planner(self, instance: str | None) -> PlannerSeen | None:
        return next((p for p in self.planners if p.instance == instance), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStart:
    """A worker began an attempt."""

    run_id: str
    attempt: int
    start: datetime
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptEnd:
    """An attempt ended in ``status``; the run retries at ``retry_at`` if given, else it ends."""

    run_id: str
    attempt: int
    status: RunStatus
    end: datetime
    start: datetime | None = None
    worker: str | None = None
    error: ErrorInfo | None = None
    result: str | None = None
    retry_at: datetime | None = None
    result_json: Any = None  # the returned value as JSON, bounded on the worker
    log: str | None = None  # the captured log, bounded on the worker


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """A run queued as its first attempt."""

    run_id: str
    process: str
    scheduled: datetime
    queued: datetime
    params: Mapping[str, Any] = field(default_factory=dict)
    request_id: int | None = None
    #: a chained run: handed to Dask ahead of its ancestor's end, ``pending`` until it starts
    pending: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NextAttempt:
    """The next attempt of a run that is retrying, queued."""

    run_id: str
    attempt: int
    queued: datetime


@dataclass(slots=True, kw_only=True)
class Turn:
    """Everything one turn of the live loop records, written in one transaction and in this
    order: withdrawn and confirmed chained runs, starts, ends, cancelled retries, saved states,
    new runs, next attempts, handled requests. A bounded number of statements whatever the
    counts (``Store.record_turn``)."""

    at: datetime
    withdrawn: list[str] = field(default_factory=list)  # pending runs to delete: never started
    confirmed: list[str] = field(default_factory=list)  # pending runs now queued: they started
    started: list[AttemptStart] = field(default_factory=list)
    ended: list[AttemptEnd] = field(default_factory=list)
    cancelled_retries: list[str] = field(default_factory=list)
    states: dict[str, Any] = field(default_factory=dict)
    created: list[NewRun] = field(default_factory=list)
    retried: list[NextAttempt] = field(default_factory=list)
    handled: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.withdrawn
            or self.confirmed
            or self.started
            or self.ended
            or self.cancelled_retries
            or self.states
            or self.created
            or self.retried
            or self.handled
        )
