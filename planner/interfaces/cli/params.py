"""The command line's parameter types and how their values are read against a registry.

``TIME`` takes ISO-8601 or ``now``; a naive time is in the registry's timezone, so it is resolved
(``resolve``) only once the registry is loaded. ``--wide`` (``wide_option``) keeps every column of
a table on a narrow terminal. ``ADAPT`` takes ``MIN:MAX`` workers
(``planner.live.cluster.Adapt``). Bad values are click usage errors, which ``PlannerGroup`` turns
into exit code 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

import click

from registry.definitions.durations import parse_duration
from registry.errors import ProcessNotFound

if TYPE_CHECKING:
    from registry.model import RegistryDef

__all__ = [
    "ADAPT",
    "DURATION",
    "SINCE",
    "TIME",
    "format_option",
    "require",
    "resolve",
    "timezone_of",
    "wide_option",
]

_FORMATS = click.Choice(["table", "json"])


class _TimeType(click.ParamType):
    """ISO-8601 (naive: in the registry's timezone) or ``now`` (converted to ``None``)."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.lower() == "now":
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not 'now' or an ISO-8601 time like 2026-03-02T06:00", param, ctx
            )


class _DurationType(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _SinceType(click.ParamType):
    """A duration back from now (``1d``) or an ISO-8601 time."""

    name = "DURATION|TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta | datetime):
            return value
        try:
            return parse_duration(str(value))
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is neither a duration (1d, 6h) nor an ISO-8601 time", param, ctx)


class _AdaptType(click.ParamType):
    """``MIN:MAX`` workers of an adaptive in-process cluster."""

    name = "MIN:MAX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from planner.live.cluster import Adapt

        if isinstance(value, Adapt):
            return value
        try:
            return Adapt.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


ADAPT = _AdaptType()
TIME = _TimeType()
DURATION = _DurationType()
SINCE = _SinceType()


def resolve(at: datetime | None, tz: tzinfo, now: datetime) -> datetime:
    """A parsed ``TIME`` as aware UTC: ``None`` is ``now``; naive is in the registry's timezone."""
    if at is None:
        return now
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    return at.astimezone(UTC)


def timezone_of(registry: RegistryDef) -> tzinfo:
    from planner.core.schedule import zone

    return zone(registry.timezone)


def format_option(f: Any) -> Any:
    return click.option(
        "--format",
        "fmt",
        type=_FORMATS,
        default="table",
        show_default=True,
        help="Human table or JSON document.",
    )(f)


def wide_option(f: Any) -> Any:
    """``--wide``: every column of the tables (at 80 columns the least important are left out)."""
    return click.option(
        "--wide",
        is_flag=True,
        help="Every column, times in full (a narrow terminal leaves some columns out).",
    )(f)


def require(registry: RegistryDef, process: str) -> None:
    """``ProcessNotFound`` unless the registry has ``process`` (valid or not: an invalid row can
    still be explained, and triggered for when it is repaired)."""
    if process not in registry.processes and process not in registry.invalid:
        raise ProcessNotFound(process)
