"""Helpers for the notebooks in ``notebooks/``: tables (pandas) and figures (Bokeh) of plans.

Everything here turns records of the registry, the core, the simulator and the store into a
``pandas.DataFrame`` or a Bokeh figure, and changes nothing — except ``record_simulation``, which
writes a simulation's runs into a store through the store API, to give the history notebook a
realistic database without a cluster.

Times in frames are timezone-aware pandas timestamps in the registry's timezone. Bokeh has no notion
of timezones (a datetime axis shows UTC), so the figures plot naive wall-clock times of the
timezone they are given.

``tables``   frames: the registry, dry runs (``plan_table``, ``explanations_table``), runs and
             attempts, duration summaries, simulations side by side;
``figures``  the process graph, Gantt charts, durations and delays;
``history``  ``RandomOutcomes`` and ``record_simulation``: a realistic history from the simulator.

Notebooks use the package as one namespace (``from planner.interfaces import notebook as nb``).
May import: ``planner.simulation``, ``planner.core`` and ``registry`` (the store API included).
"""

from __future__ import annotations

from planner.interfaces.notebook.figures import (
    STATUS_COLORS,
    dag_figure,
    delays_figure,
    durations_figure,
    gantt_figure,
)
from planner.interfaces.notebook.history import RandomOutcomes, record_simulation
from planner.interfaces.notebook.tables import (
    attempts_frame,
    compare_simulations,
    duration_summary,
    explanations_table,
    plan_table,
    registry_table,
    runs_frame,
)

__all__ = [
    "STATUS_COLORS",
    "RandomOutcomes",
    "attempts_frame",
    "compare_simulations",
    "dag_figure",
    "delays_figure",
    "duration_summary",
    "durations_figure",
    "explanations_table",
    "gantt_figure",
    "plan_table",
    "record_simulation",
    "registry_table",
    "runs_frame",
]
