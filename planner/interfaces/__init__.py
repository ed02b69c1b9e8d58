"""What people and programs touch: each interface is a thin layer over the drivers and the core.

``cli``       the ``planner`` command line, one module per command group;
``terminal``  rich tables, views and the JSON documents the commands print;
``page``      the live Bokeh page (in the Dask dashboard or on its own port);
``notebook``  tables and figures for the notebooks in ``notebooks/``.

May import anything below: ``planner.live``, ``planner.simulation``, ``planner.core`` and
``registry``. Nothing below imports an interface.
"""
