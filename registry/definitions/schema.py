"""The registry's YAML document as pydantic models: the shape of each part and per-field rules.

``registry.definitions.loader`` validates each part of a file separately with these models — the
settings, the file's ``defaults``, each process — so that one bad process does not hide the problems
of the next, and maps pydantic's error locations back to lines. Rules that involve several fields or
several processes (exactly one of ``run``/``command``, ancestors exist, no cycles, importable
targets, ``end_at`` after ``start_at``) live in the loader, which knows files and lines.
``json_schema()`` is the JSON Schema that ``planner schema`` prints.

A template (an entry with ``foreach``, ``registry.definitions.templates``) is validated after
expansion, one ``ProcessSpec`` per item; ``TemplateSpec`` only describes it for the JSON Schema
and the reference, where its fields may also hold the placeholders ``{item}`` / ``{item.KEY}``.

Types are strict: YAML gives real booleans and numbers, so ``priority: "high"`` or
``retries: "3"`` is an error rather than a silent conversion. The exceptions are deliberate:
durations are a number of seconds or a string (``15m``); resource amounts may be numeric strings,
because YAML 1.1 reads ``4e9`` as a string; times and datetimes may be YAML timestamps or strings.

``defaults`` may hold every process field except those that say *what* and *when* to run —
``run``, ``command``, ``cron``, ``every`` and ``ancestors`` — since a default for them would make
every process of the file the same job. A process's own value replaces the default wholesale
(``params`` and ``resources`` are not merged key by key).
"""

from __future__ import annotations

import contextlib
import math
import re
import zoneinfo
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from registry.definitions.durations import DURATION_PATTERN, parse_duration

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "ITEM_PATTERN",
    "NAME_MAX_LENGTH",
    "NAME_PATTERN",
    "PROCESS_ONLY",
    "TARGET_FIELDS",
    "TARGET_PATTERN",
    "DefaultsSpec",
    "ProcessSpec",
    "RegistryDocument",
    "Settings",
    "TemplateSpec",
    "json_schema",
    "process_name_problem",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
#: the longest process name: the ``processes.name`` column is ``String(200)``, and PostgreSQL
#: enforces it where SQLite does not, so the limit is checked here, the same on both
NAME_MAX_LENGTH = 200
#: integer fields are 32-bit signed ``Integer`` columns (or compared with them): the same range
#: on SQLite (64-bit) and PostgreSQL (32-bit), so a value is refused here rather than by a database
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
TARGET_PATTERN = rf"^{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*$"
_TARGET = re.compile(TARGET_PATTERN)
TIME_OF_DAY_PATTERN = r"^(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?$"
#: a template's item: the end of the process name ``TEMPLATE.ITEM`` (a leading digit is fine)
ITEM_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
#: a string holding a template placeholder (``{item}``, ``{item.KEY}``)
PLACEHOLDER_PATTERN = r"\{item(?:\.[^{}]*)?\}"
#: process fields that ``defaults`` may not hold
PROCESS_ONLY = frozenset({"run", "command", "cron", "every", "ancestors", "foreach"})
#: fields naming a "module:callable" that must be importable
#: the fields naming a callable, import-checked when a file is validated (a SQL condition is not)
TARGET_FIELDS = ("run", "on_success", "on_failure", "on_cancel", "on_error", "condition")


_NAME = re.compile(NAME_PATTERN)


