"""What one attempt is given and what it reports: ``JobSpec`` in, ``JobOutcome`` out.

Plain, frozen and picklable, so they travel between the planner and a Dask worker. The helpers
here bound what an outcome carries (result summaries, traceback tails) before it leaves the
worker; callables and commands share them.
"""

from __future__ import annotations

import json
import os
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from planner.live.worker.logs import DEFAULT_LOG_MAX_BYTES, configured_log_max_bytes
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

if TYPE_CHECKING:
    from registry.model import ProcessDef

# What an outcome carries is bounded here, on the worker, before it reaches the scheduler (its event
# log, the task result) and the database: a job that raises a 50 MB message stores 8 KiB of it.
RESULT_MAX_CHARS = 500  # JobOutcome.result is cut to this length
RESULT_JSON_MAX_CHARS = 64 * 1024  # a larger JSON result is kept as its (cut) repr only
TRACEBACK_LINES = 20  # lines of traceback / stderr kept in ErrorInfo.traceback …
TRACEBACK_MAX_CHARS = 16 * 1024  # … and at most this many characters of their tail,
LINE_MAX_CHARS = 2 * 1024  # … each line cut to this length (a 50 MB message leaves its frames)
MESSAGE_MAX_CHARS = 8 * 1024  # ErrorInfo.message is cut to this length
TYPE_MAX_CHARS = 200  # ErrorInfo.type likewise


