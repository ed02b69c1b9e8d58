"""What the core does differently when it works over a whole large registry, and only then.

- ``make_reason`` / ``make_decision`` build what the dataclasses' constructors build;
- the cyclic garbage collector is paused for bulk work (a new registry, a cold evaluation, a
  dry run), left alone for a step after one completion, and never enabled by the core when the
  driver disabled it;
- a cold evaluation and a dry run give, process for process, what each evaluated alone gives.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from datetime import timedelta

import pytest

from benchmarks.generate import layered_dag
from planner.core import collector
from planner.core.events import (
    CAPACITY_CODES,
    Code,
    Decision,
    Reason,
    RunFinished,
    make_decision,
    make_reason,
)
from planner.core.planner import Planner
from planner.core.readiness import evaluate_rules
from planner.core.state import DURATIONS_KEPT, ProcState
from registry.lifecycle import RunStatus
from tests.factories import at, proc, registry, run_of

# -- building decisions in bulk ------------------------------------------------------------------


def test_the_bulk_constructors_build_what_the_dataclasses_build() -> None:
    # they set the fields by name: a field added to either class must be added to them too
    assert [f.name for f in dataclasses.fields(Reason)] == ["code", "detail"]
    assert [f.name for f in dataclasses.fields(Decision)] == ["process", "decision", "reasons"]
    reason = make_reason(Code.ANCESTORS, "a (running)")
    assert reason == Reason(Code.ANCESTORS, "a (running)")
    assert hash(reason) == hash(Reason(Code.ANCESTORS, "a (running)"))
    assert repr(reason) == repr(Reason(Code.ANCESTORS, "a (running)"))
    made = make_decision("p", "wait", (reason,))
    assert made == Decision(process="p", decision="wait", reasons=(reason,))
    assert make_decision("p", "start") == Decision(process="p", decision="start")
    assert made.as_json() == Decision(process="p", decision="wait", reasons=(reason,)).as_json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.process = "q"  # type: ignore[misc]


# -- the collector -------------------------------------------------------------------------------


class _Pauses:
    """Whether the collector was enabled at each readiness evaluation."""

    def __init__(self) -> None:
        self.enabled: list[bool] = []


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Pauses]:
    seen = _Pauses()
    real = Planner._plain_reasons

    def spy(self: Planner, ps: ProcState) -> tuple[Reason, ...] | None:
        seen.enabled.append(gc.isenabled())
        return real(self, ps)

    monkeypatch.setattr(Planner, "_plain_reasons", spy)
    was = gc.isenabled()
    yield seen
    if was:
        gc.enable()


def test_bulk_work_pauses_the_collector_and_a_completion_does_not(watch: _Pauses) -> None:
    reg, _ = layered_dag(collector.BULK + 200, seed=1)
    gc.enable()
    p = Planner(reg, now=at(0), slots=2)
    assert gc.isenabled()
    step = p.handle(at(0))  # a cold evaluation: every process
    assert watch.enabled and not any(watch.enabled) and gc.isenabled()
    watch.enabled.clear()
    p.plan(at(0))
    assert gc.isenabled()  # (after a handle, plan reuses the evaluations that still hold)
    watch.enabled.clear()
    first = step.starts[0]
    p.handle(at(1), RunFinished(run_id=first.run_id, status=RunStatus.SUCCEEDED, at=at(1)))
    assert watch.enabled and all(watch.enabled)  # a few processes: the collector as ever


def test_the_core_never_enables_a_collector_the_driver_disabled(watch: _Pauses) -> None:
    reg, _ = layered_dag(collector.BULK + 200, seed=1)
    gc.disable()
    p = Planner(reg, now=at(0), slots=2)
    p.handle(at(0))
    p.plan(at(0))
    assert not gc.isenabled()


def test_the_collector_is_enabled_again_when_bulk_work_fails() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector.paused_for(collector.BULK):
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    with collector.paused_for(collector.BULK - 1):
        assert gc.isenabled()


# -- the cold paths give what each rule gives ----------------------------------------------------


def test_a_cold_evaluation_and_a_dry_run_give_what_every_rule_gives() -> None:
    reg, _ = layered_dag(collector.BULK + 500, seed=2, pooled_priority=3)
    reference = Planner(reg, now=at(0), slots=4)
    rules = {
        name: evaluate_rules(ps, at(0), reference.states, tz=reference.tz, online_since=at(0))
        for name, ps in reference.states.items()
    }
    dry = Planner(reg, now=at(0), slots=4).plan(at(0))  # nothing evaluated before
    step = Planner(reg, now=at(0), slots=4).handle(at(0))
    first: dict[str, Decision] = {}  # (a started process is evaluated again: max_active)
    for d in step.decisions:
        first.setdefault(d.process, d)
    for decisions in (dry, list(first.values())):
        for d in decisions:
            if rules[d.process].reasons:
                assert d.decision == "wait" and d.reasons == rules[d.process].reasons, d.process
            else:  # a candidate: started, or held back by capacity
                assert d.decision == "start" or d.reasons[0].code in CAPACITY_CODES, d.process
    assert {d.process for d in dry} == set(rules) == set(first)
    assert {d.process for d in dry if d.decision == "start"} == {s.process for s in step.starts}


# -- durations -----------------------------------------------------------------------------------


def test_the_last_durations_are_kept() -> None:
    p = Planner(registry(proc("P", every=timedelta(minutes=1)), slots=1), now=at(0))
    p.handle(at(0))
    for minute in range(1, DURATIONS_KEPT + 6):
        when = at(0, minute)
        run = run_of(p, "P")
        p.handle(when, RunFinished(run_id=run, status=RunStatus.SUCCEEDED, at=when))
    ps = p.states["P"]
    assert len(ps.durations) == DURATIONS_KEPT
    assert ps.durations == [60.0] * DURATIONS_KEPT
    ps.add_duration(5.0)
    assert len(ps.durations) == DURATIONS_KEPT and ps.durations[-1] == 5.0
