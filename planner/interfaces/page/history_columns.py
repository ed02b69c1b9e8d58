"""The page's history: recent attempts with their logs, and the per-process figures.

Plain functions of a snapshot (``planner.live.snapshot``), like ``columns``: tested without a
browser. A recent attempt carries the tail of its log (``RECENT_LOG_TAIL`` characters); the page
shows the selected attempt's, the newest by default.
"""

from __future__ import annotations

from typing import Any

from planner.interfaces.page.columns import RUN_COLOURS, Columns, Snapshot, zone_of

__all__ = ["RECENT_SHOWN", "log_html", "recent_columns", "stats_columns"]

RECENT_SHOWN = 50
_UNKNOWN = "#888888"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 60 else f"{value / 60:.1f}m"


def recent_columns(snap: Snapshot) -> Columns:
    """The latest attempts, newest first, each with its log's tail."""
    tz = zone_of(snap)
    cols: Columns = {
        k: []
        for k in ("process", "run_id", "attempt", "status", "at", "took", "error", "log", "colour")
    }
    for r in list(reversed(snap["recent"]))[:RECENT_SHOWN]:
        cols["process"].append(r["process"])
        cols["run_id"].append(r["run_id"])
        cols["attempt"].append(r["attempt"])
        cols["status"].append(r["status"])
        at = r.get("at")
        cols["at"].append("" if at is None else at.astimezone(tz).strftime("%H:%M:%S"))
        cols["took"].append(_seconds(r.get("duration_s")))
        cols["error"].append(r.get("error") or "")
        cols["log"].append(r.get("log") or "")
        cols["colour"].append(RUN_COLOURS.get(r["status"], _UNKNOWN))
    return cols


def log_html(columns: Columns, index: int = 0) -> str:
    """The log of row ``index`` of ``recent_columns``, escaped, in a scrolling box."""
    import html

    if not columns["run_id"]:
        return "<i>no attempt has ended yet</i>"
    run, attempt = columns["run_id"][index], columns["attempt"][index]
    text = columns["log"][index] or "(nothing logged)"
    return (
        f"<b>log of {html.escape(str(run))}, attempt {attempt}</b> (its end; "
        f"<code>planner logs {html.escape(str(run))}</code> has it all)"
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