@dataclass(frozen=True, slots=True, kw_only=True)
class JobHooks:
    """Lifecycle hook targets (``module:callable``) of a process."""

    on_success: str | None = None
    on_failure: str | None = None
    on_cancel: str | None = None
    on_error: str | None = None  # after a failed attempt with retries left: retry/fail/cancel


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """Everything the worker needs for one attempt; built by the planner, pickled to the worker."""

    process: str
    run_id: str
    attempt: int  # 1-based
    scheduled: datetime  # aware
    run: str | None = None  # "module:callable"
    command: Sequence[str] | str | None = None  # argv, or a shell command line
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    state: Any = None  # the process's saved JSON state
    hooks: JobHooks = field(default_factory=JobHooks)
    #: no retry follows this attempt if it fails (the planner knows the retries left)
    final_attempt: bool = True
    #: working directory of commands and import root of callables; default: the planner's cwd
    cwd: str | None = field(default_factory=os.getcwd)
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for commands
    kill_grace_s: float = 3.0  # SIGTERM → SIGKILL delay for commands
    retry_on: tuple[str, ...] = ()  # exception names worth retrying (``retry_decision``)
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES  # of the attempt's log, the last kept (``logs``)
    #: for each ancestor, the JSON result of the success that made it fresh (``ctx.ancestors``)
    ancestors: Mapping[str, Any] = field(default_factory=dict)
    #: a chained attempt: the ancestor whose task's outcome it gets (its result joins
    #: ``ancestors`` on the worker, the moment the ancestor ends)
    chained_after: str | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.command is None):
            raise ValueError(f"job {self.run_id!r}: give exactly one of run or command")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"job {self.run_id!r}: timeout_s must be positive")
        # plain containers, whatever the caller passed (mappingproxy does not pickle)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "ancestors", dict(self.ancestors))
        if self.command is not None and not isinstance(self.command, str):
            object.__setattr__(self, "command", tuple(self.command))

    @classmethod
    def for_process(
        cls,
        process: ProcessDef,
        *,
        run_id: str,
        attempt: int,
        scheduled: datetime,
        state: Any = None,
        params: Mapping[str, Any] | None = None,
        final_attempt: bool = True,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        ancestors: Mapping[str, Any] | None = None,
        log_max_bytes: int | None = None,
    ) -> JobSpec:
        """The spec of an attempt of ``process``; ``params`` (e.g. a trigger's) override its own.
        ``log_max_bytes``: the bound of its log, read from Dask's config unless given."""
        return cls(
            process=process.name,
            run_id=run_id,
            attempt=attempt,
            scheduled=scheduled,
            run=process.run,
            command=process.command,
            params={**process.params, **(params or {})},
            timeout_s=process.timeout.total_seconds() if process.timeout else None,
            state=state,
            hooks=JobHooks(
                on_success=process.on_success,
                on_failure=process.on_failure,
                on_cancel=process.on_cancel,
                on_error=process.on_error,
            ),
            retry_on=tuple(process.retry_on),
            log_max_bytes=(configured_log_max_bytes() if log_max_bytes is None else log_max_bytes),
            ancestors=dict(ancestors or {}),
            final_attempt=final_attempt,
            cwd=cwd if cwd is not None else os.getcwd(),
            env=dict(env or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """Passed as ``ctx=`` to callables that have a parameter named ``ctx``."""

    run_id: str
    attempt: int
    scheduled: datetime
    process: str
    state: Any
    params: Mapping[str, Any]
    #: for each ancestor, the JSON result of its success that made this run's ancestors fresh
    #: (``None`` for an ancestor whose result was not JSON, or that returned nothing)
    ancestors: Mapping[str, Any] = field(default_factory=dict)
    #: set when the attempt is cancelled or its timeout passed: stop soon (the attempt, and its
    #: slot, stay busy until the callable returns)
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """How an attempt ended, as measured on the worker."""

    status: RunStatus  # succeeded | failed | timed_out | cancelled
    start: datetime  # aware UTC
    end: datetime  # aware UTC; before hooks ran
    worker: str  # Dask worker address, else "hostname:pid"
    error: ErrorInfo | None = None
    #: ≤ RESULT_MAX_CHARS summary: a callable's return value (its repr when it is not JSON); a
    #: command's stdout tail, kept only beside a result (``result_json``)
    result: str | None = None
    #: when ``state_changed``, ``new_state`` replaces the process's saved state
    state_changed: bool = False
    new_state: Any = None
    #: False when ``retry_on``/``on_error`` said this failure must not be retried
    retry: bool = True
    #: the result as JSON (bounded): a callable's return value when it is JSON; a command's
    #: stdout's last line, parsed when it is JSON, else as text (``commands.result_of``)
    result_json: Any = None
    log: str | None = None  # the attempt's captured log (bounded)

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status: RunStatus
    error: ErrorInfo | None = None
    result: str | None = None
    state_changed: bool = False
    new_state: Any = None
    result_json: Any = None


def json_result(value: Any, limit: int = RESULT_JSON_MAX_CHARS) -> Any:
    """``value`` if it is JSON (finite numbers, string keys) within ``limit`` characters
    encoded, else ``None`` (its repr is the result summary)."""
    if value is None:
        return None
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return json.loads(text) if len(text) <= limit else None


def summary(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else safe_repr(value)
    return clip(text)


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not turn a success into a crash
        return f"<{type(value).__name__} (repr failed: {exc})>"


def clip(text: str, limit: int = RESULT_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_from_exception(exc: BaseException) -> ErrorInfo:
    tb = "".join(traceback.format_exception(exc))
    try:
        message = str(exc)
    except Exception as str_error:
        message = f"<str() of the exception failed: {str_error!r}>"
    error = ErrorInfo(
        type=type(exc).__name__, message=message, traceback=tb, kinds=exception_kinds(exc)
    )
    return bounded_error(error)


def exception_kinds(exc: BaseException) -> tuple[str, ...]:
    """The names ``retry_on`` may match: each class of the exception's MRO, bare and
    qualified (``builtins`` ones bare only)."""
    kinds: list[str] = []
    for cls in type(exc).__mro__:
        if cls is object:
            continue
        kinds.append(cls.__name__)
        if cls.__module__ != "builtins":
            kinds.append(f"{cls.__module__}.{cls.__qualname__}")
    return tuple(kinds)


def bounded_error(error: ErrorInfo) -> ErrorInfo:
    """``error`` within the documented sizes (a no-op for one that already is)."""
    return ErrorInfo(
        type=clip(error.type, TYPE_MAX_CHARS),
        message=clip(error.message, MESSAGE_MAX_CHARS),
        traceback=tail_lines(error.traceback),
        kinds=error.kinds,
    )


def tail_lines(text: str, lines: int = TRACEBACK_LINES, limit: int = TRACEBACK_MAX_CHARS) -> str:
    """The last ``lines`` lines of ``text``, each cut to ``LINE_MAX_CHARS``; at most ``limit``
    characters of them (their tail)."""
    kept = "\n".join(clip(line, LINE_MAX_CHARS) for line in text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= limit else "…" + kept[-(limit - 1) :]


def utcnow() -> datetime:
    return datetime.now(UTC)
