"""Frozen definitions: what a validated registry says, independent of YAML and SQL.

The loader (``registry.definitions.loader``) builds these from YAML files after total validation;
the store (``registry.storage``) saves and loads them; the planning core (``planner.core``) reads
them.
Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any


class Missed(enum.StrEnum):
    """What to do with cron/every fires missed while a run was late or the planner was down."""

    LATEST = "latest"  # collapse them into one run
    ALL = "all"  # run once for each, oldest first
    SKIP = "skip"  # drop them; wait for the next fire


class Ranking(enum.StrEnum):
    """Which key comes first when ordering candidates."""

    ADP = "adp"  # alarmed recurrent, recurrent, single; then priority
    PRIORITY = "priority"  # priority first, then the ADP classes


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where a definition was written: file and 1-based line; for a process of a template (an
    entry with ``foreach``), also the template's name and the item (the line is the template's).
    """

    file: str
    line: int
    template: str | None = None
    item: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessDef:
    """One process of the registry, with registry defaults already merged in."""

    name: str
    run: str | None = None
    command: tuple[str, ...] | str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: timedelta | None = None
    priority: int = 0
    reserve: bool = False
    ancestors: tuple[str, ...] = ()
    #: a time of day (each day, in the registry's timezone) or an aware datetime
    not_before: time | datetime | None = None
    refresh_window: timedelta | None = None
    pool: str | None = None
    max_active: int = 1
    resources: Mapping[str, float] = field(default_factory=dict)
    expected_duration: timedelta | None = None
    retries: int = 0
    retry_delay: timedelta = timedelta(0)
    retry_backoff: float = 1.0
    timeout: timedelta | None = None
    hold: bool = False
    enabled: bool = True
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    missed: Missed = Missed.LATEST
    on_success: str | None = None
    on_failure: str | None = None
    on_cancel: str | None = None
    #: after a failed attempt with retries left: returns "retry", "fail" or "cancel"
    on_error: str | None = None
    retry_on: tuple[str, ...] = ()  # exception type names worth retrying; empty: any
    #: "module:callable", or {"sql": ..., "db": ...}: must be true before a start
    condition: str | Mapping[str, str] | None = None
    condition_interval: timedelta = timedelta(minutes=1)
    source: Source | None = field(default=None, compare=False)

    @property
    def recurrent(self) -> bool:
        return self.cron is not None or self.every is not None

    @property
    def template(self) -> str | None:
        """The template this process is an item of (``TEMPLATE.ITEM``), if any."""
        return self.source.template if self.source is not None else None

    def retry_wait(self, attempt: int) -> timedelta:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` failed (1-based)."""
        return self.retry_delay * (self.retry_backoff ** max(attempt - 1, 0))


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long records are kept (``None``: for ever). The planner purges older ones, never
    what readiness still reads (``registry.storage.retention``)."""

    runs: timedelta | None = None
    logs: timedelta | None = timedelta(days=30)
    decisions: timedelta | None = timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryDef:
    """A whole validated registry: settings plus processes by name.

    A registry loaded from YAML is valid as a whole (or not loaded at all). One loaded from the
    store may hold rows that an operator broke with SQL: those processes are left out of
    ``processes`` and listed in ``invalid`` (name → the validation message), so the planner
    keeps planning the rest; a broken setting falls back to its default and is described in
    ``problems``."""

    timezone: str = "UTC"
    slots: int | None = None
    pools: Mapping[str, int] = field(default_factory=dict)
    ranking: Ranking = Ranking.ADP
    retention: Retention = field(default_factory=Retention)
    processes: Mapping[str, ProcessDef] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
