"""The decision log: what the live planner decides, one log line per decision worth a line.

``DecisionLog`` is a listener of the driver (``LiveDriver.listeners``), called on the planner's
thread after each recorded step. It logs, on the ``planner.live.decision_log`` logger at INFO
(``planner -v run`` shows it):

- one line per start: ``start extract-3 (fire, priority 100, slot 2/4)`` — the attempt when it
  is not the first, how it was decided (fire, single, trigger, retry), and which slot it took;
- when slots are free but something still waits, one line saying why the best waiting process
  waits: ``2 of 4 slots free; report waits — ancestors: load (running)``. The best waiting
  process is the best candidate that capacity holds back (a pool, resources, a reservation),
  else the waiting process of highest priority (then name) among those not done, held or
  disabled. The line is written only when that process or its reasons change, not on every
  step, so the log stays bounded however long the planner waits.

It reads the core (no lock: it runs on the thread that changes the core) and is cheap when the
logger is off. Looking for the best waiting process walks the processes, so it is done only
after a step that changed something (a decision, a start, an end) or the number of free slots.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from planner.core.events import Code, Reason, StartRun, Step

if TYPE_CHECKING:
    from planner.core.planner import Planner
    from planner.live.loop import LiveDriver

__all__ = ["DecisionLog", "best_waiting"]

log = logging.getLogger(__name__)

#: waits that say a process has nothing to do or was stopped on purpose: not worth a line
_QUIET = frozenset({Code.DONE, Code.MAX_RUNS, Code.DISABLED, Code.HOLD, Code.INVALID})


def best_waiting(core: Planner) -> tuple[str, tuple[Reason, ...]] | None:
    """The waiting process most worth explaining, and its reasons (``None``: nothing waits)."""
    for key in core.candidates:  # best first: held back by capacity although ready
        ps = core.states[key[-1]]
        if not ps.flights:
            return ps.name, ps.reasons
    best: tuple[int, str] | None = None
    for name, ps in core.states.items():
        if ps.candidate or ps.flights or not ps.reasons or ps.reasons[0].code in _QUIET:
            continue
        rank = (-ps.definition.priority, name)
        if best is None or rank < best:
            best = rank
    if best is None:
        return None
    return best[1], core.states[best[1]].reasons


class DecisionLog:
    """A driver listener that logs starts and, on change, why the best waiting process waits."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.log = logger
        self._waiting: tuple[str, tuple[tuple[str, str], ...]] | None = None
        self._free = -1

    def on_step(self, driver: LiveDriver, step: Step) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        core = driver.core
        slots = core.slots
        first_slot = core.in_flight - len(step.starts) + 1
        for i, start in enumerate(step.starts):
            self.log.info("start %s", _start_text(core, start, first_slot + i, slots))
        for start in step.chained:
            self.log.debug("chain %s behind %s", start.run_id, start.after)
        free = slots - core.in_flight
        changed = bool(step.decisions or step.starts or step.settled) or free != self._free
        self._free = free
        if free <= 0 or not changed:
            return
        found = best_waiting(core)
        if found is None:
            self._waiting = None
            return
        name, reasons = found
        waiting = (name, tuple((r.code.value, r.detail) for r in reasons))
        if waiting == self._waiting:
            return
        self._waiting = waiting
        why = "; ".join(str(r) for r in reasons) or "ready, next to start"
        self.log.info("%d of %d slots free; %s waits — %s", free, slots, name, why)


def _start_text(core: Planner, start: StartRun, slot: int, slots: int) -> str:
    ps = core.states.get(start.process)
    attempt = f" attempt {start.attempt}" if start.attempt > 1 else ""
    how = [start.kind.value]
    if start.request_id is not None:
        how[0] += f" #{start.request_id}"
    if ps is not None:
        how.append(f"priority {ps.definition.priority}")
    how.append(f"slot {max(slot, 1)}/{slots}")
    if start.ahead:
        how.append("handed to Dask ahead")
    return f"{start.run_id}{attempt} ({', '.join(how)})"
