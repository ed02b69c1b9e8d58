"""The pure planning core: events in, decisions with reasons out.

Holds the dependency graph (``graph``), fire times (``schedule``), per-process state (``state``),
the readiness rules and their reason codes (``readiness``), ranking (``ranking``), the candidate
list grouped by capacity needs (``candidates``), capacity and reservations (``capacity``,
``reservation``), explanations (``explain``), the event and decision
types (``events``) and the ``Planner`` that ties them together (``planner``); ``collector``
pauses Python's cyclic garbage collector while the core works over a whole large registry.

May import: the standard library, networkx/croniter/sortedcontainers, and ``registry``'s domain
modules (``model``, ``records``, ``lifecycle``, ``errors``). Never ``planner.live``,
``planner.simulation``, ``planner.interfaces`` or ``registry.storage``; never the wall clock:
time is an argument.
"""

from __future__ import annotations

from planner.core.events import (
    Code,
    Decision,
    Event,
    Explanation,
    Reason,
    RunFinished,
    StartRun,
    Step,
)
from planner.core.planner import Planner, starts_by_process

__all__ = [
    "Code",
    "Decision",
    "Event",
    "Explanation",
    "Planner",
    "Reason",
    "RunFinished",
    "StartRun",
    "Step",
    "starts_by_process",
]
