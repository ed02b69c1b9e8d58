"""Lossless conversion of validated definitions to JSON-able documents and back.

The store keeps each process as such a document (plus a few promoted columns that operators may
edit with SQL). Documents written here were validated before; ``process_from_document`` trusts
them. Durations are stored as seconds, datetimes as ISO-8601 with offset, times of day as
"HH:MM:SS".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime, time, timedelta
from typing import Any

from registry.model import Missed, ProcessDef, Ranking, RegistryDef, Source

_DURATIONS = {"every", "refresh_window", "expected_duration", "retry_delay", "timeout"}
_DATETIMES = {"start_at", "end_at"}


def json_roundtrip(value: Any) -> Any:
    """The value as it will come back from a JSON column (lists for tuples, str keys...)."""
    return json.loads(json.dumps(value))


def process_to_document(process: ProcessDef) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for f in fields(ProcessDef):
        if f.name in ("name", "source"):
            continue
        value = getattr(process, f.name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, datetime):
            value = {"datetime": value.isoformat()}
        elif isinstance(value, time):
            value = {"time": value.isoformat()}
        elif isinstance(value, Missed):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        doc[f.name] = value
    if process.source is not None:
        doc["source"] = {"file": process.source.file, "line": process.source.line}
    return doc


def _decode(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DURATIONS:
        return timedelta(seconds=float(value))
    if name in _DATETIMES:
        return datetime.fromisoformat(value["datetime"] if isinstance(value, dict) else value)
    if name == "not_before":
        if "datetime" in value:
            return datetime.fromisoformat(value["datetime"])
        return time.fromisoformat(value["time"])
    if name == "missed":
        return Missed(value)
    if name in ("ancestors",):
        return tuple(value)
    if name == "command":
        return value if isinstance(value, str) else tuple(value)
    return value


def process_from_document(name: str, doc: Mapping[str, Any]) -> ProcessDef:
    known = {f.name for f in fields(ProcessDef)} - {"name", "source"}
    kwargs: dict[str, Any] = {k: _decode(k, v) for k, v in doc.items() if k in known}
    src = doc.get("source")
    source = Source(file=src["file"], line=int(src["line"])) if src else None
    return ProcessDef(name=name, source=source, **kwargs)


def settings_to_document(registry: RegistryDef) -> dict[str, Any]:
    return {
        "timezone": registry.timezone,
        "slots": registry.slots,
        "pools": dict(registry.pools),
        "ranking": registry.ranking.value,
    }


def registry_from_documents(
    settings: Mapping[str, Any], processes: Mapping[str, Mapping[str, Any]]
) -> RegistryDef:
    return RegistryDef(
        timezone=settings.get("timezone", "UTC"),
        slots=settings.get("slots"),
        pools=dict(settings.get("pools") or {}),
        ranking=Ranking(settings.get("ranking", "adp")),
        processes={n: process_from_document(n, d) for n, d in processes.items()},
    )
