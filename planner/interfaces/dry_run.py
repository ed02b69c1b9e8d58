"""The core as a planner starting now would build it from the database, for the interfaces that
only look: ``planner plan`` and ``explain``, the HTTP API's process reads, ``planner serve``'s page.

Requests that no running planner has picked up yet (triggers, resets) are part of the state it
will act on, so they are observed too: what these show is what ``planner run`` would do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from registry.model import RegistryDef
from registry.records import RequestKind

if TYPE_CHECKING:
    from planner.core.planner import Planner
    from registry.storage.store import Store

__all__ = ["dry_run_core"]


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
    pending: list[TriggerRequested | ProcessReset] = []
    for req in store.pending_requests():
        if req.kind is RequestKind.TRIGGER and req.process:
            pending.append(TriggerRequested.of(req))
        elif req.kind is RequestKind.RESET and req.process:
            pending.append(ProcessReset(process=req.process, at=req.created))
    core.observe(at, *pending)
    return core
