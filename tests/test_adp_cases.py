"""The Apex Dynamic Planner use cases, run through ``simulate()`` on a virtual clock.

1. A is guaranteed to start at 03:00 with maximum priority even when every slot is busy
   (a reservation plus backfilling: a short job fills the kept slot before 03:00, a long one
   may not).
2. C runs after A and B.
3. C runs after A and B, and not before 03:00.
4. B and C run before A and D (ranking by priority, or by class).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from planner.core.schedule import zone
from planner.simulation.simulate import Outcome, SimRun, simulate
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, Ranking
from tests.factories import at, proc, registry

M = timedelta(minutes=1)
H = timedelta(hours=1)


def starts(sim_runs: list[SimRun]) -> dict[str, datetime]:
    return {r.process: r.start for r in sim_runs}


def ends(sim_runs: list[SimRun]) -> dict[str, datetime]:
    return {r.process: r.end for r in sim_runs}


# -- 1. a guaranteed start -----------------------------------------------------------------------


def nightly(reserve: bool) -> list[ProcessDef]:
    return [
        proc("A", cron="0 3 * * *", priority=100, reserve=reserve, expected_duration=30 * 60),
        proc("L", priority=10, expected_duration=5 * 3600),  # holds one slot 00:00-05:00
        proc("long", priority=5, not_before=time(1, 30), expected_duration=2 * 3600),
        proc("short", priority=1, not_before=time(1, 30), expected_duration=45 * 60),
        proc("short2", priority=0, not_before=time(1, 30), expected_duration=30 * 60),
    ]


def test_1_a_starts_at_0300_a_short_job_backfills_the_kept_slot_a_long_one_may_not() -> None:
    sim = simulate(registry(*nightly(reserve=True), slots=2), start=at(0), until=at(12))
    got = starts(sim.runs)
    assert got["A"] == at(3)
    # the second slot is filled by the short jobs while it is not needed...
    assert (got["short"], got["short2"]) == (at(1, 30), at(2, 15))
    assert ends(sim.runs)["short2"] <= at(3)
    # ...but the 2 h job, higher ranked, would still run at 03:00: it waits for A
    assert got["long"] == at(3, 30)


def test_1_without_the_reservation_a_is_late() -> None:
    sim = simulate(registry(*nightly(reserve=False), slots=2), start=at(0), until=at(12))
    assert starts(sim.runs)["long"] == at(1, 30)
    assert starts(sim.runs)["A"] == at(3, 30)


def test_1_a_starts_on_time_every_day_under_constant_load() -> None:
    """Every slot is wanted all the time by recurrent work of unknown and known durations."""
    reg = registry(
        proc("A", cron="0 3 * * *", priority=100, reserve=True, expected_duration=30 * 60),
        proc("hourly", every=H, priority=50, expected_duration=50 * 60),
        proc("big", every=2 * H, priority=40, expected_duration=3 * 3600),
        proc("small", every=20 * M, priority=30, expected_duration=10 * 60, max_active=2),
        slots=3,
    )
    sim = simulate(reg, start=at(0), until=at(0, day=4))
    a_starts = [r.start for r in sim.runs if r.process == "A"]
    assert a_starts == [at(3, day=d) for d in range(4)]
    # backfilling: the slots were used before A's start, by runs that ended in time
    for day in range(4):
        before = [
            r for r in sim.runs if r.process != "A" and at(2, day=day) <= r.start < at(3, day=day)
        ]
        assert before, f"day {day}: the slots idled before 03:00"
    # and never more than the slots at once
    events = sorted([(r.start, 1) for r in sim.runs] + [(r.end, -1) for r in sim.runs])
    level = 0
    for _, delta in events:
        level += delta
        assert level <= 3


# -- 2. after A and B ----------------------------------------------------------------------------


def test_2_c_after_a_and_b() -> None:
    reg = registry(
        proc("A", expected_duration=20 * 60),
        proc("B", expected_duration=50 * 60),
        proc("C", ancestors=["A", "B"], priority=100, expected_duration=10 * 60),
        slots=4,
    )
    sim = simulate(reg, start=at(0), until=at(6))
    assert starts(sim.runs) == {"A": at(0), "B": at(0), "C": at(0, 50)}


def test_2_c_does_not_run_if_b_fails() -> None:
    reg = registry(
        proc("A", expected_duration=20 * 60),
        proc("B", expected_duration=50 * 60, retries=1, retry_delay=600),
        proc("C", ancestors=["A", "B"]),
        slots=4,
    )
    failing = {"B": Outcome(duration=50 * M, status=RunStatus.FAILED)}
    sim = simulate(reg, start=at(0), until=at(6), outcomes=failing)
    assert [r.process for r in sim.runs] == ["A", "B", "B"]


def test_2_c_after_a_and_b_every_day() -> None:
    reg = registry(
        proc("A", cron="0 1 * * *", expected_duration=20 * 60),
        proc("B", cron="0 2 * * *", expected_duration=50 * 60),
        proc("C", ancestors=["A", "B"], refresh_window=12 * H, expected_duration=10 * 60),
        slots=2,
    )
    sim = simulate(reg, start=at(0), until=at(0, day=3))
    assert [r.start for r in sim.runs if r.process == "C"] == [at(2, 50, day=d) for d in range(3)]


# -- 3. after A and B, not before 03:00 ----------------------------------------------------------


def case_3(a_minutes: int, b_minutes: int) -> list[SimRun]:
    reg = registry(
        proc("A", expected_duration=a_minutes * 60),
        proc("B", expected_duration=b_minutes * 60),
        proc("C", ancestors=["A", "B"], not_before=time(3)),
        timezone="Europe/Madrid",
        slots=2,
    )
    start = datetime(2026, 3, 2, 0, 0, tzinfo=zone("Europe/Madrid"))
    return simulate(reg, start=start, until=start + timedelta(hours=12)).runs


def test_3_ancestors_done_early_c_waits_for_0300_local() -> None:
    runs = case_3(30, 60)
    c = starts(runs)["C"].astimezone(zone("Europe/Madrid"))
    assert c.isoformat() == "2026-03-02T03:00:00+01:00"


def test_3_ancestors_done_late_c_starts_when_they_are() -> None:
    runs = case_3(30, 4 * 60)
    assert starts(runs)["C"] == ends(runs)["B"]
    assert starts(runs)["C"].astimezone(zone("Europe/Madrid")).time() == time(4)


# -- 4. B and C before A and D -------------------------------------------------------------------


def test_4_by_priority() -> None:
    reg = registry(
        proc("A", priority=1, expected_duration=600),
        proc("B", priority=10, expected_duration=600),
        proc("C", priority=10, expected_duration=600),
        proc("D", priority=1, expected_duration=600),
        slots=1,
    )
    sim = simulate(reg, start=at(0), until=at(2))
    assert [r.process for r in sim.runs] == ["B", "C", "A", "D"]


def test_4_by_class_recurrent_before_single() -> None:
    reg = registry(
        proc("A", priority=50, expected_duration=600),
        proc("B", every=24 * H, expected_duration=600),
        proc("C", cron="0 0 * * *", expected_duration=600),
        proc("D", priority=50, expected_duration=600),
        slots=1,
    )
    start = at(0) - timedelta(seconds=1)  # C's cron fires at 00:00, B's grid starts at once
    sim = simulate(reg, start=start, until=at(2))
    assert [r.process for r in sim.runs] == ["B", "C", "A", "D"]


def test_4_ranking_priority_lets_priority_beat_the_class() -> None:
    reg = registry(
        proc("A", every=24 * H, expected_duration=600),
        proc("B", priority=10, expected_duration=600),
        proc("C", priority=10, expected_duration=600),
        proc("D", every=24 * H, expected_duration=600),
        slots=1,
        ranking=Ranking.PRIORITY,
    )
    sim = simulate(reg, start=at(0), until=at(2))
    assert [r.process for r in sim.runs] == ["B", "C", "A", "D"]
