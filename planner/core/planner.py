"""The planning core: events in, decisions out. No clock, no database, no Dask.

Theory of operation
-------------------
The core keeps, per process, a ``ProcState`` (definition + what its runs did) and the result of its
last readiness evaluation. Candidates — processes whose readiness rules all pass — sit in a sorted
list under their ``rank_key``. ``handle(now, *events)`` does four things:

1. apply the events (registry changed, run finished, trigger, reset, capacity), marking *dirty*
   only the processes whose rules they can affect: a finished run dirties its process and, on
   success, its direct descendants; a registry change dirties what changed;
2. pop the wake-up heap: every evaluation leaves the earliest future instant at which a
   time-based rule (fire, not_before, refresh window, retry delay, active period) may flip;
3. re-evaluate the dirty processes, moving them in or out of the candidate list;
4. walk the candidates best-first while slots are free, checking capacity (pools, Dask resources,
   reservations); each start is an instruction for the driver.

So a completion costs O(descendants + starts · log n), not O(registry). ``plan(now)`` is the full,
side-effect-free dry run behind ``planner plan``/``explain``; it evaluates every process.

Drivers (``planner.live`` for Dask, ``planner.simulation`` for the virtual clock) own time and
I/O: they feed events with the instant they happened and carry out the returned ``Step``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sortedcontainers import SortedList

from planner.core.events import (
    CAPACITY_CODES,
    CapacityChanged,
    Code,
    Decision,
    Event,
    Explanation,
    ProcessReset,
    Reason,
    RegistryChanged,
    RunFinished,
    RunSettled,
    StartKind,
    StartRun,
    Step,
    TriggerRequested,
)
from planner.core.graph import Dag
from planner.core.ranking import rank_key
from planner.core.readiness import TIME_GATES, Readiness, evaluate, fire_to_run
from planner.core.reservation import HORIZON, Hold, blocking_hold
from planner.core.schedule import Schedule, zone
from planner.core.state import Flight, ProcState
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import ProcessHistory

_RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})


class Planner:
    """The pure planning core. Build it from a registry snapshot, then feed it ``handle`` calls."""

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
        self.candidates: SortedList = SortedList()
        self.dirty: set[str] = set()
        self.reserved: set[str] = set()  # processes with reserve: true
        self.wakeups: list[tuple[datetime, int, str]] = []
        self.run_index: dict[str, str] = {}  # run id -> process
        self.in_flight = 0
        self.pool_use: Counter[str] = Counter()
        self.resource_use: Counter[str] = Counter()
        self._pending_settled: list[RunSettled] = []
        self._apply_registry(registry, applied_at or {}, histories or {})

    # -- public API -------------------------------------------------------------------------------

    @property
    def slots(self) -> int:
        return self.slots_override or self.registry.slots or self.threads or 1

    def observe(self, now: datetime, *events: Event) -> None:
        """Apply ``events`` without deciding anything (for dry runs: ``plan`` then shows them)."""
        self.now = now
        for event in events:
            self._apply_event(event, now)

    def handle(self, now: datetime, *events: Event) -> Step:
        """Apply ``events`` observed at ``now`` and decide what to start."""
        self.now = now
        for event in events:
            self._apply_event(event, now)
        self._pop_wakeups(now)
        starts: list[StartRun] = []
        decisions: list[Decision] = []
        while True:
            fresh = self._reevaluate(now, decisions)
            round_starts = self._allocate(now, fresh, decisions)
            starts.extend(round_starts)
            # a start may leave the process a candidate again (queued triggers, max_active > 1):
            # another round records the new reasons of what started, and holds back (alarms)
            # what became a candidate again even when no slot is left
            if not round_starts or not self.dirty:
                break
        settled, self._pending_settled = tuple(self._pending_settled), []
        return Step(
            at=now,
            starts=tuple(starts),
            settled=settled,
            decisions=tuple(decisions),
            next_wakeup=self._next_wakeup(),
        )

    def plan(self, now: datetime) -> list[Decision]:
        """Dry run at ``now``: each process with ``start``/``wait`` and reasons; changes nothing."""
        evaluations = {name: self._evaluate(ps, now) for name, ps in self.states.items()}
        ranked: list[tuple[tuple[Any, ...], ProcState]] = []
        waits: list[Decision] = []
        for name, ps in self.states.items():
            r = evaluations[name]
            if r.candidate:
                since = ps.ready_since
                ps_key = self._key_for(ps, since or now)
                ranked.append((ps_key, ps))
            else:
                waits.append(Decision(process=name, decision="wait", reasons=r.reasons))
        ranked.sort(key=lambda item: item[0])
        free = self.slots - self.in_flight
        pool_use = Counter(self.pool_use)
        resource_use = Counter(self.resource_use)
        holds = self._holds(now, evaluations)
        busy = self._busy_until(now) if holds else []
        out: list[Decision] = []
        for _key, ps in ranked:
            blocker = self._capacity_blocker(ps, now, free, pool_use, resource_use, holds, busy)
            if blocker is None:
                out.append(Decision(process=ps.name, decision="start"))
                free -= 1
                self._take(ps.definition.pool, ps.definition.resources, pool_use, resource_use)
                holds = [h for h in holds if h.process != ps.name]
                if holds:
                    busy.append(ps.estimated_end(now, now))
            else:
                out.append(Decision(process=ps.name, decision="wait", reasons=(blocker,)))
        return out + sorted(waits, key=lambda d: d.process)

    def explain(self, name: str, now: datetime) -> Explanation:
        ps = self.states.get(name)
        if ps is None:
            from registry.errors import ProcessNotFound

            raise ProcessNotFound(name)
        decision = next(d for d in self.plan(now) if d.process == name)
        r = self._evaluate(ps, now)
        running = tuple(sorted(ps.flights))
        return Explanation(
            process=name,
            at=now,
            decision="running" if running and decision.decision == "wait" else decision.decision,
            reasons=decision.reasons,
            running=running,
            next_possible=r.opens_at if r.opens_at is None or r.opens_at > now else now,
            blocked_until=_blocked_sentence(decision, r, now, self.tz),
        )

    def queue(self) -> list[tuple[str, tuple[Reason, ...]]]:
        """Candidates best-first, then waiting processes, with their last known reasons."""
        out = [(key[-1], self.states[key[-1]].reasons) for key in self.candidates]
        out += [(n, ps.reasons) for n, ps in sorted(self.states.items()) if not ps.candidate]
        return out

    def flights(self) -> list[tuple[str, Flight]]:
        """Runs in flight and runs waiting to retry, by process."""
        out: list[tuple[str, Flight]] = []
        for source in (self.states, self.orphans):
            for name, ps in source.items():
                out += [(name, f) for f in ps.flights.values()]
                out += [(name, f) for f in ps.retrying.values()]
        return out

    def idle(self) -> bool:
        """Nothing in flight or waiting to retry, and nothing startable right now.

        Call it after ``handle``: candidates still listed then are held back by capacity that
        nothing in flight will free, so they count as idle too. Fires, not_before times and
        refresh windows still ahead do not keep the planner busy."""
        return (
            len(self.run_index) == 0
            and not self.dirty
            and not any(self.states[key[-1]].triggers for key in self.candidates)
        )

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
        if event.status in _RETRYABLE and flight.attempt <= d.retries and name in self.states:
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
                ps.durations.append(max(duration, 0.0))
                ps.refresh_estimate()
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
        old = self.registry
        self.registry = registry
        self.tz = zone(registry.timezone)
        everything = old.timezone != registry.timezone or old.ranking != registry.ranking
        structure = False  # edges or durations changed: critical paths must be recomputed
        for name in [n for n in self.states if n not in registry.processes]:
            self._remove(name)
            structure = True
        for name, definition in registry.processes.items():
            ps = self.states.get(name)
            if ps is None:
                ps = self._add(definition, applied_at.get(name), histories.get(name))
                structure = True
            elif ps.definition != definition or everything:
                structure |= self._change(ps, definition)
            else:
                continue
            self.dirty.add(name)
        self.reserved = {n for n, d in registry.processes.items() if d.reserve}
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
                self._take(flight.pool, flight.resources, self.pool_use, self.resource_use)
        for run_id in (*ps.flights, *ps.retrying):
            self.run_index[run_id] = definition.name
        self._set_schedule(ps)
        self.states[definition.name] = ps
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

    def _remove(self, name: str) -> None:
        ps = self.states.pop(name)
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
        self.candidates = SortedList(keys)

    # -- evaluation -------------------------------------------------------------------------------

    def _evaluate(self, ps: ProcState, now: datetime) -> Readiness:
        if ps.schedule is not None and not ps.next_fire_valid:
            ps.next_fire = ps.schedule.first_after(ps.last_fire)
            ps.next_fire_valid = True
        return evaluate(ps, now, self.states, tz=self.tz, online_since=self.online_since)

    def _reevaluate(self, now: datetime, decisions: list[Decision]) -> list[ProcState]:
        """Re-evaluate dirty processes; returns the candidates among them (their reasons are
        blank until the allocation gives them a capacity reason or starts them)."""
        fresh: list[ProcState] = []
        dirty, self.dirty = self.dirty, set()
        for name in sorted(dirty):  # sorted: decisions come out in the same order every run
            ps = self.states.get(name)
            if ps is None:
                continue
            r = self._evaluate(ps, now)
            ps.readiness = r
            ps.reasons = r.reasons
            ps.check_version += 1  # the previous wake-up, if any, no longer applies
            if r.next_check is not None:
                heapq.heappush(self.wakeups, (r.next_check, ps.check_version, name))
            if r.candidate:
                if not ps.candidate:
                    ps.candidate = True
                    ps.ready_since = ps.ready_since or now
                fresh.append(ps)
                key = rank_key(ps, self.registry.ranking)
                if key != ps.rank:
                    if ps.rank is not None:
                        self.candidates.discard(ps.rank)
                    ps.rank = key
                    self.candidates.add(key)
            else:
                if ps.rank is not None:
                    self.candidates.discard(ps.rank)
                ps.rank, ps.candidate, ps.ready_since, ps.alarmed = None, False, None, False
                self._note(ps, "wait", r.reasons, decisions)
        return fresh

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

    # -- allocation -------------------------------------------------------------------------------

    def _allocate(
        self, now: datetime, fresh: list[ProcState], decisions: list[Decision]
    ) -> list[StartRun]:
        starts: list[StartRun] = []
        blocked: set[str] = set()
        free = self.slots - self.in_flight
        if free > 0 and self.candidates:
            holds = self._holds(now, None)
            busy = self._busy_until(now) if holds else []
            i = 0
            while free > 0 and i < len(self.candidates):
                key = self.candidates[i]
                ps = self.states[key[-1]]
                blocker = self._capacity_blocker(
                    ps, now, free, self.pool_use, self.resource_use, holds, busy
                )
                if blocker is not None:
                    blocked.add(ps.name)
                    # alarming may move it forward in the list, never past position i
                    self._hold_back(ps, blocker, decisions)
                    i += 1
                    continue
                self.candidates.remove(key)
                starts.append(self._start(ps, now))
                self._note(ps, "start", (), decisions)
                free -= 1
                if holds:
                    holds = [h for h in holds if h.process != ps.name]
                    busy.append(ps.estimated_end(now, now))
        slots_full = Reason(Code.SLOTS, f"all {self.slots} slots busy")
        for ps in fresh:
            if ps.candidate and ps.name not in blocked and ps.rank is not None:
                self._hold_back(ps, slots_full, decisions)
        return starts

    def _hold_back(self, ps: ProcState, reason: Reason, decisions: list[Decision]) -> None:
        """A candidate that capacity keeps waiting; a recurrent one becomes alarmed."""
        ps.reasons = (reason,)
        self._note(ps, "wait", (reason,), decisions)
        if ps.definition.recurrent and not ps.alarmed:
            ps.alarmed = True
            if ps.rank is not None:
                self.candidates.discard(ps.rank)
                ps.rank = rank_key(ps, self.registry.ranking)
                self.candidates.add(ps.rank)

    def _capacity_blocker(
        self,
        ps: ProcState,
        now: datetime,
        free: int,
        pool_use: Counter[str],
        resource_use: Counter[str],
        holds: list[Hold],
        busy: list[datetime | None],
    ) -> Reason | None:
        d = ps.definition
        if free <= 0:
            return Reason(Code.SLOTS, f"all {self.slots} slots busy")
        if d.pool is not None:
            size = self.registry.pools.get(d.pool, 0)
            if pool_use[d.pool] >= size:
                return Reason(Code.POOL, f"pool {d.pool!r}: {pool_use[d.pool]} of {size} in use")
        if d.resources and not self._fits(d.resources, resource_use):
            wanted = ", ".join(f"{k}={v:g}" for k, v in sorted(d.resources.items()))
            return Reason(Code.RESOURCES, f"no worker has {wanted} free")
        if holds:
            hold = blocking_hold(
                ps.name,
                ps.estimated_end(now, now),
                now=now,
                slots=self.slots,
                busy_until=busy,
                holds=holds,
            )
            if hold is not None:
                at = hold.at.astimezone(self.tz).isoformat(timespec="seconds")
                return Reason(Code.RESERVED, f"slot kept for {hold.process} at {at}")
        return None

    def _fits(self, wanted: Mapping[str, float], use: Counter[str]) -> bool:
        workers = self.worker_resources
        if workers is None:
            return True
        if not any(all(w.get(k, 0.0) >= v for k, v in wanted.items()) for w in workers):
            return False
        totals: Counter[str] = Counter()
        for w in workers:
            totals.update(w)
        return all(totals[k] - use[k] >= v for k, v in wanted.items())

    def _holds(self, now: datetime, evaluations: Mapping[str, Readiness] | None) -> list[Hold]:
        """Reservations of ``reserve: true`` processes within the horizon, by start time."""
        holds: list[Hold] = []
        for name in self.reserved:
            ps = self.states[name]
            r = evaluations[name] if evaluations is not None else ps.readiness
            if r is None or r.opens_at is None:
                continue
            codes = {x.code for x in r.reasons} - CAPACITY_CODES
            if codes and not codes <= TIME_GATES | {Code.ANCESTORS}:
                continue
            if r.opens_at <= now and Code.ANCESTORS in codes:
                continue  # not needed now; it will be when its ancestors succeed
            at = max(r.opens_at, now)
            if at - now > HORIZON:
                continue
            until = ps.estimated_end(at, at) if ps.estimate is not None else None
            holds.append(Hold(process=name, at=at, until=until))
        holds.sort(key=lambda h: (h.at, h.process))
        return holds

    def _busy_until(self, now: datetime) -> list[datetime | None]:
        busy: list[datetime | None] = []
        for run_id, name in self.run_index.items():
            ps = self.states.get(name) or self.orphans[name]
            flight = ps.flights.get(run_id)
            if flight is not None:
                busy.append(ps.estimated_end(flight.started, now))
        return busy

    @staticmethod
    def _take(
        pool: str | None,
        resources: Mapping[str, float],
        pool_use: Counter[str],
        resource_use: Counter[str],
    ) -> None:
        if pool is not None:
            pool_use[pool] += 1
        resource_use.update(resources)

    def _release(self, flight: Flight) -> None:
        if flight.pool is not None:
            self.pool_use[flight.pool] -= 1
        self.resource_use.subtract(flight.resources)

    def _start(self, ps: ProcState, now: datetime) -> StartRun:
        r = ps.readiness
        assert r is not None
        d = ps.definition
        if r.kind is StartKind.RETRY and r.retry is not None:
            flight = ps.retrying.pop(r.retry.run_id)
            flight.attempt += 1
            flight.retry_at = None
            flight.started = now
            flight.pool, flight.resources = d.pool, dict(d.resources)
        else:
            params = dict(d.params)
            request_id = None
            if r.kind is StartKind.TRIGGER and ps.triggers:
                trigger = ps.triggers.popleft()
                params.update(trigger.params)
                request_id = trigger.request_id
            scheduled = r.scheduled if r.kind is StartKind.TRIGGER else now
            if r.kind is StartKind.FIRE:
                # the evaluation may be older than now (a candidate waiting for a slot): fires
                # that passed meanwhile collapse into this run too (missed: latest/skip)
                scheduled = fire_to_run(ps, now)
                ps.last_fire = scheduled
                ps.next_fire_valid = False
            flight = Flight(
                run_id=ps.new_run_id(),
                attempt=1,
                scheduled=scheduled,
                started=now,
                params=params,
                request_id=request_id,
                pool=d.pool,
                resources=dict(d.resources),
            )
            self.run_index[flight.run_id] = ps.name
        ps.flights[flight.run_id] = flight
        ps.last_start = now
        ps.candidate, ps.rank, ps.ready_since, ps.alarmed = False, None, None, False
        self.in_flight += 1
        self._take(flight.pool, flight.resources, self.pool_use, self.resource_use)
        self.dirty.add(ps.name)
        return StartRun(
            run_id=flight.run_id,
            process=ps.name,
            attempt=flight.attempt,
            kind=r.kind,
            scheduled=flight.scheduled,
            decided_at=now,
            params=flight.params,
            final_attempt=flight.attempt > d.retries,
            request_id=flight.request_id,
        )

    def _note(
        self, ps: ProcState, decision: str, reasons: tuple[Reason, ...], out: list[Decision]
    ) -> None:
        codes = (decision, tuple(r.code for r in reasons))
        if decision == "start" or ps.logged != codes:
            ps.logged = codes
            out.append(Decision(process=ps.name, decision=decision, reasons=reasons))

    def _key_for(self, ps: ProcState, since: datetime) -> tuple[Any, ...]:
        saved = ps.ready_since
        ps.ready_since = since
        try:
            return rank_key(ps, self.registry.ranking)
        finally:
            ps.ready_since = saved


def _blocked_sentence(decision: Decision, r: Readiness, now: datetime, tz: Any) -> str:
    if decision.decision == "start":
        return "nothing: it would start now"
    codes = {x.code for x in decision.reasons}
    if codes & CAPACITY_CODES:
        return "a free slot: it is a candidate waiting for capacity"
    parts: list[str] = []
    if r.opens_at is not None and r.opens_at > now:
        parts.append(f"time to reach {r.opens_at.astimezone(tz).isoformat(timespec='seconds')}")
    for reason in decision.reasons:
        if reason.code is Code.ANCESTORS:
            parts.append(f"fresh successes of its ancestors ({reason.detail})")
        elif reason.code in (Code.HOLD, Code.DISABLED):
            parts.append("`planner release`" if reason.code is Code.HOLD else "enabling it")
        elif reason.code in (Code.DONE, Code.FAILED):
            parts.append("`planner reset` (or `planner trigger`)")
        elif reason.code is Code.MAX_ACTIVE:
            parts.append("a running run to finish")
        elif reason.code in (Code.MAX_RUNS, Code.WINDOW) and r.opens_at is None:
            parts.append(f"a registry change ({reason})")
    return "; ".join(parts) or "nothing"


def starts_by_process(steps: Iterable[Step]) -> dict[str, int]:
    """How many runs each process started over ``steps`` (handy in tests and notebooks)."""
    counts: Counter[str] = Counter()
    for step in steps:
        counts.update(s.process for s in step.starts)
    return dict(counts)
