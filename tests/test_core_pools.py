"""Candidates grouped by capacity needs, and cheap cold evaluation: the same decisions as before.

``ReferencePlanner`` keeps the straightforward algorithms the core had before the groups: the
allocation walks the whole sorted candidate list best-first, asking capacity about each
candidate; every evaluation runs each readiness rule (no shortcut for plain single processes);
``plan`` evaluates every process again. The properties drive it and the real ``Planner`` in
lockstep over random registries with pools, Dask resources, priorities, reservations, recurrent
processes and hot changes, and compare every step, the queue (each candidate's reasons) and the
dry run. The unit tests check that a full pool's candidates are not visited, and that their
reasons stay what a visit would give.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.generate import layered_dag
from planner.core.events import (
    CapacityChanged,
    Code,
    Decision,
    Event,
    Reason,
    RegistryChanged,
    RunFinished,
    StartRun,
    TriggerRequested,
)
from planner.core.planner import Planner
from planner.core.readiness import evaluate, evaluate_rules
from planner.core.state import ProcState, Readiness
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from tests.factories import at, finish, proc, reasons_of, registry, started

START = at(0)
UNTIL = at(12)
RESOURCES: list[dict[str, float]] = [{}, {}, {"gpu": 1}, {"mem": 2}, {"gpu": 1, "mem": 1}]
WORKERS: list[tuple[dict[str, float], ...] | None] = [
    None,
    ({"gpu": 1, "mem": 4},),
    ({"mem": 2}, {"gpu": 2, "mem": 1}),
    ({"mem": 1},),
]
STATUSES = [RunStatus.SUCCEEDED] * 5 + [RunStatus.FAILED]


class ReferencePlanner(Planner):
    """The core with its former, straightforward candidate walk, evaluation and dry run."""

    def _evaluate(self, ps: ProcState, now: datetime) -> Readiness:
        if ps.schedule is not None and not ps.next_fire_valid:
            ps.next_fire = ps.schedule.first_after(ps.last_fire)
            ps.next_fire_valid = True
        return evaluate_rules(ps, now, self.states, tz=self.tz, online_since=self.online_since)

    def _reevaluate(self, now: datetime, decisions: list[Decision]) -> list[ProcState]:
        fresh: list[ProcState] = []
        dirty, self.dirty = self.dirty, set()
        for name in sorted(dirty):
            ps = self.states.get(name)
            if ps is None:
                continue
            r = self._evaluate(ps, now)
            ps.readiness = r
            ps.reasons = r.reasons
            ps.check_version += 1
            if r.next_check is not None:
                heapq.heappush(self.wakeups, (r.next_check, ps.check_version, name))
            if r.candidate:
                if not ps.candidate:
                    ps.candidate = True
                    ps.ready_since = ps.ready_since or now
                fresh.append(ps)
                key = self._rank(ps)
                if key != ps.rank:
                    if ps.rank is not None:
                        self.candidates.discard(ps.rank)
                    ps.rank = key
                    self.candidates.add(key)
            else:
                if ps.rank is not None:
                    self.candidates.discard(ps.rank)
                ps.rank, ps.candidate, ps.ready_since, ps.alarmed = None, False, None, False
                self._note_plain(ps, "wait", r.reasons, decisions)
        return fresh

    def _rank(self, ps: ProcState) -> tuple[Any, ...]:
        from planner.core.ranking import rank_key

        return rank_key(ps, self.registry.ranking)

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
                    self._hold_back(ps, blocker, decisions)
                    i += 1
                    continue
                self.candidates.remove(key)
                starts.append(self._start(ps, now))
                self._note_plain(ps, "start", (), decisions)
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
        ps.reasons = (reason,)
        self._note_plain(ps, "wait", (reason,), decisions)
        if ps.definition.recurrent and not ps.alarmed:
            ps.alarmed = True
            if ps.rank is not None:
                self.candidates.discard(ps.rank)
                ps.rank = self._rank(ps)
                self.candidates.add(ps.rank)

    def _note_plain(
        self, ps: ProcState, decision: str, reasons: tuple[Reason, ...], out: list[Decision]
    ) -> None:
        codes = (decision, tuple(r.code for r in reasons))
        if decision == "start" or ps.logged != codes:
            ps.logged = codes
            out.append(Decision(process=ps.name, decision=decision, reasons=reasons))

    def plan(self, now: datetime) -> list[Decision]:
        evaluations = {name: self._evaluate(ps, now) for name, ps in self.states.items()}
        ranked: list[tuple[tuple[Any, ...], ProcState]] = []
        waits: list[Decision] = []
        for name, ps in self.states.items():
            r = evaluations[name]
            if r.candidate:
                ranked.append((self._key_for(ps, ps.ready_since or now), ps))
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
                pool, resources = ps.definition.pool, ps.definition.resources
                if pool is not None:
                    pool_use[pool] += 1
                resource_use.update(resources)
                holds = [h for h in holds if h.process != ps.name]
                if holds:
                    busy.append(ps.estimated_end(now, now))
            else:
                out.append(Decision(process=ps.name, decision="wait", reasons=(blocker,)))
        return out + sorted(waits, key=lambda d: d.process)


# -- random registries ---------------------------------------------------------------------------


@st.composite
def process_defs(draw: st.DrawFn, index: int, pools: list[str]) -> ProcessDef:
    fields: dict[str, Any] = {}
    earlier = [f"p{i:02}" for i in range(index)]
    if earlier and draw(st.booleans()):
        fields["ancestors"] = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        fields["every"] = timedelta(minutes=draw(st.sampled_from([20, 45, 90])))
    elif draw(st.booleans()):
        fields["refresh_window"] = timedelta(minutes=draw(st.sampled_from([10, 60])))
    if pools and draw(st.integers(0, 2)) > 0:
        fields["pool"] = draw(st.sampled_from(pools))
    fields["resources"] = draw(st.sampled_from(RESOURCES))
    fields["priority"] = draw(st.integers(0, 3))
    fields["max_active"] = draw(st.integers(1, 2))
    fields["retries"] = draw(st.integers(0, 1))
    if draw(st.booleans()):
        fields["expected_duration"] = timedelta(minutes=draw(st.integers(1, 60)))
    fields["reserve"] = draw(st.integers(0, 6)) == 0
    return proc(f"p{index:02}", **fields)


@st.composite
def registries(draw: st.DrawFn) -> RegistryDef:
    pools = draw(st.dictionaries(st.sampled_from(["wh", "io", "db"]), st.integers(1, 2)))
    n = draw(st.integers(3, 14))
    defs = [draw(process_defs(i, sorted(pools))) for i in range(n)]
    return registry(*defs, slots=draw(st.integers(1, 4)), pools=pools)


OPS = ["trigger", "force", "hold", "release", "priority", "pool", "workers", "slots", "cancel"]


def _op(kind: str, target: int, value: int, p: Planner, now: datetime) -> list[Event]:
    reg = p.registry
    names = sorted(reg.processes)
    name = names[target % len(names)]
    if kind in ("trigger", "force"):
        return [TriggerRequested(process=name, at=now, force=kind == "force", request_id=value)]
    if kind == "cancel":
        runs = sorted(f.run_id for _, f in p.flights())
        if not runs:
            return []
        return [RunFinished(run_id=runs[target % len(runs)], status=RunStatus.CANCELLED, at=now)]
    if kind == "workers":
        return [CapacityChanged(threads=4, resources=WORKERS[value % len(WORKERS)])]
    if kind == "slots":
        return [RegistryChanged(registry=replace(reg, slots=value % 4 + 1))]
    if kind == "pool":  # resize a pool: a smaller one changes its full members' reason
        if not reg.pools:
            return []
        pool = sorted(reg.pools)[target % len(reg.pools)]
        return [RegistryChanged(registry=replace(reg, pools={**reg.pools, pool: value % 3 + 1}))]
    d = reg.processes[name]
    if kind == "hold":
        d = replace(d, hold=True)
    elif kind == "release":
        d = replace(d, hold=False)
    else:
        d = replace(d, priority=value % 4)
    return [RegistryChanged(registry=replace(reg, processes={**reg.processes, name: d}))]


def drive(
    planner_class: type[Planner],
    reg: RegistryDef,
    workers: tuple[dict[str, float], ...] | None,
    outcomes: list[tuple[int, RunStatus]],
    script: list[tuple[int, str, int, int]],
    *,
    apart: bool = False,
) -> list[Any]:
    """Run a core from START to UNTIL on a virtual clock; what it said at every step.
    ``apart``: no two events at the same instant (an end a microsecond later if it would meet
    another; the script's operations half a minute off the whole minutes runs end on)."""
    p = planner_class(reg, now=START, resources=workers)
    todo = sorted(script)

    def at_minute(minute: int) -> datetime:  # apart: operations half a minute off any end
        return START + timedelta(minutes=minute, seconds=30 if apart else 0)

    finishing: list[tuple[datetime, int, str, RunStatus]] = []
    ends: set[datetime] = set()
    log: list[Any] = []
    now, events, seq = START, list[Event](), 0
    while True:
        step = p.handle(now, *events)
        log.append((step, p.queue(), p.plan(now)))
        names = sorted(p.states)
        if names:
            log.append(p.explain(names[seq % len(names)], now))
        for s in step.starts:
            minutes, status = outcomes[seq % len(outcomes)]
            seq += 1
            end = now + timedelta(minutes=minutes)
            while apart and end in ends:
                end += timedelta(microseconds=1)
            ends.add(end)
            heapq.heappush(finishing, (end, seq, s.run_id, status))
        times = [t for t in (step.next_wakeup, finishing[0][0] if finishing else None) if t]
        if todo:
            times.append(at_minute(todo[0][0]))
        if not times or min(times) > UNTIL:
            return log
        now, events = min(times), []
        while finishing and finishing[0][0] <= now:
            end, _, run_id, status = heapq.heappop(finishing)
            events.append(RunFinished(run_id=run_id, status=status, at=end))
        while todo and at_minute(todo[0][0]) <= now:
            _, kind, target, value = todo.pop(0)
            events += _op(kind, target, value, p, now)


SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(data=st.data())
def test_grouped_allocation_decides_as_the_plain_walk(data: st.DataObject) -> None:
    reg = data.draw(registries())
    workers = data.draw(st.sampled_from(WORKERS))
    outcomes = data.draw(
        st.lists(st.tuples(st.integers(1, 90), st.sampled_from(STATUSES)), min_size=1)
    )
    script = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 12 * 60), st.sampled_from(OPS), st.integers(0, 20), st.integers()
            ),
            max_size=10,
        )
    )
    expected = drive(ReferencePlanner, reg, workers, outcomes, script)
    assert drive(Planner, reg, workers, outcomes, script) == expected


