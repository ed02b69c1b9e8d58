"""The planner's live page (Bokeh): slots, queue with reasons, Gantt of runs, DAG by state.

``start_dashboard(driver, connection)`` serves it — inside the Dask dashboard at ``/planner`` when
the cluster is in-process, on a port of its own otherwise — and returns its URL.

``columns``  snapshot → column data: the pure functions behind every table and figure;
``page``     ``PlannerPage``, the Bokeh document of one browser tab;
``server``   mounting or serving the page, and pushing snapshots to open tabs (``PageHub``);
``watch``    ``StoreWatch``: the picture of ``planner serve``, which plans nothing, from the store.

May import: ``planner.live`` (the driver it shows), ``planner.interfaces.dry_run`` (the core as
read from the store), ``planner.core`` and ``registry``; not the command line or the terminal
rendering.
"""

from __future__ import annotations

from planner.interfaces.page.page import PlannerPage
from planner.interfaces.page.server import PAGE_PATH, Dashboard, PageHub, serve, start_dashboard

__all__ = ["PAGE_PATH", "Dashboard", "PageHub", "PlannerPage", "serve", "start_dashboard"]
