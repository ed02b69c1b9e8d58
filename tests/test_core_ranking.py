"""Ranking: which candidates are the best ones, for the ADP default order and ``ranking: priority``.

First ``rank_key`` alone, on hand-made process states; then the same order seen through the core:
with one free slot, the best candidate is the one that starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from planner.core.events import RegistryChanged
from planner.core.planner import Planner
from planner.core.ranking import ALARMED, RECURRENT, SINGLE, process_class, rank_key
from planner.core.state import ProcState
from registry.model import ProcessDef, Ranking
from tests.factories import T0, at, finish, proc, registry, started

H = timedelta(hours=1)


def state(
    definition: ProcessDef,
    *,
    since: datetime = T0,
    alarmed: bool = False,
    critical_path: float = 0.0,
) -> ProcState:
    ps = ProcState(definition=definition, anchor=at(0))
    ps.ready_since, ps.alarmed, ps.critical_path = since, alarmed, critical_path
    return ps


def order(states: list[ProcState], ranking: Ranking = Ranking.ADP) -> list[str]:
    return [ps.name for ps in sorted(states, key=lambda ps: rank_key(ps, ranking))]


# -- rank_key ------------------------------------------------------------------------------------


def test_classes() -> None:
    assert process_class(state(proc("s"))) == SINGLE
    assert process_class(state(proc("r", every=H))) == RECURRENT
    assert process_class(state(proc("c", cron="* * * * *"), alarmed=True)) == ALARMED
    # a single process is never alarmed: the alarm is for recurrent ones
    assert process_class(state(proc("s"), alarmed=True)) == SINGLE


def test_alarmed_recurrent_then_recurrent_then_single_whatever_the_priority() -> None:
    states = [
        state(proc("single", priority=100)),
        state(proc("recurrent", every=H, priority=50)),
        state(proc("alarmed", every=H, priority=0), alarmed=True),
    ]
    assert order(states) == ["alarmed", "recurrent", "single"]


def test_within_a_class_priority_first() -> None:
    states = [state(proc("low", priority=1)), state(proc("high", priority=9))]
    assert order(states) == ["high", "low"]


def test_then_the_longest_critical_path() -> None:
    states = [
        state(proc("short"), critical_path=60.0, since=at(0)),
        state(proc("long"), critical_path=3600.0, since=at(1)),
    ]
    assert order(states) == ["long", "short"]


def test_then_the_longest_waiting_time() -> None:
    states = [state(proc("late"), since=at(2)), state(proc("early"), since=at(1))]
    assert order(states) == ["early", "late"]


def test_then_the_name() -> None:
    states = [state(proc("b")), state(proc("a")), state(proc("c"))]
    assert order(states) == ["a", "b", "c"]


def test_ranking_priority_puts_priority_before_the_class() -> None:
    states = [
        state(proc("single", priority=100)),
        state(proc("recurrent", every=H, priority=50)),
        state(proc("alarmed", every=H, priority=0), alarmed=True),
        state(proc("alarmed-high", every=H, priority=50), alarmed=True),
    ]
    assert order(states, Ranking.PRIORITY) == ["single", "alarmed-high", "recurrent", "alarmed"]
    assert order(states, Ranking.ADP) == ["alarmed-high", "alarmed", "recurrent", "single"]


def test_keys_end_with_the_name_so_ties_are_deterministic() -> None:
    for ranking in Ranking:
        key = rank_key(state(proc("P")), ranking)
        assert key[-1] == "P"
        assert len({rank_key(state(proc(n)), ranking) for n in "abc"}) == 3


def test_rank_key_needs_a_candidate() -> None:
    ps = ProcState(definition=proc("P"), anchor=at(0))
    with pytest.raises(AssertionError):
        rank_key(ps, Ranking.ADP)


# -- through the core ----------------------------------------------------------------------------


def first_started(*processes: ProcessDef, ranking: Ranking = Ranking.ADP) -> list[str]:
    """Start order with one slot, each run ending one minute after it starts."""
    p = Planner(registry(*processes, slots=1, ranking=ranking), now=at(0))
    order = started(p.handle(at(0)))
    t = at(0)
    while order and len(order) < len(processes):
        t += timedelta(minutes=1)
        order += started(finish(p, order[-1], t))
    return order


def test_core_starts_recurrent_before_single_before_low_priority() -> None:
    got = first_started(
        proc("s-high", priority=10),
        proc("s-low", priority=1),
        proc("r-low", every=24 * H, priority=0),
        proc("r-high", every=24 * H, priority=5),
    )
    assert got == ["r-high", "r-low", "s-high", "s-low"]


def test_core_ranking_priority() -> None:
    got = first_started(
        proc("s-high", priority=10),
        proc("r-low", every=24 * H, priority=0),
        ranking=Ranking.PRIORITY,
    )
    assert got == ["s-high", "r-low"]


def test_core_prefers_the_longest_critical_path() -> None:
    got = first_started(
        proc("a", expected_duration=600),
        proc("b", expected_duration=60),
        proc("b-child", ancestors=["b"], expected_duration=3600),
    )
    # b's chain (60 s + 1 h) is longer than a's 10 min, though a sorts first by name
    assert got == ["b", "b-child", "a"]


def test_core_critical_path_follows_a_registry_change() -> None:
    base = [proc("blocker", expected_duration=3600), proc("a", expected_duration=60)]
    base.append(proc("b", expected_duration=60))
    p = Planner(registry(*base, slots=1), now=at(0))
    assert started(p.handle(at(0))) == ["blocker"]
    assert [name for name, _ in p.queue()][:2] == ["a", "b"]
    changed = registry(*base, proc("b-child", ancestors=["b"], expected_duration=7200), slots=1)
    p.handle(at(0, 1), RegistryChanged(registry=changed))
    assert [name for name, _ in p.queue()][:2] == ["b", "a"]


def test_core_longest_waiting_goes_first() -> None:
    reg = registry(
        proc("blocker", expected_duration=3 * 3600),
        proc("w-late", not_before=at(2)),
        proc("w-early", not_before=at(1)),
        slots=1,
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == ["blocker"]
    p.handle(at(1))
    p.handle(at(2))
    assert [name for name, _ in p.queue()][:2] == ["w-early", "w-late"]
    assert started(finish(p, "blocker", at(3))) == ["w-early"]


def test_core_alarmed_recurrent_goes_before_a_higher_priority_recurrent() -> None:
    reg = registry(
        proc("blocker", expected_duration=3600),
        proc("lo", cron="30 0 * * *", priority=0),
        proc("hi", cron="0 1 * * *", priority=9),
        slots=1,
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == ["blocker"]
    p.handle(at(0, 30))  # lo is due and held back by the busy slot: alarmed
    assert p.states["lo"].alarmed
    # at 01:00 the slot frees as hi becomes due: the alarmed one wins despite its priority
    assert started(finish(p, "blocker", at(1))) == ["lo"]
    assert p.states["hi"].alarmed  # and now hi waits, alarmed
    assert not p.states["lo"].alarmed


def test_core_priority_change_reorders_the_queue() -> None:
    base = [proc("blocker", priority=9), proc("a", priority=1), proc("b", priority=2)]
    p = Planner(registry(*base, slots=1), now=at(0))
    p.handle(at(0))
    assert [name for name, _ in p.queue()][:2] == ["b", "a"]
    changed = registry(base[0], proc("a", priority=3), base[2], slots=1)
    p.handle(at(0, 5), RegistryChanged(registry=changed))
    assert [name for name, _ in p.queue()][:2] == ["a", "b"]
    # the waiting time is kept across the change
    assert p.states["a"].ready_since == at(0)


def test_plan_lists_candidates_best_first() -> None:
    reg = registry(
        proc("s", priority=10), proc("r", every=H), proc("t", priority=5), proc("h", hold=True)
    )
    p = Planner(reg, now=at(0), slots=2)
    plan = p.plan(at(0))
    assert [(d.process, d.decision) for d in plan] == [
        ("r", "start"),
        ("s", "start"),
        ("t", "wait"),
        ("h", "wait"),
    ]
    assert [r.code.value for r in plan[2].reasons] == ["slots"]
