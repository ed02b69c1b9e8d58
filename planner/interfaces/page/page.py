"""The planner's live page: one Bokeh document per open browser tab, fed by snapshots.

``PlannerPage`` builds the models once; ``update(snapshot)`` rewrites their ``ColumnDataSource``s
from one ``LiveDriver.snapshot()``. Everything that turns a snapshot into columns is a plain
function of the snapshot (``summary_html``, ``queue_columns``, ``gantt_columns``, ``dag_layout``…),
so it is tested without a browser; the page itself only assigns the results.

Times are shown in UTC (the Gantt's axis and the tables agree).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import networkx as nx
from bokeh.document import Document
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    DataRange1d,
    DatetimeTickFormatter,
    FactorRange,
    HoverTool,
)
from bokeh.models.annotations import LabelSet, Span
from bokeh.models.widgets import DataTable, Div, StringFormatter, TableColumn
from bokeh.plotting import figure

__all__ = [
    "MAX_DAG_NODES",
    "RUN_COLOURS",
    "STATE_COLOURS",
    "PlannerPage",
    "dag_columns",
    "dag_layout",
    "failure_columns",
    "gantt_columns",
    "kept_for",
    "queue_columns",
    "running_columns",
    "summary_html",
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


# -- snapshot → columns ---------------------------------------------------------------------------


def _ms(t: datetime) -> float:
    """Bokeh's datetime unit: milliseconds since the epoch."""
    return t.timestamp() * 1000.0


def _clock(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(UTC).strftime("%H:%M:%S")


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
        f"<div>{' · '.join(parts)} · updated {_clock(snap['at'])} UTC</div>"
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
            f"retrying at {_clock(retry_at)}" if status == "retrying" and retry_at else status
        )
        cols["since"].append(_clock(r["started"]))
        cols["elapsed"].append(_elapsed((now - r["started"]).total_seconds()))
        cols["colour"].append(RUN_COLOURS.get(status, _UNKNOWN_COLOUR))
    return cols


def failure_columns(snap: Snapshot) -> Columns:
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
        cols["at"].append(_clock(f["at"]))
        cols["error"].append(f.get("error") or "")
        cols["colour"].append(RUN_COLOURS.get(f["status"], _UNKNOWN_COLOUR))
    return cols


def gantt_columns(snap: Snapshot) -> tuple[Columns, list[str]]:
    """Bars for runs in flight (ending now) and recent attempts, and the process rows top-down.

    A running bar starts when the attempt was decided; a finished one spans its duration on the
    worker, ending when the planner recorded it."""
    now: datetime = snap["at"]
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
        cols["start"].append(_ms(start))
        cols["end"].append(_ms(end))
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
        nodes["label"].append(name if labelled else "")
    edges: Columns = {"x0": [], "y0": [], "x1": [], "y1": []}
    for a, b in snap["edges"]:
        if a in layout and b in layout:
            edges["x0"].append(layout[a][0])
            edges["y0"].append(layout[a][1])
            edges["x1"].append(layout[b][0])
            edges["y1"].append(layout[b][1])
    return nodes, edges


# -- the document ---------------------------------------------------------------------------------


def _legend_html(title: str, colours: Mapping[str, str]) -> str:
    items = "".join(
        f'<span style="margin-right:10px"><span style="display:inline-block;width:10px;'
        f'height:10px;background:{c};margin-right:4px"></span>{html.escape(k)}</span>'
        for k, c in colours.items()
    )
    return f'<div style="font-size:12px"><b>{html.escape(title)}</b> {items}</div>'


