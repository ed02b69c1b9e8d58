"""What the command line prints: rich tables and views for people, JSON documents for programs.

Pure rendering: values in, renderables or dicts out; it reads no store and starts nothing.
May import: ``planner.core``, the drivers' value types and ``registry``'s domain modules.

``style``        the console and the house style: times (``Times``), durations, plurals, values,
                 status colours;
``documents``    the JSON documents of ``--format json`` (public shapes, SPEC "JSON outputs");
``views``        the tables and views of ``--format table``;
``fit``          tables that fit the terminal: columns dropped, least important first, before
                 a row would wrap (``--wide`` keeps them all);
``run_summary``  what ``planner run`` prints when it stops, as ``history`` records it;
``graphs``       the dependency graph as DOT and Mermaid;
``summaries``    long lists said short: apply diffs and grouped definition problems;
``status_line``  the line ``planner run`` keeps redrawn on a terminal.
"""

from __future__ import annotations

from planner.interfaces.terminal.documents import (
    attempt_json,
    explanation_json,
    history_json,
    plan_json,
    planners_json,
    simulation_json,
    status_json,
)
from planner.interfaces.terminal.graphs import graph_dot, graph_mermaid
from planner.interfaces.terminal.run_summary import FinishedAttempt, RunReport, run_summary_view
from planner.interfaces.terminal.status_line import live_display, live_status
from planner.interfaces.terminal.style import FAILED, console, emit_json, iso, show, value_text
from planner.interfaces.terminal.summaries import apply_lines, problem_lines
from planner.interfaces.terminal.views import (
    PLAN_WAITS_SHOWN,
    attempts_table,
    explanation_view,
    plan_table,
    simulation_view,
    status_view,
)

__all__ = [
    "FAILED",
    "PLAN_WAITS_SHOWN",
    "FinishedAttempt",
    "RunReport",
    "apply_lines",
    "attempt_json",
    "attempts_table",
    "console",
    "emit_json",
    "explanation_json",
    "explanation_view",
    "graph_dot",
    "graph_mermaid",
    "history_json",
    "iso",
    "live_display",
    "live_status",
    "plan_json",
    "plan_table",
    "planners_json",
    "problem_lines",
    "run_summary_view",
    "show",
    "simulation_json",
    "simulation_view",
    "status_json",
    "status_view",
    "value_text",
]
