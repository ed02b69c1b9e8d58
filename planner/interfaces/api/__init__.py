"""The HTTP API (FastAPI on uvicorn) and the Prometheus metrics of a planner.

``app``      ``create_app``: the FastAPI application, ``/api/v1`` and ``/metrics``;
``reads``    status, processes, runs (the ``history`` document), one run, its logs, stats;
``writes``   the operations of the command line (``planner.interfaces.operations``), guarded by
             the bearer token;
``errors``   the one JSON error shape, the planner's errors as HTTP statuses, the token check;
``models``   request bodies and answer documents (what the OpenAPI document says);
``context``  what the routes share (store, token, metrics, clock);
``metrics``  ``PlannerMetrics``: a listener of the live driver feeding prometheus_client;
``server``   ``start_api``: uvicorn on a thread of its own, on its own port (8790 by default).

May import: ``planner.interfaces.operations``, ``dry_run`` and ``terminal`` (the JSON documents it
answers with), ``planner.live`` (the driver its metrics listen to), ``planner.core`` and
``registry``; not the command line or the page.
"""

from __future__ import annotations

from planner.interfaces.api.app import API_PREFIX, create_app
from planner.interfaces.api.metrics import PlannerMetrics
from planner.interfaces.api.server import (
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    ApiServer,
    parse_address,
    start_api,
)

__all__ = [
    "API_PREFIX",
    "DEFAULT_ADDRESS",
    "DEFAULT_PORT",
    "ApiServer",
    "PlannerMetrics",
    "create_app",
    "parse_address",
    "start_api",
]