def process_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a process (pattern, length), or ``None``."""
    if not _NAME.match(name):
        return f"invalid process name {name!r}: must match {NAME_PATTERN}"
    if len(name) > NAME_MAX_LENGTH:
        return f"process name of {len(name)} characters is too long (at most {NAME_MAX_LENGTH})"
    return None


# -- field validators (ValueError messages end up in the user's error list verbatim) ------------


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


def _positive_duration(value: Any) -> timedelta:
    result = parse_duration(value)
    if not result:
        raise ValueError(f"duration must be greater than zero, got {value!r}")
    return result


def _cron(value: Any) -> str:
    if not isinstance(value, str) or not croniter.is_valid(value):
        raise ValueError(f"invalid cron expression {value!r}")
    return value


def _target(value: Any) -> str:
    if not isinstance(value, str) or not _TARGET.match(value):
        raise ValueError(f"expected 'module:callable', got {value!r}")
    return value


def _command(value: Any) -> tuple[str, ...] | str:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("command is empty")
        return value
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("command is empty")
        bad = [item for item in value if not isinstance(item, str)]
        if bad:
            raise ValueError(f"command items must be strings (quote them), got {bad[0]!r}")
        return tuple(value)
    raise ValueError(f"command must be a string or a list of strings, got {value!r}")


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an ISO-8601 datetime such as 2026-01-01T03:00:00, got {value!r}")


def _not_before(value: Any) -> time | datetime:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.match(TIME_OF_DAY_PATTERN, value.strip()):
        hour, minute, second, *_ = [*(int(part) for part in value.strip().split(":")), 0]
        return time(hour, minute, second)
    try:
        return _datetime(value)
    except ValueError:
        raise ValueError(
            f"expected a time of day HH:MM[:SS] or an ISO-8601 datetime, got {value!r}"
        ) from None


def _amount(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ValueError(f"resource amount must be a number >= 0, got {value!r}")
    return number


def _json_value(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"{where} must hold finite numbers (JSON has no NaN or Infinity), got {value}"
        )
    if value is None or isinstance(value, str | bool | int | float):
        return
    if isinstance(value, list):
        for item in value:
            _json_value(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} keys must be strings, got {key!r}")
            _json_value(item, where)
        return
    raise ValueError(f"{where} must be plain JSON values (quote dates and times), got {value!r}")


def _params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"params must be a mapping of keyword arguments, got {value!r}")
    _json_value(value, "params")
    return value


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"timezone must be an IANA name such as 'Europe/Madrid', got {value!r}")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}") from None
    return value


_DURATION_JSON = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "seconds, or a number with a unit: 90s, 15m, 6h, 1d, 1h30m",
}
_DATETIME_JSON = {"type": "string", "description": "ISO-8601 datetime; naive means registry tz"}

Duration = Annotated[timedelta, PlainValidator(_duration), WithJsonSchema(_DURATION_JSON)]
PositiveDuration = Annotated[
    timedelta, PlainValidator(_positive_duration), WithJsonSchema(_DURATION_JSON)
]
Cron = Annotated[
    str, PlainValidator(_cron), WithJsonSchema({"type": "string", "description": "croniter"})
]
ExceptionName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$", max_length=200),
]
Target = Annotated[
    str, PlainValidator(_target), WithJsonSchema({"type": "string", "pattern": TARGET_PATTERN})
]
Command = Annotated[
    tuple[str, ...] | str,
    PlainValidator(_command),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
]
DateTimeValue = Annotated[datetime, PlainValidator(_datetime), WithJsonSchema(_DATETIME_JSON)]
NotBefore = Annotated[
    time | datetime,
    PlainValidator(_not_before),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": TIME_OF_DAY_PATTERN}, _DATETIME_JSON]}),
]
Amount = Annotated[
    float,
    PlainValidator(_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^[0-9.eE+-]+$"},
            ]
        }
    ),
]
Params = Annotated[dict[str, Any], PlainValidator(_params), WithJsonSchema({"type": "object"})]
ProcessName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)]
#: integers that fit the 32-bit columns (a ``ge`` given to ``Field`` would not narrow these)
Int = Annotated[int, Field(ge=INT_MIN, le=INT_MAX)]
Count = Annotated[int, Field(ge=0, le=INT_MAX)]
PositiveInt = Annotated[int, Field(ge=1, le=INT_MAX)]
Timezone = Annotated[
    str, PlainValidator(_timezone), WithJsonSchema({"type": "string", "description": "IANA name"})
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SqlCondition(_Strict):
    """A condition on a database: a scalar query whose true value means go."""

    sql: str = Field(min_length=1, description="a query returning one value; true means go")
    db: str = Field(
        min_length=1,
        description="a SQLAlchemy URL, or the name of an environment variable holding one",
    )


class ProcessFields(_Strict):
    """The process fields that ``defaults`` may also set."""

    params: Params = Field(default_factory=dict, description="keyword arguments of the callable")
    priority: Int = Field(default=0, description="higher runs first")
    reserve: bool = Field(default=False, description="keep a slot free for it at its due time")
    not_before: NotBefore | None = Field(
        default=None,
        description='"HH:MM" each day in the registry timezone, or an ISO-8601 datetime',
    )
    refresh_window: Duration | None = Field(
        default=None,
        description="no new start within this time of the last start; a single process with it"
        " reruns after each fresh success of its ancestors",
    )
    pool: str | None = Field(default=None, description="a pool named under `pools`")
    max_active: PositiveInt = Field(default=1, description="concurrent runs of this process")
    resources: dict[str, Amount] = Field(
        default_factory=dict, description="Dask worker resources it needs"
    )
    expected_duration: PositiveDuration | None = Field(
        default=None, description="used for ranking and reservations until history has p90"
    )
    retries: Count = Field(default=0, description="extra attempts after a failure")
    retry_delay: Duration = Field(default=timedelta(0), description="wait before the first retry")
    retry_backoff: float = Field(
        default=1.0, ge=1.0, allow_inf_nan=False, description="delay multiplier per attempt"
    )
    timeout: PositiveDuration | None = Field(
        default=None, description="an attempt running longer is timed_out (commands are killed)"
    )
    hold: bool = Field(default=False, description="never started while true")
    enabled: bool = Field(default=True, description="never started while false")
    start_at: DateTimeValue | None = Field(
        default=None, description="active period start; fire times count from it"
    )
    end_at: DateTimeValue | None = Field(default=None, description="active period end")
    max_runs: PositiveInt | None = Field(default=None, description="stop after this many successes")
    missed: Literal["latest", "all", "skip"] = Field(
        default="latest",
        description="fires missed while late or down: one run, one run each, or none",
    )
    on_success: Target | None = Field(default=None, description="hook 'module:callable'")
    on_failure: Target | None = Field(
        default=None, description="hook, after the last attempt failed"
    )
    on_cancel: Target | None = Field(default=None, description="hook, after a cancel")
    on_error: Target | None = Field(
        default=None,
        description='hook after a failed attempt with retries left: returns "retry" (default),'
        ' "fail" or "cancel"',
    )
    retry_on: list[ExceptionName] = Field(
        default_factory=list,
        description="exception type names worth retrying, matched against the class and its"
        " bases (default: any)",
    )
    condition: Target | SqlCondition | None = Field(
        default=None,
        description="must be true before a start: 'module:callable' (called with ctx) or {sql, db}",
    )
    condition_interval: PositiveDuration = Field(
        default=timedelta(minutes=1), description="how often a false condition is asked again"
    )


class DefaultsSpec(ProcessFields):
    """Defaults for the processes of one file (every field but run/command/cron/every/ancestors)."""


class ProcessSpec(ProcessFields):
    """One process as written in YAML (exactly one of ``run``/``command``)."""

    run: Target | None = Field(
        default=None, description="a callable, called with params as keyword arguments"
    )
    command: Command | None = Field(
        default=None, description="shell command (string) or argv (list)"
    )
    cron: Cron | None = Field(
        default=None, description="recurrent: cron expression in the registry timezone"
    )
    every: PositiveDuration | None = Field(
        default=None, description="recurrent: fixed interval from when it was first applied"
    )
    ancestors: list[ProcessName] = Field(
        default_factory=list, description="processes that must have a fresh success first"
    )


_FOREACH_JSON = {
    "anyOf": [
        {
            "type": "array",
            "items": {
                "anyOf": [
                    {"type": "string", "pattern": ITEM_PATTERN},
                    {"type": "integer", "minimum": 0},
                ]
            },
        },
        {
            "type": "object",
            "propertyNames": {"pattern": ITEM_PATTERN},
            "additionalProperties": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        },
    ],
}
Foreach = Annotated[
    list[str | int] | dict[str, dict[str, Any] | None], WithJsonSchema(_FOREACH_JSON)
]


class TemplateSpec(ProcessSpec):
    """A template as written in YAML: a process with ``foreach`` (for the JSON Schema and the
    reference; the loader expands it and validates each of its processes as a ``ProcessSpec``)."""

    foreach: Foreach | None = Field(
        default=None,
        description="a template: one process `NAME.ITEM` per item; `{item}` and `{item.KEY}` in"
        " its strings are replaced",
    )


class RetentionSpec(_Strict):
    """How long records are kept; ``null`` keeps them for ever."""

    runs: PositiveDuration | None = Field(
        default=None, description="ended runs and their attempts (default: for ever)"
    )
    logs: PositiveDuration | None = Field(
        default=timedelta(days=30), description="the captured logs of attempts"
    )
    decisions: PositiveDuration | None = Field(
        default=timedelta(days=7), description="the decision log"
    )


class Settings(_Strict):
    """The registry-wide settings; files that repeat one must agree on its value."""

    timezone: Timezone = Field(default="UTC", description="IANA name for cron and times")
    slots: PositiveInt | None = Field(
        default=None,
        description="cap on concurrent runs; default: the cluster's total threads",
    )
    pools: dict[str, PositiveInt] = Field(
        default_factory=dict, description="named concurrency limits"
    )
    ranking: Literal["adp", "priority"] = Field(
        default="adp", description="`priority` ranks by priority before the process class"
    )
    retention: RetentionSpec = Field(
        default_factory=RetentionSpec,
        description="how long runs, logs and decisions are kept; older ones are purged",
    )


class RegistryDocument(Settings):
    """A whole registry file (used for the JSON Schema; the loader validates it piecewise)."""

    defaults: DefaultsSpec | None = None
    processes: dict[ProcessName, ProcessSpec | TemplateSpec | None] | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a registry YAML file."""
    schema = RegistryDocument.model_json_schema()
    # pydantic turns the key pattern into patternProperties; other names must not slip through
    processes = schema["properties"]["processes"]["anyOf"][0]
    processes["additionalProperties"] = False
    schema["patternProperties"] = {"^x-": {}}  # ignored keys, a place for YAML anchors
    schema["title"] = "dask-planner registry"
    template = schema["$defs"]["TemplateSpec"]
    template["required"] = ["foreach"]  # what tells a template from a process
    foreach = template["properties"]["foreach"]
    foreach["anyOf"] = [kind for kind in foreach["anyOf"] if kind != {"type": "null"}]
    foreach.pop("default", None)
    for name, prop in template["properties"].items():
        if name != "foreach":
            template["properties"][name] = _with_placeholders(prop)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _with_placeholders(prop: dict[str, Any]) -> dict[str, Any]:
    """A template's field: what a process's takes, or a string with a placeholder (which the
    item's value replaces; a whole-string placeholder takes the value's type: ``"{item.n}"``)."""
    inner = dict(prop)
    meta: dict[str, Any] = {
        k: inner.pop(k) for k in ("description", "default", "title") if k in inner
    }
    return {"anyOf": [_loosened(inner), _PLACEHOLDER_JSON], **meta}


def _loosened(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` whose list items and mapping values may hold placeholders too."""
    node = dict(node)
    for key in ("items", "additionalProperties"):  # ancestors, command; resources
        inner = node.get(key)
        if isinstance(inner, dict) and inner and inner != {"type": "string"}:
            node[key] = {"anyOf": [_loosened(inner), _PLACEHOLDER_JSON]}
    if "anyOf" in node:
        node["anyOf"] = [_loosened(member) for member in node["anyOf"]]
    return node


_PLACEHOLDER_JSON = {"type": "string", "pattern": PLACEHOLDER_PATTERN}
