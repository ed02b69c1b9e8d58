"""What ``planner serve``'s page shows: the planner's picture read from the database, not planned.

``planner serve`` plans nothing and has no cluster, so its page cannot ask a live driver.
``StoreWatch`` stands in for one (``server.Watched``): its snapshot has the live driver's shape
(``planner.live.snapshot``), built from a dry-run core (``planner.interfaces.dry_run``: the
registry, the runs in flight and the requests not yet picked up, as the planner that runs would
see them) and the store's recent attempts. Slots are those a planner started here would have
(``slots:``, else this machine's threads): the running planner's own may differ. Each recent
attempt has its run's params and its result as ``history`` shows them.

It is built again at most every ``interval`` seconds and only when a page asks (the hub takes
snapshots only while someone watches); a ticker thread tells the hub every ``interval`` that a
newer picture may be there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from planner.interfaces.dry_run import dry_run_core
from planner.live.recording import RECENT_LOG_TAIL
from planner.live.snapshot import dag_picture, process_figures, running_rows
from registry.lifecycle import RunStatus

if TYPE_CHECKING:
    from registry.records import AttemptRecord
    from registry.storage.store import Store

__all__ = ["StoreWatch"]

#: attempts of the store shown as recent (the Gantt, the failures)
RECENT = 100
LOGS_SHOWN = 20  # the latest attempts whose log tails the page gets


def _utcnow() -> datetime:
    return datetime.now(UTC)


class StoreWatch:
    """A planner's picture from the store, refreshed on demand; a ``Watched`` for the page."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self.listeners: list[Any] = []
        self._lock = threading.Lock()
        self._picture: dict[str, Any] | None = None
        self._taken: datetime | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="planner-watch", daemon=True)

    def start(self) -> StoreWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _tick(self) -> None:
        while not self._closed.wait(self.interval):
            for listener in list(self.listeners):
                listener(self, None)

    def snapshot(self, *, limit: int = 500) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            fresh = self._taken is not None and (now - self._taken).total_seconds() < self.interval
            if self._picture is None or not fresh:
                self._picture = self._take(now, limit)
                self._taken = now
            return self._picture

    def _take(self, now: datetime, limit: int) -> dict[str, Any]:
        store = self.store
        registry, applied = store.load_registry()
        core = dry_run_core(store, registry, applied, now, None)
        decisions = core.plan(now)
        started = {
            (r.run_id, r.attempt) for r in store.active_runs() if r.status is RunStatus.RUNNING
        }
        running = running_rows(core, started)
        queue = [
            {"process": d.process, "reasons": [r.as_json() for r in d.reasons]}
            for d in decisions[:limit]
        ]
        ready = {d.process for d in decisions if d.decision == "start"}
        nodes = []
        for name, ps in list(core.states.items())[:limit]:
            if ps.flights:
                state = "running"
            elif ps.definition.hold or not ps.definition.enabled:
                state = "held"
            elif name in ready:
                state = "ready"
            elif ps.last_outcome is not None:
                state = ps.last_outcome.value
            else:
                state = "waiting"
            nodes.append({"process": name, "state": state})
        nodes, edges = dag_picture(nodes, core)
        ended = [a for a in reversed(store.history(limit=RECENT)) if a.status.terminal and a.end]
        logged = {(a.run_id, a.attempt) for a in ended[-LOGS_SHOWN:]}
        recent = [
            {
                "process": a.process,
                "run_id": a.run_id,
                "attempt": a.attempt,
                "status": a.status.value,
                "duration_s": a.duration_s,
                "at": a.end,
                "error": None if a.error is None else f"{a.error.type}: {a.error.message}",
                "params": dict(a.params),
                "result": a.result_document,
                "log": _log_tail(store, a) if (a.run_id, a.attempt) in logged else None,
            }
            for a in ended
        ]
        return {
            "at": now,
            "timezone": registry.timezone,
            "stats": process_figures(self, now),
            "slots": core.slots,
            "in_flight": core.in_flight,
            "running": running,
            "queue": queue,
            "recent": recent,
            "failures": [r for r in recent if r["status"] in ("failed", "timed_out")][-20:],
            "nodes": nodes,
            "edges": edges,
        }


def _log_tail(store: Store, attempt: AttemptRecord) -> str | None:
    log = store.attempt_log(attempt.run_id, attempt.attempt).log
    return None if not log else log[-RECENT_LOG_TAIL:]
