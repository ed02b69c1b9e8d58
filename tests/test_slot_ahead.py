"""Slot-ahead dispatch in the core (``planner.core.slot_ahead``): with every slot busy, the best
waiting run is handed over for the next slot to free; it starts at the next end, however that
run ends; what would make another decision withdraws it; and it never changes a decision."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.core.events import CapacityChanged, ChainKept, RegistryChanged, Step
from planner.core.planner import Planner
from planner.simulation.simulate import Outcome, simulate
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from tests.factories import at, finish, proc, registry, started
from tests.test_core_pools import OPS, drive


def two_busy(**w: Any) -> RegistryDef:
    """Two slots, both taken by A and B; W waits for one."""
    return registry(
        proc("A", priority=3), proc("B", priority=2), proc("W", priority=1, **w), slots=2
    )


def ahead(step: Step) -> list[tuple[str, str | None]]:
    return [(s.run_id, s.after) for s in step.chained]


def test_the_best_waiting_run_is_handed_over_and_starts_at_the_next_end() -> None:
    p = Planner(two_busy(), now=at(0), slot_ahead=True)
    step = p.handle(at(0))
    assert started(step) == ["A", "B"]
    assert ahead(step) == [("W-1", None)]
    assert p.chains() == [("W-1", "")]
    step = finish(p, "B", at(0, 5), RunStatus.FAILED)  # whichever run ends, however it ends
    assert [(s.run_id, s.ahead) for s in step.starts] == [("W-1", True)]
    assert p.chains() == [] and p.in_flight == 2


def test_only_where_dask_cannot_run_more_at_once_than_the_slots() -> None:
    assert Planner(two_busy(), now=at(0)).handle(at(0)).chained == ()  # the driver did not say
    # the driver's own cluster: no more threads than slots, or Dask would start it at once
    for threads in (4, 1):  # more: Dask would start it at once; fewer: runs wait in Dask
        p = Planner(two_busy(), now=at(0), slot_ahead=True, threads=threads)
        assert p.handle(at(0)).chained == ()
    p = Planner(two_busy(), now=at(0), slot_ahead=True, threads=2)
    assert ahead(p.handle(at(0))) == [("W-1", None)]
    # a worker joins: more threads than slots withdraws it
    step = p.handle(at(0, 1), CapacityChanged(threads=3, resources=({},)))
    assert step.withdrawn == ("W-1",)


def test_not_while_a_slot_is_free() -> None:
    p = Planner(two_busy(hold=True), now=at(0), slot_ahead=True)
    assert p.handle(at(0)).chained == ()  # W held: nothing waits
    p = Planner(registry(proc("A"), proc("W", hold=True), slots=2), now=at(0), slot_ahead=True)
    assert p.handle(at(0)).chained == ()


def test_a_hold_withdraws_it() -> None:
    p = Planner(two_busy(), now=at(0), slot_ahead=True)
    p.handle(at(0))
    step = p.handle(at(0, 1), RegistryChanged(registry=two_busy(hold=True)))
    assert step.withdrawn == ("W-1",) and step.chained == ()
    assert finish(p, "A", at(0, 5)).starts == ()


def test_a_higher_ranked_arrival_withdraws_it_and_takes_the_slot() -> None:
    p = Planner(two_busy(), now=at(0), slot_ahead=True)
    p.handle(at(0))
    urgent = replace(two_busy(), processes={**two_busy().processes, "X": proc("X", priority=9)})
    step = p.handle(at(0, 1), RegistryChanged(registry=urgent))
    assert step.withdrawn == ("W-1",) and step.chained == ()  # W-1 may yet be reported kept
    step = p.handle(at(0, 2))
    assert ahead(step) == [("X-1", None)]  # then the new best is handed over instead
    step = finish(p, "A", at(0, 5))
    assert [(s.process, s.ahead) for s in step.starts] == [("X", True)]


def test_not_when_an_end_could_bring_a_rival_that_ranks_first() -> None:
    # S waits for A alone and outranks W: A's success would make S the best candidate
    reg = registry(
        proc("A", priority=3),
        proc("B", priority=2),
        proc("S", priority=5, ancestors=["A"]),
        proc("W", priority=1),
        slots=2,
    )
    p = Planner(reg, now=at(0), slot_ahead=True)
    step = p.handle(at(0))
    assert started(step) == ["A", "B"]
    assert ahead(step) == [("S-1", "A-1")]  # S is chained behind A; W is not handed over
    # a pooled successor is not chained, but it would take A's slot all the same
    reg = registry(
        proc("A", priority=3),
        proc("B", priority=2),
        proc("S", priority=5, ancestors=["A"], pool="io"),
        proc("W", priority=1),
        slots=2,
        pools={"io": 1},
    )
    assert Planner(reg, now=at(0), slot_ahead=True).handle(at(0)).chained == ()
    # a retry at once would compete too
    reg = registry(proc("A", priority=3, retries=1), proc("W", priority=1), slots=1)
    assert Planner(reg, now=at(0), slot_ahead=True).handle(at(0)).chained == ()
    reg = registry(proc("A", priority=3, retries=1, retry_delay=60), proc("W"), slots=1)
    assert ahead(Planner(reg, now=at(0), slot_ahead=True).handle(at(0))) == [("W-1", None)]


def test_a_withdrawal_that_came_too_late_stands_until_the_next_end() -> None:
    p = Planner(two_busy(), now=at(0), slot_ahead=True)
    p.handle(at(0))
    p.handle(at(0, 1), RegistryChanged(registry=two_busy(hold=True)))
    # the driver: Dask had begun W-1 (a thread freed), the end is on its way
    step = p.handle(at(0, 1), ChainKept(run_id="W-1"))
    assert step.starts == () and p.chains() == [("W-1", "")]
    step = finish(p, "A", at(0, 2))
    assert [(s.run_id, s.ahead) for s in step.starts] == [("W-1", True)]


def test_more_slots_start_the_run_handed_over_not_a_second_one() -> None:
    p = Planner(two_busy(), now=at(0), slot_ahead=True)
    p.handle(at(0))
    step = p.handle(at(0, 1), RegistryChanged(registry=replace(two_busy(), slots=3)))
    assert [(s.run_id, s.ahead) for s in step.starts] == [("W-1", True)]
    assert step.withdrawn == ()


def test_a_driver_that_stops_withdraws_it() -> None:
    p = Planner(two_busy(), now=at(0), slot_ahead=True)
    p.handle(at(0))
    step = p.settle(at(0, 1))
    assert step.withdrawn == ("W-1",) and step.starts == ()


# -- it changes no decision ------------------------------------------------------------------------


def layered(seed: int, n: int, slots: int, *, pooled: bool = True) -> RegistryDef:
    """A small layered DAG like the benchmark's: each job after one to three of the layer above."""
    rng = random.Random(seed)
    layers = [list(range(i, min(i + 4, n))) for i in range(0, n, 4)]
    procs = []
    for depth, layer in enumerate(layers):
        for j in layer:
            above = layers[depth - 1] if depth else []
            ancestors = rng.sample(above, k=min(len(above), rng.randint(1, 3))) if above else []
            extra: dict[str, Any] = {"priority": rng.randint(0, 2)}
            if rng.random() < 0.2:
                extra["retries"] = 1
                extra["retry_delay"] = rng.choice([0, 30])
            if pooled and rng.random() < 0.25:  # never handed over for a slot; may be a rival
                extra["pool"] = "io"
            procs.append(proc(f"p{j:02}", ancestors=[f"p{a:02}" for a in ancestors], **extra))
    return registry(*procs, slots=slots, pools={"io": 1 + seed % 2})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), n=st.integers(4, 24), slots=st.integers(1, 4))
