"""``planner show``, ``planner logs`` and ``planner explain TEMPLATE``: one run, one process,
one attempt's log, one template (its processes summed up: ``template_view``).

Pure rendering: records in, text, rich renderables or JSON documents out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from planner.core.events import Decision, Explanation
from planner.interfaces.terminal.documents import attempt_json
from planner.interfaces.terminal.fit import Col, FitTable
from planner.interfaces.terminal.style import (
    Times,
    iso,
    plural,
    reasons_text,
    seconds_text,
    value_text,
    when_text,
)
from planner.interfaces.terminal.views import PLAN_WAITS_SHOWN, grouped_rows, plan_table
from registry.errors import name_list
from registry.model import ProcessDef
from registry.records import AttemptRecord, RunRecord
from registry.storage.codec import process_to_document

__all__ = [
    "LOG_TAIL_LINES",
    "TEMPLATE_NAMES_SHOWN",
    "process_document",
    "process_lines",
    "run_document",
    "run_lines",
    "template_view",
]

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


# -- a template -------------------------------------------------------------------------------


#: processes a row of ``template_view`` names before "… and N more"
TEMPLATE_NAMES_SHOWN = 5


def template_view(
    template: str,
    at: datetime,
    decisions: Sequence[Decision],
    tz: tzinfo,
    *,
    show_all: bool = False,
    now: datetime | None = None,
    wide: bool = False,
) -> RenderableType:
    """``planner explain TEMPLATE``: the template's processes summed up, not one line each — a
    row per decision and reasons alike (as ``plan`` groups them: ``grouped_rows``) with how many
    processes it stands for and the first ``TEMPLATE_NAMES_SHOWN`` of them, at most
    ``PLAN_WAITS_SHOWN`` rows, then how to see every process. ``show_all``: the plan table of
    every process, one row each."""
    if show_all:
        return plan_table(at, decisions, tz, waits=None, now=now, wide=wide)
    times = Times(tz, now, wide)
    starts = sum(d.decision == "start" for d in decisions)
    title = (
        f"template {template} at {times(at)} {times.zone}: "
        f"{plural(len(decisions), 'process', 'processes')}, {starts:,} to start, "
        f"{len(decisions) - starts:,} waiting"
    )
    table = FitTable(
        [
            Col("processes"),
            Col("decision"),
            Col("reasons", text=True),
            Col("first processes", keep=50, text=True),
        ],
        title=title,
        wide=wide,
    )
    rows = grouped_rows(decisions, dict.fromkeys((d.process for d in decisions), template))
    for d, names in rows[:PLAN_WAITS_SHOWN]:
        style = "bold green" if d.decision == "start" else ""
        table.add_row(
            f"{len(names):,}",
            Text(d.decision, style=style),
            reasons_text(d.reasons),
            name_list(names, TEMPLATE_NAMES_SHOWN),
        )
    lines: list[RenderableType] = [table]
    if len(rows) > PLAN_WAITS_SHOWN:
        rest = rows[PLAN_WAITS_SHOWN:]
        count = sum(len(names) for _, names in rest)
        more = plural(count, "process", "processes")
        lines.append(Text(f"… and {plural(len(rest), 'row')} more ({more})"))
    lines.append(
        Text(
            f"`planner explain {template}.ITEM` explains one process; "
            f"`planner explain {template} --all` (or `--format json`) lists every one"
        )
    )
    return Group(*lines)
