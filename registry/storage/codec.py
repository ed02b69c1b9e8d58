"""Lossless conversion of validated definitions to JSON-able documents and back.

The store keeps each process as such a document (plus a few promoted columns that operators may
edit with SQL). Durations are stored as seconds, datetimes as ISO-8601 with offset, times of day as
"HH:MM:SS"; ``source`` holds file and line, and for a template's process the template and the
item (how ``registry.definitions.templates.members`` knows them). Reading goes the other way
only as far as the fields a YAML file would hold (``stored_fields``): the store validates them
like a file's (``registry.definitions.stored``), since an operator may have written anything
into the table.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime, time, timedelta
from typing import Any

from registry.model import Missed, ProcessDef, RegistryDef, Source

_TIMES = {"start_at", "end_at", "not_before"}
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_short = _repr.repr


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
    src = process.source
    if src is not None:
        doc["source"] = {"file": src.file, "line": src.line}
        if src.template is not None:  # the template's processes are known by their source
            doc["source"].update(template=src.template, item=src.item)
    return doc


def stored_fields(document: Any) -> dict[str, Any]:
    """A stored process document as the fields a YAML file would give (unset ones left out).

    What ``registry.definitions.stored.validate_stored`` checks: durations stay numbers of
    seconds, ``{"datetime": ...}`` and ``{"time": ...}`` become their ISO text. Anything else is
    passed on as it is, for validation to judge. ``ValueError`` if it is not a JSON object."""
    if not isinstance(document, Mapping):
        raise ValueError(f"the document must be a JSON object, got {_short(document)}")
    fields: dict[str, Any] = {}
    for key, value in document.items():
        if key == "source" or value is None:
            continue
        if key in _TIMES and isinstance(value, Mapping) and len(value) == 1:
            (kind, text), *_ = value.items()
            if kind in ("datetime", "time"):
                value = text
        fields[key] = value
    return fields


def stored_source(document: Any) -> Source | None:
    """Where the stored process was defined, if the document says so readably."""
    src = document.get("source") if isinstance(document, Mapping) else None
    if not isinstance(src, Mapping):
        return None
    file, line = src.get("file"), src.get("line")
    if not isinstance(file, str) or not isinstance(line, int) or isinstance(line, bool):
        return None
    template, item = src.get("template"), src.get("item")
    if not isinstance(template, str) or not isinstance(item, str):
        template = item = None
    return Source(file=file, line=line, template=template, item=item)


def settings_to_document(registry: RegistryDef) -> dict[str, Any]:
    return {
        "timezone": registry.timezone,
        "slots": registry.slots,
        "pools": dict(registry.pools),
        "ranking": registry.ranking.value,
        "retention": {
            kind: None if kept is None else kept.total_seconds()
            for kind, kept in (
                ("runs", registry.retention.runs),
                ("logs", registry.retention.logs),
                ("decisions", registry.retention.decisions),
            )
        },
    }
