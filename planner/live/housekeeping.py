"""Housekeeping: the running planner purges records past the registry's ``retention``.

A thread of its own, never the planner loop: every ``interval`` (first ``first_after`` the
start) it asks the store to purge what the current registry's retention lets go
(``registry.storage.retention``: never what readiness reads). The store works in batches of a
few hundred rows, one short transaction each, so the loop's own turns interleave with it. Its
writes are fenced like every write of the planner; a purge that fails (a database outage, a
lock held too long) is logged and tried again at the next interval, a lost lease ends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from registry.errors import LeaseLost
from registry.model import RegistryDef
from registry.storage import retention
from registry.storage.retention import Purged
from registry.storage.store import Store

__all__ = ["Housekeeper"]

log = logging.getLogger(__name__)


class Housekeeper:
    """Purges on a thread until ``close``; ``purged`` adds up what it removed."""

    def __init__(
        self,
        store: Store,
        registry: Callable[[], RegistryDef],
        clock: Callable[[], datetime],
        *,
        interval: timedelta = timedelta(minutes=10),
        first_after: timedelta = timedelta(minutes=1),
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.interval = interval
        self.first_after = first_after
        self.purged = Purged()
        self.passes = 0  # purges completed, whether they removed anything or not
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="planner-housekeeping", daemon=True)

    def start(self) -> Housekeeper:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def purge_now(self) -> Purged:
        """One purge with the current registry's retention (also what the thread does)."""
        registry = self.registry()
        cut = retention.cutoffs(registry, self.clock())
        done = self.store.purge(cut, counted=retention.counted(registry), stop=self._stop.is_set)
        self.purged += done
        self.passes += 1
        if done.total:
            log.info(
                "purged %d runs (%d attempts), %d logs, %d decisions past their retention",
                done.runs,
                done.attempts,
                done.logs,
                done.decisions,
            )
        return done

    def _loop(self) -> None:
        delay = self.first_after.total_seconds()
        while not self._stop.wait(delay):
            delay = self.interval.total_seconds()
            try:
                self.purge_now()
            except LeaseLost:
                return
            except Exception as exc:  # an outage: the next interval tries again
                log.warning("purge failed, tried again in %s: %s", self.interval, exc)
