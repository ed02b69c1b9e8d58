"""What the live page shows, as plain data: one ``LiveDriver.snapshot()`` in, Bokeh columns out.

Every function here is pure (``summary_html``, ``queue_columns``, ``gantt_columns``,
``dag_layout``…), so what the page shows is tested without a browser; ``PlannerPage`` only
assigns the results to its ``ColumnDataSource``s.

All times are in one zone, the registry's (the snapshot's ``timezone``), which the page names in
its headers (``zone_label``). Bokeh's datetime unit is milliseconds since the epoch, and BokehJS
writes a datetime axis in UTC: so the Gantt's bars are placed at the registry zone's wall-clock
time read as UTC (``wall_ms``), and its axis shows the registry's clock.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import networkx as nx

__all__ = [
    "EMPTY",
    "MAX_DAG_LABELS",
    "MAX_DAG_NODES",
    "RUN_COLOURS",
    "STATE_COLOURS",
    "Columns",
    "Snapshot",
    "dag_columns",
    "dag_layout",
    "epoch_ms",
    "failure_columns",
    "gantt_columns",
    "kept_for",
    "queue_columns",
    "running_columns",
    "slot_counts",
    "summary_html",
    "wall_ms",
    "zone_label",
    "zone_of",
]

Columns = dict[str, list[Any]]
Snapshot = Mapping[str, Any]

MAX_DAG_NODES = 300  # beyond this the picture is unreadable and the layout slow
MAX_DAG_LABELS = 80  # past this many nodes, names only on hover

RUN_COLOURS: dict[str, str] = {
    "queued": "#9ecae1",
    "running": "#1f77b4",
    "retrying": "#fdae6b",
    "succeeded": "#2ca02c",
    "failed": "#d62728",
    "timed_out": "#9467bd",
    "cancelled": "#7f7f7f",
}
STATE_COLOURS: dict[str, str] = {
    "running": "#1f77b4",
    "ready": "#17becf",
    "waiting": "#d9d9d9",
    "held": "#525252",
    "succeeded": "#2ca02c",
    "failed": "#d62728",
    "timed_out": "#9467bd",
    "cancelled": "#7f7f7f",
}
_UNKNOWN_COLOUR = "#bdbdbd"
_RESERVED = re.compile(r"^slot kept for (?P<process>\S+) at (?P<at>.+)$")


def epoch_ms(t: datetime) -> float:
    """Bokeh's datetime unit: milliseconds since the epoch."""
    return t.timestamp() * 1000.0


