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

``from planner import Registry, Process, Database`` is the Python API
(``planner.interfaces.library``): processes defined and applied from code, triggers, history.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.interfaces.library import Database, Process, Registry

__all__ = ["Database", "Process", "Registry"]


def __getattr__(name: str) -> Any:
    """The Python API (``planner.interfaces.library``), imported on first use so that
    ``import planner`` stays light."""
    if name in __all__:
        from planner.interfaces import library

        return getattr(library, name)
    raise AttributeError(f"module 'planner' has no attribute {name!r}")