def test_simulated_dags_run_the_same_with_it(seed: int, n: int, slots: int) -> None:
    reg = layered(seed, n, slots)
    rng = random.Random(seed)
    # microsecond durations: no two runs end at the same instant
    ends = {
        name: Outcome(
            duration=timedelta(microseconds=rng.randrange(1_000_000, 90_000_000)),
            status=rng.choice([RunStatus.SUCCEEDED] * 5 + [RunStatus.FAILED]),
        )
        for name in reg.processes
    }
    runs = {}
    start, until = at(0), at(6)
    for chaining in (False, True):
        sim = simulate(reg, start=start, until=until, outcomes=ends, chaining=chaining)
        runs[chaining] = [(r.process, r.attempt, r.start, r.end, r.status) for r in sim.runs]
    assert runs[True] == runs[False]


def test_the_benchmark_dag_starts_nearly_every_run_ahead() -> None:
    """The property above is not vacuous: on a busy DAG most starts are handed over ahead."""
    reg = layered(0, 60, 3, pooled=False)
    p = Planner(reg, now=at(0), slot_ahead=True)
    step, now, total, aheads = p.handle(at(0)), at(0), 0, 0
    while p.in_flight:
        total += len(step.starts)
        aheads += sum(s.ahead for s in step.starts)
        now += timedelta(seconds=7)
        running = sorted((f.started, f.run_id, n) for n, f in p.flights())
        step = finish(p, running[0][2], now)
    assert total == 60 and aheads >= 30


class _SlotAheadPlanner(Planner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, slot_ahead=True, **kwargs)


class _PlainPlanner(Planner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, chaining=False, **kwargs)


def _starts(log: list[Any]) -> list[Any]:
    """What a driven core started when, and what it planned: not the run ids, nor the reasons'
    details that name them (a withdrawn run's number is not given back)."""
    out = []
    for entry in log:
        if isinstance(entry, tuple):
            step, _queue, plan = entry
            said = [(d.process, d.decision, [r.code for r in d.reasons]) for d in plan]
            out.append((sorted((s.process, s.attempt) for s in step.starts), step.at, said))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_holds_cancels_and_registry_changes_change_no_decision(data: st.DataObject) -> None:
    reg = layered(data.draw(st.integers(0, 2**32)), data.draw(st.integers(4, 16)), 2)
    outcomes = data.draw(
        st.lists(
            st.tuples(st.integers(1, 90), st.sampled_from([RunStatus.SUCCEEDED, RunStatus.FAILED])),
            min_size=1,
        )
    )
    script = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 6 * 60),
                st.sampled_from([op for op in OPS if op != "workers"]),
                st.integers(0, 20),
                st.integers(),
            ),
            max_size=8,
        )
    )
    # runs end apart: two ends at one instant are where a run handed over ahead may break a
    # tie otherwise (live, ends are never simultaneous: Dask starts it at the first)
    expected = _starts(drive(_PlainPlanner, reg, None, outcomes, script, apart=True))
    assert _starts(drive(_SlotAheadPlanner, reg, None, outcomes, script, apart=True)) == expected
