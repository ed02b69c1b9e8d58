"""The simulated driver: the planning core on a virtual clock — no Dask, no database writes.

``simulate(registry, start=…, until=…)`` feeds the same ``Planner`` the events a live run would
see if every run took its estimated duration, so what ``planner simulate`` shows is what
``planner run`` would do.

May import: ``planner.core`` and ``registry``'s domain modules. Never ``planner.live``,
``planner.interfaces`` or ``registry.storage``.
"""

from __future__ import annotations

from planner.simulation.simulate import DEFAULT_DURATION, Outcome, SimRun, Simulation, simulate

__all__ = ["DEFAULT_DURATION", "Outcome", "SimRun", "Simulation", "simulate"]
