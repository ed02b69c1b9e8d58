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
   reservations); each start is an instruction for the driver. The candidates are also grouped
   by the pool and resources they need (``planner.core.candidates``): a group that cannot start
   anything is skipped as a whole, visiting only members whose reasons a visit would change.

So a completion costs O(descendants + starts · log n), not O(registry). ``plan(now)`` is the full,
side-effect-free dry run behind ``planner plan``/``explain``; it re-evaluates every process whose
last evaluation may not hold at ``now`` (all of them before any ``handle``). A plain single
process waiting on its ancestors — most of a large DAG at a cold start — is evaluated by a short
path (``readiness.plain_reasons``) that gives the same reasons as every rule in turn, and keeps
nothing but them. Work over a whole large registry (a new registry, a cold evaluation, a dry run)
runs with Python's cyclic garbage collector paused (``planner.core.collector``).

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
from planner.core.candidates import Walk
from planner.core.chaining import Chain, next_run
from planner.core.collector import paused_for
from planner.core.events import (
    ChainKept,
    Code,
    Decision,
    Event,
    Explanation,
    Reason,
    RunFinished,
    StartKind,
    StartRun,
    Step,
    make_decision,
)
from planner.core.explain import blocked_sentence
from planner.core.ranking import rank_key
from planner.core.readiness import Readiness, plain_readiness
from planner.core.reservation import Hold
from planner.core.slot_ahead import SlotAhead
from planner.core.state import Flight, ProcState
from registry.lifecycle import RunStatus
from registry.model import ProcessDef


