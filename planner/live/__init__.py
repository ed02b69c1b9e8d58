"""The live driver: the planning core, the store and a Dask cluster in one small loop.

``loop``      the ``LiveDriver``: collects events (completions, registry revisions, requests,
              cluster size, reached times), calls ``Planner.handle`` and carries out each ``Step``,
              recording before acting;
``dispatch``  submits attempts to Dask and turns its callbacks and worker events into events;
``cluster``   connects to a remote scheduler or starts an in-process ``LocalCluster``;
``worker``    what runs on a Dask worker for one attempt (callables, commands, hooks).

May import: ``planner.core``, ``registry`` (domain and storage), dask/distributed. Never
``planner.interfaces`` or ``planner.simulation``. ``worker`` imports neither the loop nor the
core: it must stay importable on a bare Dask worker.
"""

from __future__ import annotations

from planner.live.cluster import Connection, connect
from planner.live.loop import LiveDriver, Summary, run_planner, utcnow

__all__ = ["Connection", "LiveDriver", "Summary", "connect", "run_planner", "utcnow"]
