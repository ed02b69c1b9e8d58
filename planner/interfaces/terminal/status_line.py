"""The one line ``planner run`` keeps redrawn on a terminal: slots, running, done, failed.

The driver's listener runs on the planner loop, so it only takes a cheap snapshot of counters
(at most every ``interval`` seconds); rich's own thread redraws.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Callable

    from planner.core.events import Step
    from planner.live.loop import LiveDriver

__all__ = ["live_display", "live_status"]


def live_status(driver: LiveDriver) -> RenderableType:
    """One line for the terminal while ``planner run`` works: slots, running, done, failed."""
    core, statuses = driver.core, driver.summary.statuses
    failed = statuses.get("failed", 0) + statuses.get("timed_out", 0)
    text = Text()
    text.append(f"slots {core.in_flight}/{core.slots}", style="bold")
    text.append(f"  running {len(driver.running)}  queued {core.in_flight - len(driver.running)}")
    text.append(f"  ready {len(core.candidates)}")
    text.append(f"  done {statuses.get('succeeded', 0)}", style="green")
    text.append(f"  failed {failed}", style="red" if failed else "")
    text.append(f"  cancelled {statuses.get('cancelled', 0)}")
    return text


def live_display(driver: LiveDriver, *, interval: float = 0.25) -> Callable[[], None]:
    """Show ``live_status`` on the terminal while the driver runs; returns the stop function.

    Quiet (a no-op) when stdout is not a terminal. The driver's listener only takes a cheap
    snapshot of counters; rich's own thread redraws."""
    if not sys.stdout.isatty():
        return lambda: None
    import time

    from rich.live import Live

    live = Live(live_status(driver), refresh_per_second=4, transient=True)
    live.start()
    last = [0.0]

    def listener(d: LiveDriver, _step: Step) -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            live.update(live_status(d))

    driver.listeners.append(listener)

    def stop() -> None:
        if listener in driver.listeners:
            driver.listeners.remove(listener)
        live.stop()

    return stop
