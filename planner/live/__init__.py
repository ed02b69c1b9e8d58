"""The live driver: the planning core, the store and a Dask cluster in one small loop.

``loop``      the ``LiveDriver``: collects events (completions, registry revisions, requests,
              cluster size, reached times), calls ``Planner.handle`` and carries out each ``Step``,
              recording before acting;
``dispatch``  submits attempts to Dask and turns its callbacks and worker events into events;
``cluster``   connects to a remote scheduler or starts an in-process ``LocalCluster``;
``leadership`` the lease: one planner plans for a database, the others stand by;
``outage``    riding out a database that goes away, up to ``--db-outage-limit``;
``runner``    ``planner run`` end to end: stand by, connect, drive, stop cleanly;
``snapshot``  a JSON-able picture of the running planner for pages;
``restart``   re-attaching (or marking lost) what an earlier planner left in flight;
``once``      at most one execution per attempt, whatever Dask re-runs;
``keys``      the Dask key of each attempt, grouped per process in the Dask dashboard;
``worker``    what runs on a Dask worker for one attempt (callables, commands, hooks).

May import: ``planner.core``, ``registry`` (domain and storage), dask/distributed. Never
``planner.interfaces`` or ``planner.simulation``. ``worker`` imports neither the loop nor the
core: it must stay importable on a bare Dask worker.
"""

from __future__ import annotations

from planner.live.cluster import Connection, connect
from planner.live.loop import LiveDriver, utcnow
from planner.live.recording import Summary
from planner.live.runner import run_planner

__all__ = ["Connection", "LiveDriver", "Summary", "connect", "run_planner", "utcnow"]
