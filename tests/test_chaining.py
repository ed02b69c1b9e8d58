"""Chained dispatch in the core (``planner.core.chaining``): what is handed over ahead, when it is
withdrawn, and that chaining never changes a decision (simulated with and without it)."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.core.events import ChainKept, RegistryChanged, RunFinished, Step, TriggerRequested
from planner.core.planner import Planner
from planner.simulation.simulate import Outcome, simulate
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from tests.factories import at, finish, proc, registry, run_of, started
from tests.test_core_properties import START, UNTIL, registries


def chained(step: Step) -> list[tuple[str, str | None]]:
    return [(s.run_id, s.after) for s in step.chained]


def chain_of_three(**b: object) -> RegistryDef:
    return registry(proc("A"), proc("B", ancestors=["A"], **b), proc("C", ancestors=["B"]))


def test_a_successor_is_handed_over_ahead_and_starts_when_its_ancestor_succeeds() -> None:
    p = Planner(chain_of_three(), now=at(0))
    step = p.handle(at(0))
    assert started(step) == ["A"]
    assert chained(step) == [("B-1", "A-1")]
    assert p.chains() == [("B-1", "A-1")]
    (ahead,) = step.chained
    assert ahead.process == "B" and ahead.attempt == 1 and not ahead.ahead

    step = finish(p, "A", at(0, 5))
    (start,) = step.starts
    assert (start.run_id, start.ahead, start.decided_at) == ("B-1", True, at(0, 5))
    assert chained(step) == [("C-1", "B-1")]  # and the next link is handed over at once
    assert run_of(p, "B") == "B-1"
    assert p.in_flight == 1


def test_a_chain_outlives_steps_that_change_nothing_for_it() -> None:
    p = Planner(registry(proc("A"), proc("B", ancestors=["A"]), proc("X", hold=True)), now=at(0))
    p.handle(at(0))
    for minute in range(1, 4):
        step = p.handle(at(0, minute))
        assert (step.chained, step.withdrawn) == ((), ())
    assert p.chains() == [("B-1", "A-1")]


def test_an_ancestor_that_fails_withdraws_its_chain() -> None:
    p = Planner(chain_of_three(), now=at(0))
    p.handle(at(0))
    step = finish(p, "A", at(0, 5), RunStatus.FAILED)
    assert step.starts == () and step.withdrawn == ("B-1",)
    assert p.chains() == [] and p.in_flight == 0


def test_a_hold_withdraws_a_chain_before_it_starts() -> None:
    p = Planner(chain_of_three(), now=at(0))
    p.handle(at(0))
    step = p.handle(at(0, 1), RegistryChanged(registry=chain_of_three(hold=True)))
    assert step.withdrawn == ("B-1",) and step.chained == ()
    step = finish(p, "A", at(0, 5))
    assert step.starts == ()  # held: nothing starts in A's slot
    # released: B starts the ordinary way; the withdrawn B-1 left no record, and its number is
    # not used again (a remote scheduler may still know its key)
    step = p.handle(at(0, 6), RegistryChanged(registry=chain_of_three()))
    assert [(s.run_id, s.ahead) for s in step.starts] == [("B-2", False)]


def test_a_higher_ranked_arrival_withdraws_the_chain_and_takes_the_slot() -> None:
    base = [proc("A"), proc("B", ancestors=["A"])]
    p = Planner(registry(*base, slots=1), now=at(0))
    p.handle(at(0))
    assert p.chains() == [("B-1", "A-1")]
    urgent = registry(*base, proc("X", priority=5), slots=1)
    step = p.handle(at(0, 1), RegistryChanged(registry=urgent))
    assert step.withdrawn == ("B-1",)
    step = finish(p, "A", at(0, 5))
    assert started(step) == ["X"]


def test_a_waiting_candidate_that_ranks_first_is_not_overtaken() -> None:
    p = Planner(
        registry(proc("A"), proc("B", ancestors=["A"]), proc("W", priority=9, hold=True), slots=1),
        now=at(0),
    )
    p.handle(at(0))
    assert p.chains() == [("B-1", "A-1")]
    released = registry(proc("A"), proc("B", ancestors=["A"]), proc("W", priority=9), slots=1)
    step = p.handle(at(0, 1), RegistryChanged(registry=released))
    assert step.withdrawn == ("B-1",) and step.chained == ()  # W waits for A's slot, ranks first


def test_a_withdrawal_that_came_too_late_stands() -> None:
    p = Planner(chain_of_three(), now=at(0))
    p.handle(at(0))
    step = p.handle(at(0, 1), RegistryChanged(registry=chain_of_three(hold=True)))
    assert step.withdrawn == ("B-1",)
    # the driver: Dask had already begun B-1 (A had just ended); then A's end arrives
    step = p.handle(at(0, 1), ChainKept(run_id="B-1"))
    assert p.chains() == [("B-1", "A-1")]
    step = finish(p, "A", at(0, 1))
    assert [(s.run_id, s.ahead) for s in step.starts] == [("B-1", True)]


def test_too_late_after_the_ancestor_ended_starts_it_at_once() -> None:
    p = Planner(chain_of_three(), now=at(0))
    p.handle(at(0))
    a = run_of(p, "A")
    # A timed out on the planner's side, but its task still succeeded in Dask
    step = p.handle(at(0, 5), RunFinished(run_id=a, status=RunStatus.TIMED_OUT, at=at(0, 5)))
    assert step.withdrawn == ("B-1",)
    step = p.handle(at(0, 5), ChainKept(run_id="B-1"))
    assert [(s.run_id, s.ahead) for s in step.starts] == [("B-1", True)]
    assert p.in_flight == 1


def test_no_chain_for_pooled_or_reserved_successors() -> None:
    pooled = registry(proc("A"), proc("B", ancestors=["A"], pool="db"), pools={"db": 1})
    p = Planner(pooled, now=at(0))
    assert p.handle(at(0)).chained == ()
    reserved = registry(proc("A"), proc("B", ancestors=["A"]), proc("R", reserve=True, hold=True))
    p = Planner(reserved, now=at(0))
    assert p.handle(at(0)).chained == ()


def test_no_chain_when_another_ancestor_is_stale() -> None:
    reg = registry(proc("A"), proc("Z", hold=True), proc("B", ancestors=["A", "Z"]))
    p = Planner(reg, now=at(0))
    assert p.handle(at(0)).chained == ()


def test_a_change_of_the_successor_s_definition_withdraws_its_chain() -> None:
    p = Planner(chain_of_three(), now=at(0))
    p.handle(at(0))
    step = p.handle(at(0, 1), RegistryChanged(registry=chain_of_three(timeout=60)))
    assert step.withdrawn == ("B-1",)  # what Dask holds runs the old definition
    assert chained(step) == []  # not in the step that withdrew it (a late report may follow)
    step = p.handle(at(0, 2))
    assert chained(step) == [("B-2", "A-1")]


def test_a_trigger_for_the_successor_changes_its_params_and_re_chains_it() -> None:
    p = Planner(chain_of_three(), now=at(0))
    p.handle(at(0))
    request = TriggerRequested(process="B", at=at(0, 1), params={"day": 2}, request_id=7)
    step = p.handle(at(0, 1), request)
    # the run handed over carried other params: withdrawn; the trigger waits for A like B does
    assert step.withdrawn == ("B-1",)
    step = finish(p, "A", at(0, 5))
    (start,) = step.starts
    assert start.process == "B" and dict(start.params) == {"day": 2} and start.request_id == 7


# -- chaining changes no decision ------------------------------------------------------------------


@st.composite
def outcomes(draw: st.DrawFn, reg: RegistryDef) -> dict[str, Outcome]:
    # durations at microsecond resolution from a seeded generator: no two runs end at the
    # same instant (simultaneous ends are where a chain may break a tie differently)
    rng = random.Random(draw(st.integers(0, 2**32)))
    statuses = [RunStatus.SUCCEEDED] * 4 + [RunStatus.FAILED]
    return {
        name: Outcome(
            duration=timedelta(microseconds=rng.randrange(60_000_000, 3 * 3_600_000_000)),
            status=draw(st.sampled_from(statuses)),
        )
        for name in reg.processes
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_simulated_decisions_are_the_same_with_and_without_chaining(data: st.DataObject) -> None:
    reg = data.draw(registries())
    ends = data.draw(outcomes(reg))
    runs = {}
    for chaining in (False, True):
        sim = simulate(reg, start=START, until=UNTIL, outcomes=ends, chaining=chaining)
        runs[chaining] = [(r.process, r.attempt, r.start, r.end, r.status) for r in sim.runs]
    assert runs[True] == runs[False]


def test_chaining_happens_in_the_simulations_too() -> None:
    """The property above is not vacuous: chained runs are made and started in simulations."""
    reg = registry(*[proc(f"s{i}", ancestors=[f"s{i - 1}"] if i else []) for i in range(5)])
    p = Planner(reg, now=START)
    step = p.handle(START)
    aheads = 0
    now = START
    while step.starts or step.chained:
        aheads += sum(s.ahead for s in step.starts)
        now += timedelta(minutes=1)
        (running,) = [name for name, ps in p.states.items() if ps.flights]
        step = finish(p, running, now)
    assert aheads == 4


def test_the_run_summary_counts_chained_starts() -> None:
    from rich.console import Console

    from planner.interfaces.terminal import FinishedAttempt, RunReport, run_summary_view

    report = RunReport(
        attempts=tuple(
            FinishedAttempt(process=p, run_id=f"{p}-1", attempt=1, status="succeeded") for p in "ab"
        ),
        started=2,
        ahead=1,
    )
    console = Console(width=80, record=True)
    console.print(run_summary_view(report))
    assert "2 attempts started (1 handed to Dask ahead); 2 finished: 2 succeeded" in (
        console.export_text()
    )
