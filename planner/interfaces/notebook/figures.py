"""The notebooks' figures (Bokeh): the process graph, Gantt charts of runs, durations, delays.

Bokeh has no notion of timezones (a datetime axis shows UTC), so the figures plot naive wall-clock
times of the timezone they are given (``_wall``). Colours by run status are ``STATUS_COLORS``, the
same in every figure, so a DAG coloured by status reads like the Gantt next to it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import networkx as nx
import pandas as pd
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.models.annotations.arrows import Arrow, VeeHead
from bokeh.plotting import figure

from planner.core.schedule import zone
from planner.interfaces.notebook.tables import runs_frame, schedule_text, value_text
from planner.simulation.simulate import SimRun
from registry.definitions.durations import format_duration
from registry.definitions.templates import templates_of
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import AttemptRecord

__all__ = ["STATUS_COLORS", "dag_figure", "delays_figure", "durations_figure", "gantt_figure"]

STATUS_COLORS = {
    "succeeded": "#4daf4a",
    "failed": "#e41a1c",
    "timed_out": "#ff7f00",
    "cancelled": "#999999",
    "running": "#377eb8",
    "queued": "#377eb8",
    "retrying": "#984ea3",
}
_KIND_COLORS = {"cron": "#8da0cb", "every": "#66c2a5", "single": "#e5e5e5"}
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def dag_figure(
    registry: RegistryDef,
    *,
    colors: Mapping[str, str] | None = None,
    width: int = 700,
    height: int | None = None,
    group_templates: bool = True,
) -> figure:
    """The dependency graph, left to right by generation (roots first), edges ancestor → process.

    Nodes are coloured by kind (cron, every, single) unless ``colors`` gives a colour per process
    (for instance by run status, with ``STATUS_COLORS``); reserved processes have a thick outline.
    A template's processes are one node, ``TEMPLATE.* (N)``, shown like its first process;
    ``group_templates=False`` draws each of them.
    """
    grouped = _template_rows(registry) if group_templates else {}
    node_of = {name: grouped.get(name, name) for name in registry.processes}
    shown: dict[str, ProcessDef] = {}  # node -> the process it is drawn like
    for name in sorted(registry.processes):
        shown.setdefault(node_of[name], registry.processes[name])
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(shown)
    graph.add_edges_from(
        (node_of[a], node_of[d.name])
        for d in registry.processes.values()
        for a in d.ancestors
        if a in node_of and node_of[a] != node_of[d.name]
    )
    position: dict[str, tuple[float, float]] = {}
    layers = [sorted(layer) for layer in nx.topological_generations(graph)]
    tallest = max((len(layer) for layer in layers), default=1)
    for x, layer in enumerate(layers):
        for i, name in enumerate(layer):
            position[name] = (float(x), (len(layer) - 1) / 2 - i)
    box_w, box_h = 0.6, 0.5
    nodes = ColumnDataSource(
        {
            "name": list(position),
            "x": [position[n][0] for n in position],
            "y": [position[n][1] for n in position],
            "fill": [
                (colors or {}).get(shown[n].name, _KIND_COLORS[_kind(shown[n])]) for n in position
            ],
            "line": [3 if shown[n].reserve else 1 for n in position],
            "schedule": [schedule_text(shown[n]) for n in position],
            "priority": [shown[n].priority for n in position],
            "ancestors": [", ".join(shown[n].ancestors) or "-" for n in position],
            "not_before": [value_text(shown[n].not_before) for n in position],
            "expected": [value_text(shown[n].expected_duration) for n in position],
        }
    )
    edges = list(graph.edges)
    arrows = ColumnDataSource(
        {
            "x0": [position[a][0] + box_w / 2 for a, _ in edges],
            "y0": [position[a][1] for a, _ in edges],
            "x1": [position[b][0] - box_w / 2 for _, b in edges],
            "y1": [position[b][1] for _, b in edges],
        }
    )
    fig = figure(
        title="Process graph (ancestor → process)",
        width=width,
        height=height or max(220, 110 * tallest),
        x_range=Range1d(start=-0.6, end=max(len(layers) - 1, 0) + 0.6),
        y_range=Range1d(start=-tallest / 2 - 0.1, end=tallest / 2 + 0.1),
        tools="pan,wheel_zoom,reset,save",
        toolbar_location="right",
    )
    fig.add_layout(
        Arrow(
            end=VeeHead(size=10),
            x_start="x0",
            y_start="y0",
            x_end="x1",
            y_end="y1",
            source=arrows,
        )
    )
    boxes = fig.rect(
        "x",
        "y",
        width=box_w,
        height=box_h,
        source=nodes,
        fill_color="fill",
        line_color="#333333",
        line_width="line",
    )
    fig.text("x", "y", text="name", source=nodes, text_align="center", text_baseline="middle")
    fig.add_tools(
        HoverTool(
            renderers=[boxes],
            tooltips=[
                ("process", "@name"),
                ("schedule", "@schedule"),
                ("priority", "@priority"),
                ("ancestors", "@ancestors"),
                ("not before", "@not_before"),
                ("expected", "@expected"),
            ],
        )
    )
    fig.axis.visible = False
    fig.grid.visible = False
    return fig


def gantt_figure(
    runs: Iterable[SimRun | AttemptRecord],
    *,
    tz: str = "UTC",
    title: str = "Runs",
    order: Sequence[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
    width: int = 900,
    registry: RegistryDef | None = None,
    expand: bool = False,
) -> figure:
    """One bar per attempt, one row per process (in ``order``, else by first start), coloured by
    status; the time axis shows wall-clock time in ``tz``, over ``window`` if given (give several
    figures the same window to compare them). Given the ``registry``, a template's processes
    share one row, ``TEMPLATE.* (N)`` as in ``dag_figure`` (``order`` then names such rows);
    ``expand=True`` gives each process its row."""
    frame = runs_frame(runs, tz=tz)
    row_of = _template_rows(registry) if registry is not None and not expand else {}
    frame["row"] = [row_of.get(p, p) for p in frame["process"]]
    processes = list(order) if order is not None else list(dict.fromkeys(frame["row"]))
    frame = frame[frame["row"].isin(processes)]
    source = ColumnDataSource(
        {
            "row": list(frame["row"]),
            "process": list(frame["process"]),
            "run_id": list(frame["run_id"]),
            "attempt": list(frame["attempt"]),
            "status": list(frame["status"]),
            "left": list(_wall(frame["start"])),
            "right": list(_wall(frame["end"])),
            "duration": [format_duration(timedelta(seconds=round(s))) for s in frame["duration_s"]],
            "color": [STATUS_COLORS.get(s, "#cccccc") for s in frame["status"]],
        }
    )
    fig = figure(
        title=title,
        y_range=FactorRange(factors=processes[::-1]),
        x_axis_type="datetime",
        x_axis_label=f"time ({tz})",
        width=width,
        height=80 + 32 * max(len(processes), 1),
        tools=_TOOLS,
    )
    if window is not None:
        start, end = (t.astimezone(zone(tz)).replace(tzinfo=None) for t in window)
        fig.x_range = Range1d(start=start, end=end)
    bars = fig.hbar(
        y="row",
        left="left",
        right="right",
        height=0.6,
        color="color",
        fill_alpha=0.8 if row_of else 1.0,  # a template's runs may overlap in its row
        line_color="#333333",
        source=source,
    )
    fig.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[
                ("process", "@process"),
                ("run", "@run_id (attempt @attempt)"),
                ("status", "@status"),
                ("start", "@left{%F %T}"),
                ("end", "@right{%F %T}"),
                ("duration", "@duration"),
            ],
            formatters={"@left": "datetime", "@right": "datetime"},
        )
    )
    fig.ygrid.grid_line_color = None
    return fig


def durations_figure(attempts: pd.DataFrame, *, width: int = 700) -> figure:
    """Box plot of successful durations per process (box: quartiles, whiskers: min and max,
    dots: every attempt)."""
    ok = attempts[attempts["status"] == RunStatus.SUCCEEDED.value]
    processes = sorted(ok["process"].unique())
    stats = ok.groupby("process")["duration_s"].describe().reindex(processes)
    fig = figure(
        title="Duration of successful attempts",
        y_range=FactorRange(factors=processes[::-1]),
        x_axis_label="seconds",
        width=width,
        height=80 + 45 * max(len(processes), 1),
        tools=_TOOLS,
    )
    box = ColumnDataSource(
        {
            "process": processes,
            "min": list(stats["min"]),
            "q1": list(stats["25%"]),
            "median": list(stats["50%"]),
            "q3": list(stats["75%"]),
            "max": list(stats["max"]),
        }
    )
    fig.segment("min", "process", "max", "process", source=box, line_color="#555555")
    fig.hbar(
        y="process",
        left="q1",
        right="q3",
        height=0.5,
        source=box,
        fill_color="#a6cee3",
        line_color="#333333",
    )
    fig.scatter(
        "median", "process", source=box, marker="dash", size=28, angle=1.5708, color="#1f1f1f"
    )
    jitter = random.Random(0)
    dots = ColumnDataSource(
        {
            "x": list(ok["duration_s"]),
            "y": [(p, jitter.uniform(-0.2, 0.2)) for p in ok["process"]],
            "run_id": list(ok["run_id"]),
        }
    )
    points = fig.scatter("x", "y", source=dots, size=4, alpha=0.5, color="#1f78b4")
    fig.add_tools(HoverTool(renderers=[points], tooltips=[("run", "@run_id"), ("s", "@x")]))
    return fig


def delays_figure(attempts: pd.DataFrame, *, tz: str = "UTC", width: int = 900) -> figure:
    """Punctuality over time: start − scheduled (seconds) of each attempt, one colour a process."""
    began = attempts.dropna(subset=["start"])
    fig = figure(
        title="Start − scheduled",
        x_axis_type="datetime",
        x_axis_label=f"scheduled ({tz})",
        y_axis_label="seconds late",
        width=width,
        height=320,
        tools=_TOOLS,
    )
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
    for i, (name, group) in enumerate(began.groupby("process", sort=True)):
        fig.scatter(
            list(_wall(group["scheduled"])),
            list(group["delay_s"]),
            legend_label=str(name),
            color=palette[i % len(palette)],
            size=6,
            alpha=0.7,
        )
    fig.legend.location = "top_left"
    fig.legend.click_policy = "hide"
    return fig


# -- values -------------------------------------------------------------------------------------


def _template_rows(registry: RegistryDef) -> dict[str, str]:
    """Each process of a template → ``TEMPLATE.* (N)``, the node or row they share."""
    return {
        name: f"{template}.* ({len(names)})"
        for template, names in templates_of(registry).items()
        for name in names
    }


def _kind(definition: ProcessDef) -> str:
    if definition.cron is not None:
        return "cron"
    return "every" if definition.every is not None else "single"


def _wall(values: pd.Series) -> pd.Series:
    """Aware timestamps as naive wall-clock times of their timezone (what Bokeh plots)."""
    return values.dt.tz_localize(None)