class Planner(SlotAhead):
    """The pure planning core. Build it from a registry snapshot, then feed it ``handle`` calls."""

    # -- public API -------------------------------------------------------------------------------

    def __init__(
        self, *args: Any, chaining: bool = True, slot_ahead: bool = False, **kw: Any
    ) -> None:
        """``ProcessBook``'s arguments; runs handed over ahead: ``chaining``, ``slot_ahead``."""
        self._chain_book()
        self._slot_book()
        self.chaining = chaining
        self.slot_ahead = slot_ahead
        super().__init__(*args, **kw)

    def handle(self, now: datetime, *events: Event) -> Step:
        """Apply ``events`` observed at ``now`` and decide what to start."""
        self.now = now
        starts: list[StartRun] = []
        decisions: list[Decision] = []
        withdrawn: list[str] = []
        self._apply_events(now, events, starts, decisions, withdrawn)
        self._pop_wakeups(now)
        with paused_for(len(self.dirty)):  # a cold evaluation: see planner.core.collector
            while True:
                fresh = self._reevaluate(now, decisions)
                round_starts = self._allocate(now, fresh, decisions)
                starts.extend(round_starts)
                # a start may leave the process a candidate again (queued triggers, max_active >
                # 1): another round records the new reasons of what started, and holds back
                # (alarms) what became a candidate again even when no slot is left
                if not round_starts or not self.dirty:
                    break
        chained = self._revise_chains(now, withdrawn)
        settled, self._pending_settled = tuple(self._pending_settled), []
        return Step(
            at=now,
            starts=tuple(starts),
            settled=settled,
            decisions=tuple(decisions),
            next_wakeup=self._next_wakeup(),
            chained=tuple(chained),
            withdrawn=tuple(withdrawn),
        )

    def settle(self, now: datetime, *events: Event) -> Step:
        """Apply ``events`` and report the runs they settle, deciding and starting nothing.

        For a driver that is stopping: what finished (or was cancelled) on the way out is
        recorded with the same retry policy as ever, and no new run is decided: only chained runs
        whose ancestor succeeded start (Dask began them); the driver withdraws the others."""
        self.now = now
        starts: list[StartRun] = []
        withdrawn: list[str] = []
        self._withdraw_slot(withdrawn)
        self._apply_events(now, events, starts, [], withdrawn)
        settled, self._pending_settled = tuple(self._pending_settled), []
        return Step(at=now, starts=tuple(starts), settled=settled, withdrawn=tuple(withdrawn))

    def _apply_events(
        self,
        now: datetime,
        events: Iterable[Event],
        starts: list[StartRun],
        decisions: list[Decision],
        withdrawn: list[str],
    ) -> None:
        """Apply ``events``; chained runs whose ancestor succeeded start (Dask began them)."""
        events = list(events)
        for event in events:  # first: they restore what the last step withdrew
            if isinstance(event, ChainKept):
                chain = self._chain_kept(event.run_id)
                if chain is not None:
                    starts.append(self._start_ahead(chain, now, decisions))
        self._withdrawals_final()
        succeeded = {
            e.run_id: e.at
            for e in events
            if isinstance(e, RunFinished) and e.status is RunStatus.SUCCEEDED
        }
        self._recheck_due_chains(now, succeeded, withdrawn)
        for event in events:
            if isinstance(event, ChainKept):
                continue
            self._apply_event(event, now)
            if isinstance(event, RunFinished):
                chain = self._ancestor_ended(event.run_id, event.status, withdrawn)
                if chain is not None:  # Dask starts it now: it takes the slot first
                    starts.append(self._start_ahead(chain, now, decisions))

    def plan(self, now: datetime) -> list[Decision]:
        """Dry run at ``now``: each process with ``start``/``wait`` and reasons; changes nothing."""
        with paused_for(len(self.states)):  # a decision per process: see planner.core.collector
            return self._plan(now)

    def _plan(self, now: datetime) -> list[Decision]:
        evaluations: dict[str, Readiness] = {}  # of reserved processes, for their holds
        reserved = self.reserved
        ranked: list[tuple[tuple[Any, ...], ProcState]] = []
        waits: list[Decision] = []  # in name order, as the registry is walked
        # after a handle nothing is dirty: each last evaluation that still holds at ``now`` is
        # what evaluating again would give (reserved ones are evaluated again for their holds)
        cached = not self.dirty
        states = self.states
        for name in self._names_in_order(None):
            ps = states[name]
            last = ps.readiness
            if cached and name not in reserved and self._still_holds(ps, last, now):
                reasons = ps.reasons if last is None else last.reasons
            elif name not in reserved and (plain := self._plain_reasons(ps)) is not None:
                reasons = plain  # what evaluating it gives, without the rest of an evaluation
            else:
                r = self._evaluate(ps, now)
                reasons = r.reasons
                if name in reserved:
                    evaluations[name] = r
            if reasons:
                waits.append(make_decision(name, "wait", reasons))
            else:
                since = ps.ready_since
                ps_key = self._key_for(ps, since or now)
                ranked.append((ps_key, ps))
        ranked.sort(key=lambda item: item[0])
        free = self.slots - self.in_flight
        pool_use = Counter(self.pool_use)
        resource_use = Counter(self.resource_use)
        holds = self._holds(now, evaluations)
        busy = self._busy_until(now) if holds else []
        out: list[Decision] = []
        slots_full = (Reason(Code.SLOTS, f"all {self.slots} slots busy"),)
        for _key, ps in ranked:
            if free <= 0:  # what blocker() says first, without asking it each time
                out.append(make_decision(ps.name, "wait", slots_full))
                continue
            blocker = self._blocker(ps, now, free, pool_use, resource_use, holds, busy)
            if blocker is None:
                out.append(make_decision(ps.name, "start"))
                free -= 1
                capacity.take(ps.definition.pool, ps.definition.resources, pool_use, resource_use)
                holds = [h for h in holds if h.process != ps.name]
                if holds:
                    busy.append(ps.estimated_end(now, now))
            else:
                out.append(make_decision(ps.name, "wait", (blocker,)))
        return out + waits

    def _still_holds(self, ps: ProcState, r: Readiness | None, now: datetime) -> bool:
        """Whether ``ps``'s last evaluation ``r`` is what evaluating it at ``now`` gives, when
        nothing is dirty: ``now`` is within the span its time rules leave unchanged, and no
        ancestor changed since. Every change of a process dirties it, and a dirty process is
        evaluated again, so an ancestor that changed since has a later evaluation. (``r`` None:
        a waiting process whose evaluation was not kept, its reasons say it all.)"""
        at = ps.evaluated_at
        if at is None or now < at:
            return False
        if r is not None and r.next_check is not None and now >= r.next_check:
            return False
        seq = ps.evaluation
        states = self.states
        for ancestor in ps.definition.ancestors:
            anc = states.get(ancestor)
            if anc is None or anc.evaluation > seq:
                return False
        return True

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
        refresh windows still ahead do not keep the planner busy; a condition the driver is
        to ask does (a sensor keeps the planner running until it answers true)."""
        return (
            len(self.run_index) == 0
            and not self.dirty
            and not any(self.states[key[-1]].triggers for key in self.candidates)
            and not self.conditions_due()
        )

    def _reevaluate(self, now: datetime, decisions: list[Decision]) -> list[ProcState]:
        """Re-evaluate dirty processes; returns the candidates among them (their reasons are
        blank until the allocation gives them a capacity reason or starts them)."""
        fresh: list[ProcState] = []
        joining: list[tuple[Any, ...]] = []
        dirty, self.dirty = self.dirty, set()
        # a cold evaluation passes here once per process: what the loop reads, read once
        states, reserved, wakeups = self.states, self.reserved, self.wakeups
        candidates, ranking = self.candidates, self.registry.ranking
        plain, evaluate = self._plain_reasons, self._evaluate
        seq = self.evaluations
        # in name order: decisions come out in the same order every run
        for name in self._names_in_order(dirty):
            ps = states[name]
            # the evaluation is kept while it says more than the reasons: a candidate's (how it
            # would start), a reserved process's (its reservation), or one a time rule will
            # change; not for the bulk of a cold evaluation, waiting on ancestors
            reasons = plain(ps)
            r: Readiness | None
            if reasons is not None:  # a plain single process: no time rule, no wake-up
                next_check = None
                r = plain_readiness(ps, now, reasons) if not reasons or name in reserved else None
            else:
                r = evaluate(ps, now)
                reasons, next_check = r.reasons, r.next_check
                if reasons and next_check is None and name not in reserved:
                    r = None
            ps.readiness = r
            ps.reasons = reasons
            seq += 1
            ps.evaluation = seq
            ps.evaluated_at = now
            ps.check_version += 1  # the previous wake-up, if any, no longer applies
            if next_check is not None:
                heapq.heappush(wakeups, (next_check, ps.check_version, name))
            if not reasons:  # a candidate
                if not ps.candidate:
                    ps.candidate = True
                    ps.ready_since = ps.ready_since or now
                fresh.append(ps)
                key = rank_key(ps, ranking)
                if key != ps.rank:
                    if ps.rank is not None:
                        candidates.discard(ps.rank)
                    ps.rank = key
                    joining.append(key)
                else:
                    candidates.unsettle(key)  # its reasons were just reset
                continue
            if ps.rank is not None:
                candidates.discard(ps.rank)
                ps.rank = None
            ps.candidate = ps.alarmed = False
            ps.ready_since = None
            codes = logged_codes("wait", reasons)  # ``_note``, inline
            if ps.logged != codes:
                ps.logged = codes
                decisions.append(make_decision(name, "wait", reasons))
        self.evaluations = seq
        candidates.update(joining)  # at once: a cold evaluation adds thousands
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
            # the candidates best-first, as if walked one by one; the walk leaves out members
            # of full groups (pool, resources) whose hold-back would change nothing
            walk = Walk(self.candidates, self._need_blocker)
            for key in walk:
                ps = self.states[key[-1]]
                blocker = self._blocker(
                    ps, now, free, self.pool_use, self.resource_use, holds, busy
                )
                if blocker is not None:
                    blocked.add(ps.name)
                    # alarming may move it forward in the list, never past where the walk is
                    self._hold_back(ps, blocker, decisions)
                    walk.visited(key)
                    continue
                group = self.candidates.group_of(ps.name)
                self.candidates.remove(key)
                # a slot freed without an end: the run handed over for it starts, not another
                starts.append(self._start(ps, now, ahead=self._slot_taken(ps, now)))
                self._note(ps, "start", (), decisions)
                free -= 1
                if holds:
                    holds = [h for h in holds if h.process != ps.name]
                    busy.append(ps.estimated_end(now, now))
                if free <= 0:
                    break
                walk.started(group)
        slots_full = Reason(Code.SLOTS, f"all {self.slots} slots busy")
        shared = (slots_full,)  # one tuple for them all: a cold start holds back thousands
        for ps in fresh:
            if ps.candidate and ps.name not in blocked and ps.rank is not None:
                self._hold_back(ps, slots_full, decisions, shared)
        return starts

    def _hold_back(
        self,
        ps: ProcState,
        reason: Reason,
        decisions: list[Decision],
        reasons: tuple[Reason] | None = None,
    ) -> None:
        """A candidate that capacity keeps waiting; a recurrent one becomes alarmed.
        ``reasons``: ``(reason,)``, when many hold-backs share it."""
        reasons = reasons or (reason,)
        ps.reasons = reasons
        self._note(ps, "wait", reasons, decisions)
        if ps.definition.recurrent and not ps.alarmed:
            ps.alarmed = True
            if ps.rank is not None:
                self.candidates.discard(ps.rank)
                ps.rank = rank_key(ps, self.registry.ranking)
                self.candidates.add(ps.rank)
        if ps.rank is not None:
            self.candidates.settle(ps.rank, reason)

    def _holds(self, now: datetime, evaluations: Mapping[str, Readiness] | None) -> list[Hold]:
        return capacity.reservation_holds(now, self.reserved, self.states, evaluations)

    def _busy_until(self, now: datetime) -> list[datetime | None]:
        return capacity.busy_until(now, self.run_index, self.states, self.orphans)

    def _start_ahead(self, chain: Chain, now: datetime, decisions: list[Decision]) -> StartRun:
        """Start the chained run whose ancestor just succeeded, as it was handed over."""
        name = chain.start.process
        ps = self.states.get(name) or self.orphans.get(name)
        if ps is None:  # removed from the registry as its ancestor ended: account for it anyway
            ps = self.orphans[name] = ProcState(definition=ProcessDef(name=name), anchor=now)
        if ps.rank is not None:
            self.candidates.discard(ps.rank)
        ps.readiness = chain.readiness
        start = self._start(ps, now, ahead=chain)
        self._note(ps, "start", (), decisions)
        return start

    def _start(self, ps: ProcState, now: datetime, ahead: Chain | None = None) -> StartRun:
        r = ps.readiness
        assert r is not None
        d = ps.definition
        if ahead is not None:
            flight = self._new_flight(ps, ahead.plan, now, ahead.start.run_id)
        elif r.kind is StartKind.RETRY and r.retry is not None:
            flight = ps.retrying.pop(r.retry.run_id)
            flight.attempt += 1
            flight.retry_at = None
            flight.started = now
            flight.pool, flight.resources = d.pool, dict(d.resources)
        else:
            flight = self._new_flight(ps, next_run(ps, r, now), now, None)
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
            ahead=ahead is not None,
        )

    def _note(
        self, ps: ProcState, decision: str, reasons: tuple[Reason, ...], out: list[Decision]
    ) -> None:
        codes = logged_codes(decision, reasons)
        if decision == "start" or ps.logged != codes:
            ps.logged = codes
            out.append(make_decision(ps.name, decision, reasons))

    def _key_for(self, ps: ProcState, since: datetime) -> tuple[Any, ...]:
        saved = ps.ready_since
        ps.ready_since = since
        try:
            return rank_key(ps, self.registry.ranking)
        finally:
            ps.ready_since = saved


_LOGGED: dict[tuple[str, Code | None], tuple[str, tuple[Code, ...]]] = {}


def logged_codes(decision: str, reasons: tuple[Reason, ...]) -> tuple[str, tuple[Code, ...]]:
    """What ``ProcState.logged`` remembers of a decision: the decision and its reason codes.

    Shared tuples for the common shapes (no reason, one reason): a cold evaluation notes a
    decision per process, and each new tuple would be one more object for the collector."""
    if len(reasons) > 1:
        return (decision, tuple([r.code for r in reasons]))
    key = (decision, reasons[0].code if reasons else None)
    codes = _LOGGED.get(key)
    if codes is None:
        codes = _LOGGED[key] = (decision, (key[1],) if key[1] is not None else ())
    return codes


def starts_by_process(steps: Iterable[Step]) -> dict[str, int]:
    """How many runs each process started over ``steps`` (handy in tests and notebooks)."""
    counts: Counter[str] = Counter()
    for step in steps:
        counts.update(s.process for s in step.starts)
    return dict(counts)