def test_wide_pooled_first_decides_as_the_plain_walk() -> None:
    # the benchmark's worst case, small: full pools park their candidates at the list's head
    reg, _ = layered_dag(240, seed=3, layers=4, pooled_priority=10, pool_size=1)
    outcomes = [(m, RunStatus.SUCCEEDED) for m in (7, 3, 11, 5, 2)] + [(4, RunStatus.FAILED)]
    reg = replace(reg, slots=3)
    expected = drive(ReferencePlanner, reg, None, outcomes, [])
    assert drive(Planner, reg, None, outcomes, []) == expected


# -- evaluation ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(reg=registries(), minutes=st.integers(0, 600))
def test_the_evaluation_shortcut_agrees_with_every_rule(reg: RegistryDef, minutes: int) -> None:
    p = Planner(reg, now=START)
    now = START + timedelta(minutes=minutes)
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    for status in statuses:
        step = p.handle(now)
        for name, ps in p.states.items():
            fast = evaluate(ps, now, p.states, tz=p.tz, online_since=p.online_since)
            full = evaluate_rules(ps, now, p.states, tz=p.tz, online_since=p.online_since)
            assert fast == full, name
        if not step.starts:
            break
        run = step.starts[0]
        now += timedelta(minutes=7)
        p.handle(now, RunFinished(run_id=run.run_id, status=status, at=now))


