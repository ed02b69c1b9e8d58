"""The planner's live page: one Bokeh document per open browser tab, fed by snapshots.

``PlannerPage`` builds the models once; ``update(snapshot)`` rewrites their ``ColumnDataSource``s
from one ``LiveDriver.snapshot()``. Everything that turns a snapshot into columns is a plain
function of the snapshot (``planner.interfaces.page.columns``), so it is tested without a browser;
the page itself only assigns the results, and only when they changed.

Every time is in the registry's zone, named in the headers that show times (the Gantt's axis and
the tables agree; ``columns.zone_of``). A cell too narrow for its text ends in an ellipsis and
shows the whole text on hover (its ``title``), through ``hover_cell``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

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
from bokeh.models.widgets import DataTable, Div, HTMLTemplateFormatter, TableColumn
from bokeh.plotting import figure

from planner.interfaces.page.columns import (
    EMPTY,
    MAX_DAG_NODES,
    RUN_COLOURS,
    STATE_COLOURS,
    Columns,
    Snapshot,
    dag_columns,
    dag_layout,
    failure_columns,
    gantt_columns,
    queue_columns,
    running_columns,
    summary_html,
    wall_ms,
    zone_label,
    zone_of,
)
from planner.interfaces.page.history_columns import log_html, recent_columns, stats_columns

__all__ = ["PlannerPage", "hover_cell"]

_SHOW_LOG_JS = """
const i = source.selected.indices.length ? source.selected.indices[0] : 0;
const d = source.data;
if (!d.run_id.length) { return; }
const esc = (t) => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
  .replace(/"/g, "&quot;").replace(/'/g, "&#x27;");
const run = esc(d.run_id[i]);
log.text = "<b>" + run + ", attempt " + d.attempt[i] + "</b>" +
  '<div style="white-space:pre-wrap;word-break:break-all">params: <code>' +
  esc(d.params[i] || "(unknown)") + "</code> · result: <code>" + esc(d.result[i] || "(none)") +
  "</code></div><b>log</b> (its end; <code>planner logs " + run + "</code> has it all)" +
  '<pre style="max-height:260px;overflow:auto;background:#f6f6f6;padding:6px;' +
  'white-space:pre-wrap">' + esc(d.log[i] || "(nothing logged)") + "</pre>";
"""


def hover_cell(*, coloured: bool = False) -> str:
    """The template of a cell: one line, cut with an ellipsis when too narrow, its whole text
    on hover (``title``); ``coloured`` in the row's ``colour`` (a status). ``<%- %>`` escapes the
    value — an error message may hold ``<``, ``&`` or quotes — in the text and in the title."""
    colour = ";color:<%- colour %>;font-weight:bold" if coloured else ""
    return (
        '<span title="<%- value %>" style="display:block;overflow:hidden;'
        f'text-overflow:ellipsis;white-space:nowrap{colour}"><%- value %></span>'
    )


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
            formatter=HTMLTemplateFormatter(template=hover_cell(coloured=f == coloured)),
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
        self.running = ColumnDataSource(running_columns(EMPTY), name="running-source")
        self.queue = ColumnDataSource(queue_columns(EMPTY), name="queue-source")
        self.failures = ColumnDataSource(failure_columns(EMPTY), name="failures-source")
        self.recent = ColumnDataSource(recent_columns(EMPTY), name="recent-source")
        self.stats = ColumnDataSource(stats_columns(EMPTY), name="stats-source")
        self.log = Div(text=log_html(recent_columns(EMPTY)), name="attempt-log")
        gantt, _ = gantt_columns(EMPTY)
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
                ("since", "decided (UTC)", 150),
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
                ("at", "ended (UTC)", 130),
                ("error", "error", 400),
            ],
            name="failures-table",
            height=260,
            coloured="status",
        )

        recent_table = _table(
            self.recent,
            [
                ("process", "process", 140),
                ("run_id", "run", 130),
                ("attempt", "attempt", 60),
                ("status", "status", 80),
                ("at", "ended (UTC)", 100),
                ("took", "took", 60),
                ("params", "params", 150),
                ("result", "result", 150),
                ("error", "error", 200),
            ],
            name="recent-table",
            height=260,
            coloured="status",
        )
        # the selected attempt's log, from the table's own data: no round trip to the server
        self.recent.selected.js_on_change(
            "indices",
            CustomJS(
                args={"source": self.recent, "log": self.log},
                code=_SHOW_LOG_JS,
            ),
        )
        stats_table = _table(
            self.stats,
            [
                ("process", "process", 160),
                ("runs", "runs", 50),
                ("succeeded", "ok", 50),
                ("failed", "failed", 50),
                ("timed_out", "timed out", 70),
                ("cancelled", "cancelled", 70),
                ("success", "success", 70),
                ("p50", "p50", 60),
                ("p90", "p90", 60),
                ("late", "late p90", 70),
            ],
            name="stats-table",
            height=220,
        )

        #: (table, field, title): the columns of times, their header naming the zone
        self._timed = [
            (running_table, "since", "decided"),
            (failures_table, "at", "ended"),
            (recent_table, "at", "ended"),
        ]

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
                row(
                    column(
                        heading("Recent attempts (select one for its params, result and log)"),
                        recent_table,
                        sizing_mode="stretch_width",
                    ),
                    column(heading("Log"), self.log, sizing_mode="stretch_width"),
                    sizing_mode="stretch_width",
                ),
                heading("Statistics (runs of the last 7 days)"),
                stats_table,
                heading("Processes"),
                Div(text=_legend_html("state", STATE_COLOURS)),
                self.dag_note,
                self.dag_figure,
                sizing_mode="stretch_width",
                name="planner-page",
            )
        )

    def _label_zone(self, zone: str) -> None:
        """Name the registry's zone in the headers of the columns that hold times."""
        for table, field, title in self._timed:
            for col in table.columns:
                if col.field == field:
                    _assign(col, "title", f"{title} ({zone})")
        _assign(self.gantt_figure.xaxis[0], "axis_label", f"time ({zone})")

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
        fig.xaxis.axis_label = "UTC"  # the registry's zone, once a snapshot names it
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
        self._label_zone(zone_label(snap))
        _assign(self.summary, "text", summary_html(snap))
        _replace(self.running, running_columns(snap))
        _replace(self.queue, queue_columns(snap))
        _replace(self.failures, failure_columns(snap))
        recent = recent_columns(snap)
        if dict(self.recent.data) != recent:
            chosen = _selected(self.recent)
            self.recent.data = recent
            # the rows moved: the selected attempt stays selected where it went, else the
            # newest is shown
            index = _row_of(recent, chosen)
            self.recent.selected.indices = [] if index is None else [index]
            _assign(self.log, "text", log_html(recent, index or 0))
        _replace(self.stats, stats_columns(snap))

        gantt, rows = gantt_columns(snap)
        _replace(self.gantt, gantt)
        factors = list(reversed(rows))  # earliest on top
        _assign(self.gantt_figure.y_range, "factors", factors)
        _assign(self.gantt_figure, "height", min(max(60 + 26 * len(rows), 200), 640))
        _assign(self.now_line, "location", wall_ms(snap["at"], zone_of(snap)))

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


def _selected(source: ColumnDataSource) -> tuple[Any, Any] | None:
    """The (run id, attempt) of the row selected in the recent attempts' table, if any."""
    indices = list(source.selected.indices)
    data = source.data
    if not indices or not 0 <= indices[0] < len(data["run_id"]):
        return None
    return data["run_id"][indices[0]], data["attempt"][indices[0]]


def _row_of(columns: Columns, chosen: tuple[Any, Any] | None) -> int | None:
    if chosen is None:
        return None
    for i, key in enumerate(zip(columns["run_id"], columns["attempt"], strict=True)):
        if key == chosen:
            return i
    return None


def _replace(source: ColumnDataSource, data: Columns) -> None:
    """Replace the data only when it changed: unchanged sources send nothing to the browser."""
    if dict(source.data) != data:
        source.data = data


def _assign(model: Any, attr: str, value: Any) -> None:
    if getattr(model, attr) != value:
        setattr(model, attr, value)