def zone_of(snap: Snapshot) -> tzinfo:
    """The registry's timezone, in which the page writes every time (UTC if unknown)."""
    try:
        return ZoneInfo(str(snap.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone_label(snap: Snapshot) -> str:
    """The zone's name for the headers: ``Europe/Madrid``, ``UTC``."""
    return str(getattr(zone_of(snap), "key", None) or "UTC")


def wall_ms(t: datetime, tz: tzinfo) -> float:
    """``t`` on a Bokeh datetime axis that shows ``tz``'s clock: its wall-clock time in ``tz``,
    as if that were UTC, in milliseconds since the epoch."""
    return epoch_ms(t.astimezone(tz).replace(tzinfo=UTC))


def _clock(t: datetime | None, tz: tzinfo) -> str:
    return "" if t is None else t.astimezone(tz).strftime("%H:%M:%S")


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def slot_counts(snap: Snapshot) -> tuple[int, int, int]:
    """(in use, free, total) global slots."""
    total = int(snap["slots"])
    used = int(snap["in_flight"])
    return used, max(total - used, 0), total


def summary_html(snap: Snapshot) -> str:
    """The header: slots as boxes plus the key counts, in words a test (and a human) can read."""
    used, free, total = slot_counts(snap)
    boxes = "".join(
        f'<span class="slot" style="display:inline-block;width:14px;height:14px;margin:0 2px;'
        f"border:1px solid #1f77b4;border-radius:2px;"
        f'background:{"#1f77b4" if i < used else "transparent"}"></span>'
        for i in range(min(max(total, used), 64))
    )
    running = sum(1 for r in snap["running"] if r["status"] == "running")
    queued = sum(1 for r in snap["running"] if r["status"] == "queued")
    retrying = sum(1 for r in snap["running"] if r["status"] == "retrying")
    ready = sum(1 for n in snap["nodes"] if n["state"] == "ready")
    failures = len(snap["failures"])
    parts = [
        f"<b>{running}</b> running",
        f"<b>{queued}</b> queued on Dask",
        f"<b>{retrying}</b> waiting to retry",
        f"<b>{ready}</b> ready",
        f"<b>{failures}</b> recent failures",
    ]
    return (
        '<div class="planner-summary" style="font-size:14px;line-height:1.6">'
        f'<div><span style="font-size:18px;font-weight:600">Slots: {used} in use, {free} free'
        f" of {total}</span> {boxes}</div>"
        f"<div>{' · '.join(parts)} · updated {_clock(snap['at'], zone_of(snap))}"
        f" {html.escape(zone_label(snap))}</div>"
        "</div>"
    )


def kept_for(reasons: Iterable[Mapping[str, str]]) -> str:
    """For a ``reserved`` reason: whom the slot is kept for (and when), else ``""``."""
    for reason in reasons:
        if reason["code"] == "reserved":
            match = _RESERVED.match(reason["detail"])
            if match is None:
                return reason["detail"]
            return f"{match['process']} at {match['at']}"
    return ""


def queue_columns(snap: Snapshot) -> Columns:
    """Waiting processes, best first, with their reason codes.

    A running process held back by ``max_active`` is not waiting: it is at its limit, running."""
    running = {r["process"] for r in snap["running"] if r["status"] != "retrying"}
    cols: Columns = {"process": [], "codes": [], "details": [], "kept_for": []}
    for entry in snap["queue"]:
        reasons = entry["reasons"]
        codes = [r["code"] for r in reasons]
        if entry["process"] in running and "max_active" in codes:
            continue
        cols["process"].append(entry["process"])
        cols["codes"].append(", ".join(codes) if codes else "(ready: next to start)")
        cols["details"].append(
            "; ".join(f"{r['code']}: {r['detail']}" for r in reasons if r["detail"])
        )
        cols["kept_for"].append(kept_for(reasons))
    return cols


def running_columns(snap: Snapshot) -> Columns:
    now: datetime = snap["at"]
    tz = zone_of(snap)
    cols: Columns = {
        "process": [],
        "run_id": [],
        "attempt": [],
        "status": [],
        "since": [],
        "elapsed": [],
        "colour": [],
    }
    for r in sorted(snap["running"], key=lambda r: (r["started"], r["process"])):
        retry_at: datetime | None = r.get("retry_at")
        cols["process"].append(r["process"])
        cols["run_id"].append(r["run_id"])
        cols["attempt"].append(r["attempt"])
        status = r["status"]
        cols["status"].append(
            f"retrying at {_clock(retry_at, tz)}" if status == "retrying" and retry_at else status
        )
        cols["since"].append(_clock(r["started"], tz))
        cols["elapsed"].append(_elapsed((now - r["started"]).total_seconds()))
        cols["colour"].append(RUN_COLOURS.get(status, _UNKNOWN_COLOUR))
    return cols


def failure_columns(snap: Snapshot) -> Columns:
    tz = zone_of(snap)
    cols: Columns = {
        "process": [],
        "run_id": [],
        "attempt": [],
        "status": [],
        "at": [],
        "error": [],
        "colour": [],
    }
    for f in reversed(snap["failures"]):  # newest first
        cols["process"].append(f["process"])
        cols["run_id"].append(f["run_id"])
        cols["attempt"].append(f["attempt"])
        cols["status"].append(f["status"])
        cols["at"].append(_clock(f["at"], tz))
        cols["error"].append(f.get("error") or "")
        cols["colour"].append(RUN_COLOURS.get(f["status"], _UNKNOWN_COLOUR))
    return cols


def gantt_columns(snap: Snapshot) -> tuple[Columns, list[str]]:
    """Bars for runs in flight (ending now) and recent attempts, and the process rows top-down.

    A running bar starts when the attempt was decided; a finished one spans its duration on the
    worker, ending when the planner recorded it. ``start`` and ``end`` are ``wall_ms``: the
    registry zone's clock on the axis."""
    now: datetime = snap["at"]
    tz = zone_of(snap)
    bars: list[tuple[str, str, int, str, datetime, datetime]] = []
    for f in snap["recent"]:
        end: datetime = f["at"]
        duration = f.get("duration_s")
        start = end - timedelta(seconds=duration) if duration is not None else end
        bars.append((f["process"], f["run_id"], f["attempt"], f["status"], start, end))
    for r in snap["running"]:
        if r["status"] in ("queued", "running"):
            bars.append((r["process"], r["run_id"], r["attempt"], r["status"], r["started"], now))
    bars.sort(key=lambda b: (b[4], b[0]))
    cols: Columns = {
        k: []
        for k in (
            "process",
            "run_id",
            "attempt",
            "status",
            "start",
            "end",
            "colour",
            "duration",
        )
    }
    rows: list[str] = []
    for process, run_id, attempt, status, start, end in bars:
        if process not in rows:
            rows.append(process)
        cols["process"].append(process)
        cols["run_id"].append(run_id)
        cols["attempt"].append(attempt)
        cols["status"].append(status)
        cols["start"].append(wall_ms(start, tz))
        cols["end"].append(wall_ms(end, tz))
        cols["colour"].append(RUN_COLOURS.get(status, _UNKNOWN_COLOUR))
        cols["duration"].append(_elapsed((end - start).total_seconds()))
    return cols, rows


def dag_layout(
    nodes: Sequence[str], edges: Iterable[tuple[str, str]]
) -> dict[str, tuple[float, float]]:
    """Positions left to right by topological generation (roots on the left)."""
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a, b in edges if a in g and b in g)
    if not g:
        return {}
    if nx.is_directed_acyclic_graph(g):
        for layer, generation in enumerate(nx.topological_generations(g)):
            for name in sorted(generation):
                g.nodes[name]["layer"] = layer
        pos = nx.multipartite_layout(g, subset_key="layer")
    else:  # the registry forbids cycles; stay useful if one slips through
        pos = nx.spring_layout(g, seed=7)
    return {name: (float(x), float(y)) for name, (x, y) in pos.items()}


def dag_columns(
    snap: Snapshot, layout: Mapping[str, tuple[float, float]]
) -> tuple[Columns, Columns]:
    """(node columns, edge columns) for the nodes placed by ``layout``."""
    nodes: Columns = {"x": [], "y": [], "process": [], "state": [], "colour": [], "label": []}
    labelled = len(layout) <= MAX_DAG_LABELS
    for n in snap["nodes"]:
        name = n["process"]
        if name not in layout:
            continue
        x, y = layout[name]
        nodes["x"].append(x)
        nodes["y"].append(y)
        nodes["process"].append(name)
        nodes["state"].append(n["state"])
        nodes["colour"].append(STATE_COLOURS.get(n["state"], _UNKNOWN_COLOUR))
        members = n.get("members")  # a template's processes, drawn as one node
        label = f"{name} ({members})" if members else name
        nodes["label"].append(label if labelled else "")
    edges: Columns = {"x0": [], "y0": [], "x1": [], "y1": []}
    for a, b in snap["edges"]:
        if a in layout and b in layout:
            edges["x0"].append(layout[a][0])
            edges["y0"].append(layout[a][1])
            edges["x1"].append(layout[b][0])
            edges["y1"].append(layout[b][1])
    return nodes, edges


#: The snapshot of a planner that has not reported yet: what a new page starts from.
EMPTY: Snapshot = {
    "at": datetime.fromtimestamp(0, UTC),
    "timezone": "UTC",
    "slots": 0,
    "in_flight": 0,
    "running": [],
    "queue": [],
    "recent": [],
    "failures": [],
    "stats": [],
    "nodes": [],
    "edges": [],
}