def test_plan_after_handle_reuses_evaluations_only_while_they_hold() -> None:
    # B waits on A; A starts in the same step, after B was evaluated: plan must not say
    # "never succeeded" for A from B's evaluation — A's later evaluation invalidates it
    reg = registry(
        proc("A", priority=1),
        proc("B", ancestors=["A"]),
        proc("C"),
        proc("D", not_before=at(0, 10), priority=2),
        slots=1,
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == ["A"]
    assert p.plan(at(0)) == _reference_plan(p, at(0))
    planned = {d.process: d for d in p.plan(at(0))}
    assert planned["B"].reasons == (Reason(Code.ANCESTORS, "A (running)"),)
    assert planned["C"].reasons == (Reason(Code.SLOTS, "all 1 slots busy"),)
    assert planned["D"].reasons[0].code is Code.NOT_BEFORE
    # A failed, and D's not_before passed (no handle since): the same as a full evaluation
    finish(p, "A", at(0, 5), RunStatus.FAILED)
    later = at(0, 20)
    assert p.plan(later) == _reference_plan(p, later)
    planned = {d.process: d for d in p.plan(later)}
    assert planned["B"].reasons == (Reason(Code.ANCESTORS, "A (failed)"),)
    assert planned["D"].reasons == (Reason(Code.SLOTS, "all 1 slots busy"),)  # C took it


def _reference_plan(p: Planner, now: datetime) -> list[Decision]:
    return ReferencePlanner.plan(p, now)


# -- full pools ----------------------------------------------------------------------------------


class CountingPlanner(Planner):
    """The real core, counting the candidates the allocation asks capacity about."""

    asked = 0

    def _blocker(self, ps: ProcState, *args: Any) -> Reason | None:
        self.asked += 1
        return super()._blocker(ps, *args)


def _pooled_first(n: int) -> RegistryDef:
    pooled = [proc(f"w{i:03}", pool="wh", priority=5) for i in range(n)]
    free = [proc(f"f{i:03}", expected_duration=60) for i in range(n)]
    return registry(*pooled, *free, slots=3, pools={"wh": 1})


def test_a_full_pools_candidates_are_not_walked() -> None:
    p = CountingPlanner(_pooled_first(300), now=at(0))
    assert started(p.handle(at(0))) == ["w000", "f000", "f001"]
    assert reasons_of(p, "w299") == {"pool": "pool 'wh': 1 of 1 in use"}
    p.asked = 0
    step = finish(p, "f000", at(0, 1))
    assert started(step) == ["f002"]
    assert p.asked <= 2  # not the 299 waiting for the pool ranked before f002
    assert Decision(process="f002", decision="start") in step.decisions
    assert not [d for d in step.decisions if d.process.startswith("w")]  # nothing changed
    assert reasons_of(p, "w150") == {"pool": "pool 'wh': 1 of 1 in use"}
    # the pool frees: its best member starts, the others stay held back by it
    step = finish(p, "w000", at(0, 2))
    assert started(step) == ["w001"]
    assert reasons_of(p, "w299") == {"pool": "pool 'wh': 1 of 1 in use"}


def test_a_new_candidate_of_a_full_pool_is_held_back_with_its_reason() -> None:
    reg = registry(
        proc("a", pool="wh"),
        proc("b", pool="wh", priority=9, ancestors=["z"]),
        proc("z"),
        proc("f", expected_duration=60),
        slots=3,
        pools={"wh": 1},
    )
    p = Planner(reg, now=at(0))
    assert sorted(started(p.handle(at(0)))) == ["a", "f", "z"]
    step = finish(p, "z", at(0, 1))
    assert started(step) == []
    full = (Reason(Code.POOL, "pool 'wh': 1 of 1 in use"),)
    assert Decision(process="b", decision="wait", reasons=full) in step.decisions


def test_a_changed_pool_reason_reaches_every_member() -> None:
    # two running in a pool of 2, then the pool shrinks to 1: "2 of 1" for all that wait
    reg = registry(*[proc(f"w{i}", pool="wh") for i in range(6)], slots=4, pools={"wh": 2})
    p = Planner(reg, now=at(0))
    ref = ReferencePlanner(reg, now=at(0))
    assert p.handle(at(0)) == ref.handle(at(0))
    smaller = replace(reg, pools={"wh": 1})
    assert p.handle(at(0, 1), RegistryChanged(registry=smaller)) == ref.handle(
        at(0, 1), RegistryChanged(registry=smaller)
    )
    assert p.queue() == ref.queue()
    assert reasons_of(p, "w5") == {"pool": "pool 'wh': 2 of 1 in use"}


def test_resources_then_pool_within_one_round() -> None:
    # gpu work does not fit; later in the same round the pool fills: the walk gives each the
    # reason of its moment, as the plain walk does
    workers = ({"gpu": 0.5},)
    reg = registry(
        proc("g1", pool="wh", resources={"gpu": 1}, priority=9),
        proc("c1", pool="wh", priority=5),
        proc("g2", pool="wh", resources={"gpu": 1}, priority=1),
        slots=3,
        pools={"wh": 1},
    )
    p = Planner(reg, now=at(0), resources=workers)
    ref = ReferencePlanner(reg, now=at(0), resources=workers)
    step = p.handle(at(0))
    assert step == ref.handle(at(0))
    assert started(step) == ["c1"]
    waits = [(d.process, d.reasons[0].code) for d in step.decisions if d.decision == "wait"]
    # first round: g1 before c1 started, g2 after; the next round (c1 again) finds the pool full
    assert waits[:2] == [("g1", Code.RESOURCES), ("g2", Code.POOL)]
    assert reasons_of(p, "g1") == {"pool": "pool 'wh': 1 of 1 in use"}
    assert p.queue() == ref.queue()