def _table(
    source: ColumnDataSource,
    fields: Sequence[tuple[str, str, int]],
    *,
    name: str,
    height: int,
    coloured: str | None = None,
) -> DataTable:
    columns = [
        TableColumn(
            field=f,
            title=title,
            width=width,
            formatter=StringFormatter(text_color="colour", font_style="bold")
            if f == coloured
            else StringFormatter(),
        )
        for f, title, width in fields
    ]
    table = DataTable(
        source=source,
        columns=columns,
        name=name,
        height=height,
        index_position=None,
        sizing_mode="stretch_width",
    )
    # BokehJS redraws a table when its CDSView's indices change, so new data with the same number
    # of rows would never show (bokeh 3.9): tell the view to redraw on every data change.
    source.js_on_change("data", CustomJS(args={"view": table.view}, code="view.change.emit()"))
    return table


class PlannerPage:
    """The models of one page; ``update`` is called on the document's thread, under its lock."""

    def __init__(self, doc: Document, *, title: str = "Planner") -> None:
        self.doc = doc
        self._layout_key: tuple[frozenset[str], frozenset[tuple[str, str]]] | None = None
        self._layout: dict[str, tuple[float, float]] = {}

        self.summary = Div(text="<i>waiting for the planner…</i>", name="summary")
        self.running = ColumnDataSource(running_columns(_EMPTY), name="running-source")
        self.queue = ColumnDataSource(queue_columns(_EMPTY), name="queue-source")
        self.failures = ColumnDataSource(failure_columns(_EMPTY), name="failures-source")
        gantt, _ = gantt_columns(_EMPTY)
        self.gantt = ColumnDataSource(gantt, name="gantt-source")
        self.dag_nodes = ColumnDataSource(
            {k: [] for k in ("x", "y", "process", "state", "colour", "label")},
            name="dag-nodes",
        )
        self.dag_edges = ColumnDataSource(
            {k: [] for k in ("x0", "y0", "x1", "y1")}, name="dag-edges"
        )

        self.gantt_figure = self._gantt_figure()
        self.dag_figure = self._dag_figure()
        self.dag_note = Div(text="", name="dag-note")

        running_table = _table(
            self.running,
            [
                ("process", "process", 160),
                ("run_id", "run", 140),
                ("attempt", "attempt", 60),
                ("status", "status", 130),
                ("since", "decided (UTC)", 110),
                ("elapsed", "elapsed", 70),
            ],
            name="running-table",
            height=220,
            coloured="status",
        )
        queue_table = _table(
            self.queue,
            [
                ("process", "process", 160),
                ("codes", "reasons", 160),
                ("kept_for", "slot kept for", 200),
                ("details", "details", 360),
            ],
            name="queue-table",
            height=260,
        )
        failures_table = _table(
            self.failures,
            [
                ("process", "process", 140),
                ("run_id", "run", 130),
                ("attempt", "attempt", 60),
                ("status", "status", 80),
                ("at", "ended (UTC)", 90),
                ("error", "error", 400),
            ],
            name="failures-table",
            height=260,
            coloured="status",
        )

        def heading(text: str) -> Div:
            return Div(text=f'<h3 style="margin:8px 0 2px 0">{html.escape(text)}</h3>')

        doc.title = title
        doc.add_root(
            column(
                Div(text=f'<h2 style="margin:4px 0">{html.escape(title)}</h2>'),
                self.summary,
                row(
                    column(
                        heading("Runs (in flight and recent)"),
                        Div(text=_legend_html("status", RUN_COLOURS)),
                        self.gantt_figure,
                        sizing_mode="stretch_width",
                    ),
                    column(heading("In flight"), running_table, width=520),
                    sizing_mode="stretch_width",
                ),
                row(
                    column(heading("Queue"), queue_table, sizing_mode="stretch_width"),
                    column(heading("Recent failures"), failures_table, sizing_mode="stretch_width"),
                    sizing_mode="stretch_width",
                ),
                heading("Processes"),
                Div(text=_legend_html("state", STATE_COLOURS)),
                self.dag_note,
                self.dag_figure,
                sizing_mode="stretch_width",
                name="planner-page",
            )
        )

    def _gantt_figure(self) -> Any:
        fig = figure(
            name="gantt",
            y_range=FactorRange(factors=[]),
            x_axis_type="datetime",
            height=240,
            sizing_mode="stretch_width",
            toolbar_location="above",
            tools="xpan,xwheel_zoom,reset,save",
        )
        fig.hbar(
            y="process",
            left="start",
            right="end",
            height=0.6,
            fill_color="colour",
            line_color="colour",
            source=self.gantt,
        )
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("process", "@process"),
                    ("run", "@run_id (attempt @attempt)"),
                    ("status", "@status"),
                    ("duration", "@duration"),
                ]
            )
        )
        fig.xaxis.formatter = DatetimeTickFormatter(
            seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hours="%H:%M"
        )
        fig.xaxis.axis_label = "UTC"
        fig.ygrid.grid_line_color = None
        self.now_line = Span(
            location=0, dimension="height", line_color="#444444", line_dash="dashed"
        )
        fig.add_layout(self.now_line)
        return fig

    def _dag_figure(self) -> Any:
        fig = figure(
            name="dag",
            height=380,
            x_range=DataRange1d(range_padding=0.12),  # room for the labels right of the last layer
            y_range=DataRange1d(range_padding=0.15),
            sizing_mode="stretch_width",
            toolbar_location="above",
            tools="pan,wheel_zoom,reset,save",
            x_axis_location=None,
            y_axis_location=None,
        )
        fig.grid.grid_line_color = None
        fig.segment(
            x0="x0",
            y0="y0",
            x1="x1",
            y1="y1",
            line_color="#999999",
            line_alpha=0.7,
            source=self.dag_edges,
        )
        nodes = fig.scatter(
            x="x",
            y="y",
            size=16,
            fill_color="colour",
            line_color="#333333",
            source=self.dag_nodes,
        )
        fig.add_tools(HoverTool(renderers=[nodes], tooltips=[("", "@process: @state")]))
        fig.add_layout(
            LabelSet(
                x="x",
                y="y",
                text="label",
                x_offset=10,
                y_offset=-6,
                text_font_size="11px",
                source=self.dag_nodes,
            )
        )
        return fig

    # -- updating ---------------------------------------------------------------------------------

    def update(self, snap: Snapshot) -> None:
        _assign(self.summary, "text", summary_html(snap))
        _replace(self.running, running_columns(snap))
        _replace(self.queue, queue_columns(snap))
        _replace(self.failures, failure_columns(snap))

        gantt, rows = gantt_columns(snap)
        _replace(self.gantt, gantt)
        factors = list(reversed(rows))  # earliest on top
        _assign(self.gantt_figure.y_range, "factors", factors)
        _assign(self.gantt_figure, "height", min(max(60 + 26 * len(rows), 200), 640))
        _assign(self.now_line, "location", _ms(snap["at"]))

        shown = [n["process"] for n in snap["nodes"][:MAX_DAG_NODES]]
        key = (frozenset(shown), frozenset((a, b) for a, b in snap["edges"]))
        if key != self._layout_key:
            self._layout_key = key
            self._layout = dag_layout(shown, snap["edges"])
        nodes, edges = dag_columns(snap, self._layout)
        _replace(self.dag_nodes, nodes)
        _replace(self.dag_edges, edges)
        total = len(snap["nodes"])
        note = f"showing {len(shown)} of {total} processes" if total > len(shown) else ""
        _assign(self.dag_note, "text", note)


def _replace(source: ColumnDataSource, data: Columns) -> None:
    """Replace the data only when it changed: unchanged sources send nothing to the browser."""
    if dict(source.data) != data:
        source.data = data


def _assign(model: Any, attr: str, value: Any) -> None:
    if getattr(model, attr) != value:
        setattr(model, attr, value)


_EMPTY: Snapshot = {
    "at": datetime.fromtimestamp(0, UTC),
    "slots": 0,
    "in_flight": 0,
    "running": [],
    "queue": [],
    "recent": [],
    "failures": [],
    "nodes": [],
    "edges": [],
}
