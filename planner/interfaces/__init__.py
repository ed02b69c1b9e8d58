"""What people and programs touch: each interface is a thin layer over the drivers and the core.

``cli``       the ``planner`` command line, one module per command group;
``terminal``  rich tables, views and the JSON documents the commands print;
``page``      the live Bokeh page (in the Dask dashboard or on its own port);
``notebook``  tables and figures for the notebooks in ``notebooks/``;
``api``       the HTTP API (FastAPI on uvicorn) and the Prometheus metrics;
``operations``  trigger, cancel, hold, release, reset, set: what ``cli`` and ``api`` both do;
``dry_run``   the core as a planner would build it from the database (``plan``, ``explain``).

May import anything below: ``planner.live``, ``planner.simulation``, ``planner.core`` and
``registry``. Nothing below imports an interface.
"""
