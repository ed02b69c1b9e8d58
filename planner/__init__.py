"""dask-planner's engine, one subpackage per role.

=====================  =========================================================================
``planner.core``        the pure planning core: events in, decisions with reasons out. No I/O,
                        no clock, no Dask; it imports only ``registry``'s domain types.
``planner.live``        the live driver: the loop that feeds the core from Dask and the store and
                        carries out its decisions (dispatch, cluster, worker-side execution).
``planner.simulation``  the simulated driver: the same core on a virtual clock.
``planner.interfaces``  what people and programs touch: the command line, terminal rendering,
                        the live page, notebook helpers.
=====================  =========================================================================

Imports point one way: ``interfaces`` → drivers (``live``, ``simulation``) → ``core`` →
``registry``. The core never imports a driver or an interface, and drivers never import
interfaces (``tests/test_layout.py`` checks it).
"""
