"""The page's history: recent attempts with their params, results and logs, and the per-process
figures.

Plain functions of a snapshot (``planner.live.snapshot``), like ``columns``: tested without a
browser. A recent attempt carries its run's params, its result (the ``history`` document's
``result``) and the tail of its log (``RECENT_LOG_TAIL`` characters). The table shows params and
result as compact JSON, cut to ``RECENT_TEXT_MAX_CHARS``; the panel beside it shows the selected
attempt's (the newest by default) params, result and log.
"""

from __future__ import annotations

import html
import json
from typing import Any

from planner.interfaces.page.columns import RUN_COLOURS, Columns, Snapshot, zone_of

__all__ = [
    "RECENT_SHOWN",
    "RECENT_TEXT_MAX_CHARS",
    "json_text",
    "log_html",
    "recent_columns",
    "stats_columns",
]

RECENT_SHOWN = 50
#: characters of an attempt's params and of its result the page gets (``planner show`` has all)
RECENT_TEXT_MAX_CHARS = 2000
_UNKNOWN = "#888888"
_FIELDS = (
    "process",
    "run_id",
    "attempt",
    "status",
    "at",
    "took",
    "params",
    "result",
    "error",
    "log",
    "colour",
)


def json_text(value: Any, limit: int = RECENT_TEXT_MAX_CHARS) -> str:
    """``value`` as one line of JSON, as ``history --format json`` writes it, cut to ``limit``
    characters (ending in ``…``); ``""`` for ``None`` (no result, or params not known yet)."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 60 else f"{value / 60:.1f}m"


def recent_columns(snap: Snapshot) -> Columns:
    """The latest attempts, newest first, each with its log's tail."""
    tz = zone_of(snap)
    cols: Columns = {k: [] for k in _FIELDS}
    for r in list(reversed(snap["recent"]))[:RECENT_SHOWN]:
        cols["process"].append(r["process"])
        cols["run_id"].append(r["run_id"])
        cols["attempt"].append(r["attempt"])
        cols["status"].append(r["status"])
        at = r.get("at")
        cols["at"].append("" if at is None else at.astimezone(tz).strftime("%H:%M:%S"))
        cols["took"].append(_seconds(r.get("duration_s")))
        cols["params"].append(json_text(r.get("params")))
        cols["result"].append(json_text(r.get("result")))
        cols["error"].append(r.get("error") or "")
        cols["log"].append(r.get("log") or "")
        cols["colour"].append(RUN_COLOURS.get(r["status"], _UNKNOWN))
    return cols


def log_html(columns: Columns, index: int = 0) -> str:
    """Row ``index`` of ``recent_columns``: its params and result, then its log, escaped, in a
    scrolling box. ``page._SHOW_LOG_JS`` writes the same in the browser when a row is selected."""
    if not columns["run_id"]:
        return "<i>no attempt has ended yet</i>"
    run, attempt = html.escape(str(columns["run_id"][index])), columns["attempt"][index]
    params = html.escape(columns["params"][index] or "(unknown)")
    result = html.escape(columns["result"][index] or "(none)")
    text = columns["log"][index] or "(nothing logged)"
    return (
        f"<b>{run}, attempt {attempt}</b>"
        f'<div style="white-space:pre-wrap;word-break:break-all">params: <code>{params}</code>'
        f" · result: <code>{result}</code></div>"
        f"<b>log</b> (its end; <code>planner logs {run}</code> has it all)"
        f'<pre style="max-height:260px;overflow:auto;background:#f6f6f6;padding:6px;'
        f'white-space:pre-wrap">{html.escape(text)}</pre>'
    )


def _rate(value: Any) -> str:
    return "" if value is None else f"{value:.0%}"


def stats_columns(snap: Snapshot) -> Columns:
    """``planner stats`` per process (the last 7 days)."""
    names = (
        "process",
        "runs",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "success",
        "p50",
        "p90",
        "late",
    )
    cols: Columns = {k: [] for k in names}
    for f in snap.get("stats", []):
        cols["process"].append(f["process"])
        for key in ("runs", "succeeded", "failed", "timed_out", "cancelled"):
            cols[key].append(f[key])
        cols["success"].append(_rate(f["success_rate"]))
        cols["p50"].append(_seconds(f["duration_p50_s"]))
        cols["p90"].append(_seconds(f["duration_p90_s"]))
        cols["late"].append(_seconds(f["lateness_p90_s"]))
    return cols
