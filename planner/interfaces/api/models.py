"""The shapes of the HTTP API, as pydantic models: request bodies, and the documents it answers.

They are what the OpenAPI document (``/api/v1/openapi.json``) says. The answers are the command
line's JSON documents (``planner.interfaces.terminal.documents``), so these models name the keys
that are public interface and allow more (``extra="allow"``): a key a document gains later passes
through unchanged. Times are ISO-8601 text with the registry timezone's offset, as in the command
line's documents; durations are seconds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ISO_TIME",
    "AttemptDoc",
    "ErrorBody",
    "ErrorDoc",
    "HistoryDoc",
    "OperationDoc",
    "ProcessDoc",
    "ProcessList",
    "ProcessSummary",
    "RunDoc",
    "StatsDoc",
    "StatusDoc",
    "TriggerBody",
]


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- errors -----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="not_found, conflict, bad_request, unauthorized, forbidden, …")
    message: str


class ErrorDoc(BaseModel):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorBody


# -- bodies -----------------------------------------------------------------------------------


#: a real date of the years 1900-2099, as a JSON Schema pattern: days 1-28 of every month, 29 and
#: 30 of all but February, 31 of the months that have one, and 29 February of the leap years
#: (2000, not 1900) -- so the OpenAPI document admits every date and only dates that exist
_DATE = (
    r"(?:(?:19|20)[0-9]{2}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    r"|(?:(?:19|20)(?:0[48]|[2468][048]|[13579][26])|2000)-02-29)"
)
#: an ISO-8601 date or time (naive: the registry's timezone), as a JSON Schema pattern; every text
#: it admits is a time Python parses and can shift (``datetime.fromisoformat``)
ISO_TIME = (
    _DATE + r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?"
)


class TriggerBody(BaseModel):
    """``POST /api/v1/processes/{name}/trigger``: params for the run, ``force`` to bypass the
    ancestors rule too, ``at`` for a run from that time on (``planner trigger --at``)."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    force: bool = False
    at: str | None = Field(
        default=None,
        pattern=f"^{ISO_TIME}$",
        description="ISO-8601 (naive: the registry's timezone); null or past: now",
        examples=["2026-03-02T06:00:00+01:00"],
    )


# -- answers ----------------------------------------------------------------------------------


class OperationDoc(BaseModel):
    """What a write did: ``done`` false means it was already the case and nothing was written."""

    done: bool
    message: str
    request: int | None = None
    waits: str | None = None
    note: str | None = None


class AttemptError(_Document):
    type: str
    message: str
    traceback: str


class AttemptDoc(_Document):
    """One attempt, as in ``planner history --format json``."""

    process: str
    run_id: str
    attempt: int
    status: str
    scheduled: str | None
    start: str | None
    end: str | None
    duration_s: float | None
    worker: str | None
    error: AttemptError | None
    params: dict[str, Any]
    result: Any = None


class HistoryDoc(_Document):
    """``planner history``'s document: attempts newest first; ``more`` when ``limit`` cut it."""

    runs: list[AttemptDoc]
    more: bool


class RunDoc(_Document):
    """One run and its attempts, oldest attempt first."""

    run_id: str
    process: str
    status: str
    scheduled: str | None = None
    params: dict[str, Any] = {}
    attempts: list[AttemptDoc]


class AttemptLog(_Document):
    attempt: int
    status: str
    log: str | None


class LogsDoc(_Document):
    """The captured log (logging records, stdout, stderr) of a run's attempts."""

    run_id: str
    process: str
    attempts: list[AttemptLog]


class StatusDoc(_Document):
    """``planner status --format json``."""

    planner: dict[str, Any] | None
    processes: int
    slots: int | None
    timezone: str
    held: list[str]
    disabled: list[str]
    invalid: list[dict[str, Any]]
    problems: list[str]
    active: list[dict[str, Any]]
    failures: list[AttemptDoc]


class ProcessSummary(_Document):
    process: str
    valid: bool
    problem: str | None = Field(description="why its row does not validate, when it does not")
    definition: dict[str, Any] | None = Field(
        description="its effective settings as stored (durations in seconds)"
    )


class ProcessList(_Document):
    processes: list[ProcessSummary]


class ProcessDoc(ProcessSummary):
    """A process: its settings, its saved ``state`` and why it is or is not running now."""

    state: Any = Field(description="the JSON value its job saved under 'state' (null if none)")
    explanation: dict[str, Any] = Field(description="as `planner explain --format json`")


class StatsDoc(_Document):
    """``planner stats --format json``."""

    since: str
    processes: list[dict[str, Any]]
