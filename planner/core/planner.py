"""The planning core: events in, decisions out. No clock, no database, no Dask.

Theory of operation
-------------------
The core's book (``ProcessBook``, in ``planner.core.book``) keeps, per process, a ``ProcState``
(definition + what its runs did) and the result of its last readiness evaluation. Candidates —
processes whose readiness rules all pass — sit in a sorted list under their ``rank_key``.
``handle(now, *events)`` does four things:

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

from planner.core import capacity
from planner.core.book import ProcessBook
from planner.core.events import (
    Code,
    Decision,
    Event,
    Explanation,
    Reason,
    StartKind,
    StartRun,
    Step,
)
from planner.core.explain import blocked_sentence
from planner.core.ranking import rank_key
from planner.core.readiness import Readiness, fire_to_run
from planner.core.reservation import Hold
from planner.core.state import Flight, ProcState


class Planner(ProcessBook):
    """The pure planning core. Build it from a registry snapshot, then feed it ``handle`` calls."""

    # -- public API -------------------------------------------------------------------------------

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

    def settle(self, now: datetime, *events: Event) -> Step:
        """Apply ``events`` and report the runs they settle, deciding and starting nothing.

        For a driver that is stopping: what finished (or was cancelled) on the way out is
        recorded with the same retry policy as ever, and no new run begins."""
        self.observe(now, *events)
        settled, self._pending_settled = tuple(self._pending_settled), []
        return Step(at=now, settled=settled)

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
            blocker = self._blocker(ps, now, free, pool_use, resource_use, holds, busy)
            if blocker is None:
                out.append(Decision(process=ps.name, decision="start"))
                free -= 1
                capacity.take(ps.definition.pool, ps.definition.resources, pool_use, resource_use)
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
            blocked_until=blocked_sentence(decision, r, now, self.tz),
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
                blocker = self._blocker(
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

    def _blocker(
        self,
        ps: ProcState,
        now: datetime,
        free: int,
        pool_use: Counter[str],
        resource_use: Counter[str],
        holds: list[Hold],
        busy: list[datetime | None],
    ) -> Reason | None:
        return capacity.blocker(
            ps,
            now,
            free=free,
            slots=self.slots,
            registry=self.registry,
            tz=self.tz,
            pool_use=pool_use,
            resource_use=resource_use,
            workers=self.worker_resources,
            holds=holds,
            busy=busy,
        )

    def _holds(self, now: datetime, evaluations: Mapping[str, Readiness] | None) -> list[Hold]:
        return capacity.reservation_holds(now, self.reserved, self.states, evaluations)

    def _busy_until(self, now: datetime) -> list[datetime | None]:
        return capacity.busy_until(now, self.run_index, self.states, self.orphans)

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
            # the next run that starts satisfies a pending trigger, whatever started it: a
            # trigger is never starved by the process's own scheduled runs
            trigger = r.trigger if r.kind is StartKind.TRIGGER else None
            if trigger is None and ps.triggers:
                trigger = next((x for x in ps.triggers if not x.force), ps.triggers[0])
            if trigger is not None and trigger in ps.triggers:
                ps.triggers.remove(trigger)
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
        capacity.take(flight.pool, flight.resources, self.pool_use, self.resource_use)
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


def starts_by_process(steps: Iterable[Step]) -> dict[str, int]:
    """How many runs each process started over ``steps`` (handy in tests and notebooks)."""
    counts: Counter[str] = Counter()
    for step in steps:
        counts.update(s.process for s in step.starts)
    return dict(counts)
