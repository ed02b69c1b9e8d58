"""The core as a planner starting now would build it from the database, for the interfaces that
only look: ``planner plan`` and ``explain``, the HTTP API's process reads, ``planner serve``'s page.

Requests that no running planner has picked up yet (triggers, resets) are part of the state it
will act on, so they are observed too: what these show is what ``planner run`` would do. So is
each condition's last answer, which the running planner writes to the decision log
(``planner.live.conditions``): false, or the error it raised, and when it was asked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from registry.model import RegistryDef
from registry.records import RequestKind

if TYPE_CHECKING:
    from planner.core.events import ConditionAnswered
    from planner.core.planner import Planner
    from registry.storage.store import Store

__all__ = ["condition_answers", "dry_run_core"]

#: how many of a process's newest decision-log rows are searched for its condition's answer
#: (written at least every few minutes: far fewer rows than this come between two of them)
ANSWER_ROWS_SCANNED = 100


def dry_run_core(
    store: Store,
    registry: RegistryDef,
    applied: Mapping[str, datetime],
    at: datetime,
    slots: int | None,
) -> Planner:
    """The core built from the database state, as a planner starting at ``at`` would see it."""
    from planner.core.events import ProcessReset, TriggerRequested  # the core, on first use
    from planner.core.planner import Planner

    core = Planner(
        registry,
        now=at,
        applied_at=applied,
        histories=store.load_histories(),
        slots=slots,
        threads=os.cpu_count(),  # slots: --slots, else the registry's, else this machine's threads
    )
    # requests a running planner has not picked up yet are part of the state it will act on
    pending: list[TriggerRequested | ProcessReset | ConditionAnswered] = []
    for req in store.pending_requests():
        if req.kind is RequestKind.TRIGGER and req.process:
            pending.append(TriggerRequested.of(req))
        elif req.kind is RequestKind.RESET and req.process:
            pending.append(ProcessReset(process=req.process, at=req.created))
    pending += condition_answers(store, registry)
    core.observe(at, *pending)
    return core


def condition_answers(store: Store, registry: RegistryDef) -> list[ConditionAnswered]:
    """The last answer of each process's condition that the decision log holds."""
    from planner.core.events import ConditionAnswered

    found: list[ConditionAnswered] = []
    for name, definition in registry.processes.items():
        if definition.condition is None:
            continue
        for row in store.decisions(name, limit=ANSWER_ROWS_SCANNED):
            answer = ConditionAnswered.of_logged(row)
            if answer is not None:
                found.append(answer)
                break
    return found
