"""Prometheus metrics of one planner, served at ``/metrics`` (SPEC "HTTP API and metrics").

    planner_runs_total{process,status}   runs that ended, by their final status
    planner_slots{state="used"|"free"}   slots in use and free, after the last step
    planner_waiting{reason}              processes waiting, by the first reason they wait for
                                         (not a process whose run is in flight at its
                                         ``max_active``: it runs, as the live page has it)
    planner_dispatch_seconds             histogram: a run's end on its worker to the start of
                                         the run decided in its place (handed to Dask)
    planner_decision_seconds             histogram: the core's time per step
    planner_leader                       1 while this planner holds the lease, else 0

Each planner has its own ``CollectorRegistry`` (not prometheus_client's global one), so two
planners in one process — tests — do not mix their figures. ``PlannerMetrics.attach(driver)``
makes it a listener of the live driver: ``on_step`` runs on the planner's thread after each
recorded step and only updates numbers from what the step carries — O(what changed), no store
call, no lock held by anyone else — so it never slows the loop; Dask's callback thread never
sees it. A planner that does not plan (``planner serve``, a standby) serves ``planner_leader 0``.

Dispatch time is measured for the starts a step decides in the same step that handled the ends
that freed their slots (an end and the start it makes possible are one step: the planner is
event-driven), pairing ends and starts in order. A chained start (handed to Dask ahead, started
by Dask itself at its ancestor's end) takes its end's place but is not measured: the planner
does not see when Dask began it. Starts into slots that were already free are not dispatches.
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from planner.core.events import Code, Step

if TYPE_CHECKING:
    from planner.live.loop import LiveDriver

__all__ = ["CONTENT_TYPE", "PlannerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_DISPATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class PlannerMetrics:
    """The metrics of one planner process; ``exposition()`` is the text ``/metrics`` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "planner_runs",
            "Runs that ended, by process and final status.",
            ["process", "status"],
            registry=self.registry,
        )
        self.slots = Gauge(
            "planner_slots", "Slots used and free.", ["state"], registry=self.registry
        )
        self.waiting = Gauge(
            "planner_waiting",
            "Processes waiting, by the first reason they wait for.",
            ["reason"],
            registry=self.registry,
        )
        self.dispatch = Histogram(
            "planner_dispatch_seconds",
            "From a run's end on its worker to the start of the run decided in its slot.",
            buckets=_DISPATCH_BUCKETS,
            registry=self.registry,
        )
        self.decision = Histogram(
            "planner_decision_seconds",
            "Time the planning core takes per step.",
            buckets=_DECISION_BUCKETS,
            registry=self.registry,
        )
        self.leader = Gauge(
            "planner_leader", "1 while this planner holds the lease.", registry=self.registry
        )
        self.leader.set(0)
        self._reason_of: dict[str, str] = {}  # waiting process -> the reason it is counted under
        #: process -> its last decision's first reason and whether it names max_active (a
        #: process whose last decision was a start has none)
        self._waits: dict[str, tuple[str, bool]] = {}
        self._tally: Tally[str] = Tally()
        self._seen_registry: object | None = None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def attach(self, driver: LiveDriver) -> Callable[[], None]:
        """Listen to ``driver`` (which holds the lease); returns the function that detaches."""
        for code in Code:
            self.waiting.labels(reason=code.value).set(0)
        self.leader.set(1)
        driver.listeners.append(self.on_step)

        def detach() -> None:
            with contextlib.suppress(ValueError):
                driver.listeners.remove(self.on_step)
            self.leader.set(0)

        return detach

    def on_step(self, driver: LiveDriver, step: Step) -> None:
        """After each recorded step, on the planner's thread: numbers only."""
        self.decision.observe(driver.decision_s)
        core = driver.core
        self.slots.labels(state="used").set(core.in_flight)
        self.slots.labels(state="free").set(max(core.slots - core.in_flight, 0))
        for settled in step.settled:
            if settled.status.terminal:
                self.runs.labels(process=settled.process, status=settled.status.value).inc()
        self._count_waiting(driver, step)
        self._time_dispatch(driver, step)

    def _count_waiting(self, driver: LiveDriver, step: Step) -> None:
        """Count the processes whose decision changed (only those are in ``step.decisions``)
        or whose runs started or ended: a run in flight at ``max_active`` is not waiting."""
        core = driver.core
        for d in step.decisions:
            if d.decision == "wait" and d.reasons:
                codes = [r.code for r in d.reasons]
                self._waits[d.process] = (codes[0].value, Code.MAX_ACTIVE in codes)
            else:
                self._waits.pop(d.process, None)
        names = {d.process for d in step.decisions}
        names |= {s.process for s in step.starts} | {s.process for s in step.settled}
        touched: set[str] = set()
        for name in names:
            wait = self._waits.get(name)
            ps = core.states.get(name)
            running = ps is not None and bool(ps.flights) and wait is not None and wait[1]
            touched |= self._move(name, None if wait is None or running else wait[0])
        if core.registry is not self._seen_registry:  # processes removed: forget them
            self._seen_registry = core.registry
            for name in [n for n in self._waits if n not in core.states]:
                del self._waits[name]
            for name in [n for n in self._reason_of if n not in core.states]:
                touched |= self._move(name, None)
        for reason in touched:
            self.waiting.labels(reason=reason).set(self._tally[reason])

    def _move(self, process: str, reason: str | None) -> set[str]:
        """Count ``process`` under ``reason`` (``None``: not waiting); the reasons it touched."""
        old = self._reason_of.pop(process, None)
        if old is not None:
            self._tally[old] -= 1
        if reason is not None:
            self._reason_of[process] = reason
            self._tally[reason] += 1
        return {r for r in (old, reason) if r is not None}

    def _time_dispatch(self, driver: LiveDriver, step: Step) -> None:
        if not driver.ended_at or not step.starts:
            return
        now = driver.clock()
        for ended, start in zip(sorted(driver.ended_at), step.starts, strict=False):
            if not start.ahead:
                self.dispatch.observe(max((now - ended).total_seconds(), 0.0))
