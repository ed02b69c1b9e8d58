"""A consistent, JSON-able picture of a running planner, for the live page and status displays.

Taken under the driver's lock, so the core is not changing while it is read; bounded by ``limit``
processes so that a very large registry does not make every page refresh walk all of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from planner.core.planner import Planner


class Driven(Protocol):
    """What a snapshot reads of the live driver."""

    lock: threading.Lock
    clock: Callable[[], datetime]
    core: Planner
    running: set[tuple[str, int]]
    recent: list[dict[str, Any]]


def snapshot(driver: Driven, *, limit: int = 500) -> dict[str, Any]:
    """Slots, runs in flight, the queue with reasons, recent attempts and the DAG's states."""
    with driver.lock:
        core = driver.core
        now = driver.clock()
        running = [
            {
                "process": process,
                "run_id": f.run_id,
                "attempt": f.attempt,
                "status": (
                    "retrying"
                    if f.retry_at is not None
                    else "running"
                    if (f.run_id, f.attempt) in driver.running
                    else "queued"
                ),
                "started": f.started,
                "retry_at": f.retry_at,
            }
            for process, f in core.flights()
        ]
        queue = [
            {"process": name, "reasons": [r.as_json() for r in reasons]}
            for name, reasons in core.queue()[:limit]
        ]
        nodes = []
        for name, ps in list(core.states.items())[:limit]:
            if ps.flights:
                state = "running"
            elif ps.definition.hold or not ps.definition.enabled:
                state = "held"
            elif ps.candidate:
                state = "ready"
            elif ps.last_outcome is not None:
                state = ps.last_outcome.value
            else:
                state = "waiting"
            nodes.append({"process": name, "state": state})
        shown = {n["process"] for n in nodes}
        edges = [(a, b) for a, b in core.dag.g.edges if a in shown and b in shown]
        return {
            "at": now,
            "slots": core.slots,
            "in_flight": core.in_flight,
            "running": running,
            "queue": queue,
            "recent": list(driver.recent[-100:]),
            "failures": [r for r in driver.recent if r["status"] in ("failed", "timed_out")][-20:],
            "nodes": nodes,
            "edges": edges,
        }
