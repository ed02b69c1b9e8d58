"""``planner show`` and ``planner logs``: one run, one process, one attempt's log.

Pure rendering: records in, text or JSON documents out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

from planner.core.events import Explanation
from planner.interfaces.terminal.documents import attempt_json
from planner.interfaces.terminal.style import iso, seconds_text, value_text, when_text
from registry.model import ProcessDef
from registry.records import AttemptRecord, RunRecord
from registry.storage.codec import process_to_document

__all__ = ["LOG_TAIL_LINES", "process_document", "process_lines", "run_document", "run_lines"]

#: lines of the latest attempt's log that ``show RUN_ID`` prints (``planner logs`` has it all)
LOG_TAIL_LINES = 20


def run_document(run: RunRecord, attempts: Sequence[AttemptRecord], tz: tzinfo) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "process": run.process,
        "status": run.status.value,
        "scheduled": iso(run.scheduled, tz),
        "created": iso(run.created, tz),
        "ended": iso(run.ended, tz),
        "params": dict(run.params),
        "request_id": run.request_id,
        "attempts": [
            {**attempt_json(a, tz), "log": a.log} for a in sorted(attempts, key=lambda a: a.attempt)
        ],
    }


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def run_lines(run: RunRecord, attempts: Sequence[AttemptRecord], tz: tzinfo) -> list[str]:
    ordered = sorted(attempts, key=lambda a: a.attempt)
    lines = [
        f"run {run.run_id} of {run.process}: {run.status.value}",
        f"  scheduled {when_text(run.scheduled, tz)}; queued {when_text(run.created, tz)}"
        + (f"; ended {when_text(run.ended, tz)}" if run.ended else ""),
        f"  params: {_json_text(dict(run.params))}",
    ]
    for a in ordered:
        took = seconds_text(a.duration_s)
        lines.append(
            f"  attempt {a.attempt}: {a.status.value}"
            + (f" in {took}" if took else "")
            + (f" on {a.worker}" if a.worker else "")
            + (f", started {when_text(a.start, tz)}" if a.start else "")
        )
        if a.error is not None:
            lines.append(f"    error: {a.error.type}: {a.error.message}")
        result = a.result_document
        if result is not None:
            lines.append(f"    result: {_json_text(result)}")
    last = ordered[-1] if ordered else None
    if last is not None and last.log:
        tail = last.log.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
        lines.append(f"  log of attempt {last.attempt} (last {len(tail)} lines; `planner logs`):")
        lines += [f"    {line}" for line in tail]
    return lines


def process_document(
    definition: ProcessDef | None,
    invalid: str | None,
    state: Any,
    explanation: Explanation | None,
    recent: Sequence[AttemptRecord],
    tz: tzinfo,
) -> dict[str, Any]:
    doc = process_to_document(definition) if definition is not None else None
    if doc is not None:
        doc.pop("source", None)
    return {
        "process": definition.name if definition is not None else None,
        "valid": invalid is None,
        "problem": invalid,
        "settings": doc,
        "source": None
        if definition is None or definition.source is None
        else f"{definition.source.file}:{definition.source.line}",
        "state": state,
        "decision": None if explanation is None else explanation.decision,
        "reasons": [] if explanation is None else [r.as_json() for r in explanation.reasons],
        "running": [] if explanation is None else list(explanation.running),
        "recent": [attempt_json(a, tz) for a in recent],
    }


def process_lines(name: str, document: Mapping[str, Any]) -> list[str]:
    lines = [f"process {name}" + (f" (from {document['source']})" if document["source"] else "")]
    if not document["valid"]:
        lines.append(f"  invalid: {document['problem']}")
    settings = document["settings"] or {}
    width = max((len(k) for k in settings), default=0)
    lines += [f"  {key.ljust(width)}  {value_text(value)}" for key, value in settings.items()]
    lines.append(f"  saved state: {_json_text(document['state'])}")
    if document["decision"] is not None:
        reasons = "; ".join(
            f"{r['code']}: {r['detail']}" if r["detail"] else r["code"] for r in document["reasons"]
        )
        lines.append(f"  now: {document['decision']}" + (f" ({reasons})" if reasons else ""))
    for a in document["recent"]:
        lines.append(f"  recent: {a['run_id']} attempt {a['attempt']} {a['status']}")
    return lines
