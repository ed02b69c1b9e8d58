"""Small builders for definitions, so core tests read like the YAML they stand for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from registry.model import ProcessDef, Ranking, RegistryDef

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday, midnight UTC


def at(hh: int, mm: int = 0, *, day: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hh, minutes=mm)


def proc(name: str, **fields: Any) -> ProcessDef:
    for key in ("every", "refresh_window", "expected_duration", "retry_delay", "timeout"):
        if isinstance(fields.get(key), int | float):
            fields[key] = timedelta(seconds=fields[key])
    if "ancestors" in fields:
        fields["ancestors"] = tuple(fields["ancestors"])
    fields.setdefault("run", "workflows.jobs.demo:noop")
    return ProcessDef(name=name, **fields)


def registry(
    *processes: ProcessDef,
    slots: int | None = None,
    pools: dict[str, int] | None = None,
    timezone: str = "UTC",
    ranking: Ranking = Ranking.ADP,
) -> RegistryDef:
    return RegistryDef(
        timezone=timezone,
        slots=slots,
        pools=pools or {},
        ranking=ranking,
        processes={p.name: p for p in processes},
    )
