"""The core's book-keeping: per-process state kept in step with the registry and with events.

``ProcessBook`` owns what the planner knows — one ``ProcState`` per process (plus orphans: removed
processes whose runs are still in flight), the dependency graph, the candidate list, the wake-up
heap and the capacity that runs in flight hold — and applies events to it: a run finished, a
trigger or reset arrived, the registry or the cluster changed. It marks *dirty* the processes an
event can affect; it decides nothing. ``planner.core.planner.Planner`` builds on it and decides.

A process the store could not validate (``RegistryDef.invalid``) keeps its ``ProcState`` — its
runs in flight stay accounted for — with a placeholder definition and ``invalid`` set: it never
starts, and its descendants wait on it. Run ids are ``f"{process}-{seq}"`` and must never repeat,
so the book remembers the last sequence number of processes that left the registry (or that only
the store's history knows of): a process removed and added again continues its numbering.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from planner.core import capacity
from planner.core.candidates import Candidates
from planner.core.collector import paused_for
from planner.core.events import (
    CapacityChanged,
    Code,
    ConditionAnswered,
    Event,
    ProcessReset,
    Reason,
    RegistryChanged,
    RunFinished,
    RunSettled,
    TriggerRequested,
)
from planner.core.graph import Dag
from planner.core.ranking import rank_key
from planner.core.readiness import Readiness, condition_fresh, evaluate, plain_reasons
from planner.core.schedule import Schedule, zone
from planner.core.state import Flight, ProcState
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import ProcessHistory

_RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})


class ProcessBook:
    """Per-process state, graph, candidate list and capacity accounting; events applied to them."""

    def __init__(
        self,
        registry: RegistryDef,
        *,
        now: datetime,
        applied_at: Mapping[str, datetime] | None = None,
        histories: Mapping[str, ProcessHistory] | None = None,
        slots: int | None = None,
        threads: int | None = None,
        resources: tuple[Mapping[str, float], ...] | None = None,
    ) -> None:
        self.now = now
        self.online_since = now
        self.slots_override = slots
        self.threads = threads
        self.worker_resources = resources
        self.registry = RegistryDef()
        self.tz = zone("UTC")
        self.states: dict[str, ProcState] = {}
        self.orphans: dict[str, ProcState] = {}  # removed from the registry, runs still in flight
        self.dag = Dag()
        self.candidates = Candidates(self.states)
        self.dirty: set[str] = set()
        self.reserved: set[str] = set()  # processes with reserve: true
        self.conditional: set[str] = set()  # processes with a condition
        self.wakeups: list[tuple[datetime, int, str]] = []
        self.run_index: dict[str, str] = {}  # run id -> process
        self.in_flight = 0
        self.pool_use: Counter[str] = Counter()
        self.resource_use: Counter[str] = Counter()
        self._pending_settled: list[RunSettled] = []
        self._sorted_names: list[str] | None = None  # the processes by name, until one changes
        self.evaluations = 0  # how many evaluations were kept (``ProcState.evaluation``)
        #: the last run sequence number of each process not (or no longer) in ``states``
        self.retired: dict[str, int] = {n: h.runs_created for n, h in (histories or {}).items()}
        self._apply_registry(registry, applied_at or {}, histories or {})

    @property
    def slots(self) -> int:
        return self.slots_override or self.registry.slots or self.threads or 1

    def observe(self, now: datetime, *events: Event) -> None:
        """Apply ``events`` without deciding anything (for dry runs: ``plan`` then shows them)."""
        self.now = now
        for event in events:
            self._apply_event(event, now)

    def conditions_due(self) -> dict[str, datetime]:
        """The conditions to ask, each with when. Those of the processes that nothing but their
        condition holds back: at once when there is no answer since the last start, or a true
        one too old to start on (``readiness.condition_fresh``), else ``condition_interval``
        after the false answer. And, while runs are in flight (an end frees capacity), those of
        the candidates that capacity holds back on a true answer, halfway through its freshness:
        the slot that frees finds a fresh answer, and the candidate keeps its place (and its
        reasons) while it is asked. The driver asks; the core never."""
        due: dict[str, datetime] = {}
        ending = bool(self.run_index)
        for name in self.conditional:
            ps = self.states.get(name)
            if ps is None:
                continue
            if ps.candidate:  # a retry asks no condition
                answer, r = ps.condition, ps.readiness
                held = ending and ps.reasons and r is not None and r.retry is None
                if held and answer is not None and answer.value:
                    due[name] = answer.at + condition_fresh(ps.definition) / 2
                continue
            if len(ps.reasons) != 1 or ps.reasons[0].code is not Code.CONDITION:
                continue
            answer = ps.condition
            fresh = answer is not None and (ps.last_start is None or answer.at > ps.last_start)
            if fresh and answer is not None and not answer.value:
                due[name] = answer.at + ps.definition.condition_interval
            else:
                due[name] = self.now
        return due

    # -- events -----------------------------------------------------------------------------------

    def _apply_event(self, event: Event, now: datetime) -> None:
        if isinstance(event, RunFinished):
            self._run_finished(event)
        elif isinstance(event, TriggerRequested):
            ps = self.states.get(event.process)
            if ps is not None:
                ps.triggers.append(event)
                self.dirty.add(event.process)
        elif isinstance(event, ProcessReset):
            ps = self.states.get(event.process)
            if ps is not None:
                ps.successes = 0
                ps.last_outcome = None
                # "runnable again": as if it never ran, so ancestors that succeeded before its
                # last start count as fresh and no refresh window is left over
                ps.last_start = None
                self.dirty.add(event.process)
        elif isinstance(event, RegistryChanged):
            self._apply_registry(event.registry, event.applied_at, {})
        elif isinstance(event, CapacityChanged):
            self.threads = event.threads
            self.worker_resources = event.resources
        elif isinstance(event, ConditionAnswered):
            ps = self.states.get(event.process)
            if ps is not None and ps.definition.condition is not None:
                ps.condition = event
                self.dirty.add(event.process)
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"unknown event {event!r}")

    def _run_finished(self, event: RunFinished) -> None:
        name = self.run_index.get(event.run_id)
        ps = None if name is None else (self.states.get(name) or self.orphans.get(name))
        if ps is None or name is None:
            return  # not a run of ours (already settled, or from before a reset of the core)
        flight = ps.flights.pop(event.run_id, None)
        if flight is None:
            if event.run_id not in ps.retrying or event.status is not RunStatus.CANCELLED:
                return  # only a cancel ends a run waiting to retry
            # the process may sit in the candidate list for this very retry: re-evaluate it
            self._settle(ps, ps.retrying.pop(event.run_id), RunStatus.CANCELLED, event.at)
        else:
            self._attempt_ended(name, ps, flight, event)
        if name in self.orphans and not ps.flights and not ps.retrying:
            del self.orphans[name]
        self.dirty.add(name)

    def _attempt_ended(self, name: str, ps: ProcState, flight: Flight, event: RunFinished) -> None:
        self.in_flight -= 1
        self._release(flight)
        ps.last_end = event.at
        d = ps.definition
        retry = (
            event.retry and flight.attempt <= d.retries and name in self.states and not ps.invalid
        )
        if event.status in _RETRYABLE and retry:
            flight.retry_at = event.at + d.retry_wait(flight.attempt)
            ps.retrying[event.run_id] = flight
            self._pending_settled.append(
                RunSettled(
                    run_id=flight.run_id,
                    process=name,
                    attempt=flight.attempt,
                    status=RunStatus.RETRYING,
                    retry_at=flight.retry_at,
                )
            )
        else:
            if event.status is RunStatus.SUCCEEDED:
                duration = event.duration_s
                if duration is None:
                    duration = (event.at - flight.started).total_seconds()
                ps.add_duration(max(duration, 0.0))
                ps.successes += 1
                ps.last_success_end = event.at
                self.dirty.update(self.dag.successors(name))
            self._settle(ps, flight, event.status, event.at)

    def _settle(self, ps: ProcState, flight: Flight, status: RunStatus, at: datetime) -> None:
        ps.last_outcome = status
        self.run_index.pop(flight.run_id, None)
        self._pending_settled.append(
            RunSettled(run_id=flight.run_id, process=ps.name, attempt=flight.attempt, status=status)
        )

    # -- registry ---------------------------------------------------------------------------------

    def _apply_registry(
        self,
        registry: RegistryDef,
        applied_at: Mapping[str, datetime],
        histories: Mapping[str, ProcessHistory],
    ) -> None:
        # a new registry is bulk work: states, graph and critical paths of every process
        with paused_for(len(registry.processes) + len(registry.invalid)):
            self._take_registry(registry, applied_at, histories)

    def _take_registry(
        self,
        registry: RegistryDef,
        applied_at: Mapping[str, datetime],
        histories: Mapping[str, ProcessHistory],
    ) -> None:
        old = self.registry
        self.registry = registry
        self.tz = zone(registry.timezone)
        everything = old.timezone != registry.timezone or old.ranking != registry.ranking
        structure = False  # edges or durations changed: critical paths must be recomputed
        known = {**registry.invalid, **registry.processes}
        for name in [n for n in self.states if n not in known]:
            self._remove(name)
            structure = True
        for name, definition in registry.processes.items():
            ps = self.states.get(name)
            if ps is None:
                ps = self._add(definition, applied_at.get(name), histories.get(name))
                structure = True
            elif ps.invalid is not None:  # valid again
                structure |= self._change(ps, definition)
                self._set_invalid(ps, None)
            elif ps.definition != definition or everything:
                structure |= self._change(ps, definition)
            else:
                continue
            self.dirty.add(name)
        for name, message in registry.invalid.items():
            if name in registry.processes:
                continue
            placeholder = ProcessDef(name=name)
            ps = self.states.get(name)
            if ps is None:
                ps = self._add(placeholder, applied_at.get(name), histories.get(name))
                structure = True
            elif ps.invalid == message:
                continue
            elif ps.invalid is None:
                structure |= self._change(ps, placeholder)
            self._set_invalid(ps, message)
            self.dirty.add(name)
        self.reserved = {n for n, d in registry.processes.items() if d.reserve}
        self.conditional = {n for n, d in registry.processes.items() if d.condition is not None}
        if structure or everything:
            self._recompute_critical_paths()

    def _add(
        self, definition: ProcessDef, applied: datetime | None, history: ProcessHistory | None
    ) -> ProcState:
        anchor = definition.start_at or applied or self.now
        ps = self.orphans.pop(definition.name, None)
        if ps is not None:  # re-added while an old run is still in flight: keep its accounting
            ps.definition = definition
            ps.anchor = anchor
        else:
            ps = ProcState.from_history(definition, anchor, history)
            for flight in ps.flights.values():
                self.in_flight += 1
                capacity.take(flight.pool, flight.resources, self.pool_use, self.resource_use)
        # a process added again continues its run numbering: run ids never repeat
        ps.runs_created = max(ps.runs_created, self.retired.pop(definition.name, 0))
        for run_id in (*ps.flights, *ps.retrying):
            self.run_index[run_id] = definition.name
        self._set_schedule(ps)
        self.states[definition.name] = ps
        self._sorted_names = None
        self.dag.set_ancestors(definition.name, definition.ancestors)
        return ps

    def _change(self, ps: ProcState, definition: ProcessDef) -> bool:
        old = ps.definition
        ps.definition = definition
        if definition.start_at is not None:
            ps.anchor = definition.start_at
        self._set_schedule(ps)  # cron, every, start_at or the timezone may have changed
        if old.ancestors != definition.ancestors:
            self.dag.set_ancestors(definition.name, definition.ancestors)
        if old.expected_duration != definition.expected_duration:
            ps.refresh_estimate()
        if ps.rank is not None:  # priority, class or timezone may have moved it
            self.candidates.discard(ps.rank)
            ps.rank = None
            ps.candidate = False
        return (old.ancestors, old.expected_duration) != (
            definition.ancestors,
            definition.expected_duration,
        )

    def _set_invalid(self, ps: ProcState, message: str | None) -> None:
        """Mark ``ps`` invalid (or valid again); its descendants' ancestors rule changes too."""
        if (ps.invalid is None) != (message is None):
            self.dirty.update(self.dag.successors(ps.name))
        ps.invalid = message

    def _remove(self, name: str) -> None:
        ps = self.states.pop(name)
        self._sorted_names = None
        self.retired[name] = ps.runs_created
        if ps.rank is not None:
            self.candidates.discard(ps.rank)
        self.dag.remove(name)
        for flight in list(ps.retrying.values()):  # will never start now
            self._settle(ps, flight, RunStatus.CANCELLED, self.now)
        ps.retrying.clear()
        ps.triggers.clear()
        if ps.flights:
            ps.rank, ps.candidate = None, False
            self.orphans[name] = ps

    def _schedule_for(self, ps: ProcState) -> Schedule | None:
        d = ps.definition
        if not d.recurrent:
            return None
        return Schedule(anchor=ps.anchor, tz=self.tz, cron=d.cron, every=d.every)

    def _set_schedule(self, ps: ProcState) -> None:
        ps.schedule = self._schedule_for(ps)
        ps.next_fire_valid = False

    def _recompute_critical_paths(self) -> None:
        durations = {n: ps.estimate or 0.0 for n, ps in self.states.items()}
        paths = self.dag.critical_paths(durations)
        for name, ps in self.states.items():
            ps.critical_path = paths.get(name, 0.0)
        # every key may have moved: rebuild the candidate list
        keys = []
        for key in self.candidates:
            ps = self.states[key[-1]]
            ps.rank = rank_key(ps, self.registry.ranking)
            keys.append(ps.rank)
        self.candidates = Candidates(self.states, keys)

    # -- evaluation -------------------------------------------------------------------------------

    def _plain_reasons(self, ps: ProcState) -> tuple[Reason, ...] | None:
        """The evaluation of a plain single process, by its short path: its reasons
        (``readiness.plain_reasons``); None for a process that needs ``_evaluate``."""
        return plain_reasons(ps, self.states)

    def _evaluate(self, ps: ProcState, now: datetime) -> Readiness:
        if ps.schedule is not None and not ps.next_fire_valid:
            ps.next_fire = ps.schedule.first_after(ps.last_fire)
            ps.next_fire_valid = True
        return evaluate(ps, now, self.states, tz=self.tz, online_since=self.online_since)

    def _names_in_order(self, names: set[str] | None) -> list[str]:
        """The processes among ``names`` (all of them: None), sorted by name.

        For many names, the registry in name order (kept until a process comes or goes),
        filtered: cheaper than sorting a cold evaluation's every name each time."""
        if names is not None and len(names) * 8 < len(self.states):
            return sorted(n for n in names if n in self.states)
        if self._sorted_names is None:
            self._sorted_names = sorted(self.states)
        if names is None or self.states.keys() <= names:  # every process (a cold evaluation)
            return self._sorted_names
        return [n for n in self._sorted_names if n in names]

    def _pop_wakeups(self, now: datetime) -> None:
        heap = self.wakeups
        while heap and heap[0][0] <= now:
            _, version, name = heapq.heappop(heap)
            ps = self.states.get(name)
            if ps is not None and ps.check_version == version:
                self.dirty.add(name)

    def _next_wakeup(self) -> datetime | None:
        heap = self.wakeups
        while heap:
            at, version, name = heap[0]
            ps = self.states.get(name)
            if ps is not None and ps.check_version == version:
                return at
            heapq.heappop(heap)
        return None

    # -- capacity ---------------------------------------------------------------------------------

    def _release(self, flight: Flight) -> None:
        if flight.pool is not None:
            self.pool_use[flight.pool] -= 1
        self.resource_use.subtract(flight.resources)
