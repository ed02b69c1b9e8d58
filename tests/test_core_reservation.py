"""Reservations: a slot kept for ``reserve: true`` processes at their next known start, with
backfilling (a reservation never idles a slot it does not need)."""

from __future__ import annotations

from datetime import time, timedelta

from planner.core.events import Code, Reason, RegistryChanged
from planner.core.planner import Planner
from planner.core.reservation import HORIZON, Hold, blocking_hold
from planner.core.state import ProcState
from registry.records import ProcessHistory
from tests.factories import at, finish, proc, reasons_of, registry, started

H = timedelta(hours=1)
M = timedelta(minutes=1)
KEPT_FOR_R = {"reserved": "slot kept for R at 2026-03-02T03:00:00+00:00"}


# -- blocking_hold -------------------------------------------------------------------------------


def test_no_holds_nothing_blocks() -> None:
    assert blocking_hold("X", None, now=at(0), slots=1, busy_until=[], holds=[]) is None


def test_a_candidate_that_ends_before_the_reserved_start_fits() -> None:
    holds = [Hold(process="R", at=at(3), until=at(4))]
    assert blocking_hold("X", at(3), now=at(2), slots=1, busy_until=[], holds=holds) is None
    assert blocking_hold("X", at(3, 1), now=at(2), slots=1, busy_until=[], holds=holds) == holds[0]


def test_an_unknown_duration_runs_through_the_horizon() -> None:
    near = [Hold(process="R", at=at(0) + HORIZON - M, until=None)]
    far = [Hold(process="R", at=at(0) + HORIZON + M, until=None)]
    assert blocking_hold("X", None, now=at(0), slots=1, busy_until=[], holds=near) == near[0]
    assert blocking_hold("X", None, now=at(0), slots=1, busy_until=[], holds=far) is None


def test_runs_in_flight_count_until_their_estimated_end() -> None:
    holds = [Hold(process="R", at=at(3), until=None)]
    kwargs = {"now": at(2), "slots": 2, "holds": holds}
    assert blocking_hold("X", at(4), busy_until=[at(2, 30)], **kwargs) is None  # frees in time
    assert blocking_hold("X", at(4), busy_until=[at(3, 30)], **kwargs) == holds[0]
    assert blocking_hold("X", at(4), busy_until=[None], **kwargs) == holds[0]  # unknown end


def test_demand_counts_every_reservation_still_running_at_a_start() -> None:
    holds = [
        Hold(process="R1", at=at(3), until=at(3, 30)),
        Hold(process="R2", at=at(3, 15), until=at(4)),
        Hold(process="R3", at=at(3, 45), until=at(4)),
    ]
    # at 03:15 both R1 and R2 run: with 3 slots a candidate still fits, with 2 it does not
    assert blocking_hold("X", at(3, 20), now=at(2), slots=3, busy_until=[], holds=holds) is None
    assert blocking_hold("X", at(3, 20), now=at(2), slots=2, busy_until=[], holds=holds) == holds[1]
    # at 03:45 R1 is over: R2 and R3 need two slots
    assert blocking_hold("X", at(5), now=at(3, 31), slots=3, busy_until=[], holds=holds) is None


def test_a_process_does_not_block_itself() -> None:
    holds = [Hold(process="R", at=at(3), until=None)]
    assert blocking_hold("R", None, now=at(2), slots=1, busy_until=[], holds=holds) is None


def test_an_overdue_run_is_assumed_to_end_now() -> None:
    ps = ProcState(definition=proc("P", expected_duration=600), anchor=at(0))
    ps.refresh_estimate()
    assert ps.estimated_end(at(0), at(0, 5)) == at(0, 10)
    assert ps.estimated_end(at(0), at(1)) == at(1)
    unknown = ProcState(definition=proc("U"), anchor=at(0))
    assert unknown.estimated_end(at(0), at(1)) is None


def test_estimates_are_the_p90_of_recent_successes() -> None:
    ps = ProcState(definition=proc("P", expected_duration=600), anchor=at(0))
    ps.refresh_estimate()
    assert ps.estimate == 600
    ps.durations.extend(float(s) for s in range(1, 11))
    ps.refresh_estimate()
    assert ps.estimate == 9.0


# -- through the core ----------------------------------------------------------------------------


def reserved_registry(*others: object, slots: int = 2) -> Planner:
    reg = registry(
        proc("R", cron="0 3 * * *", reserve=True, priority=100, expected_duration=30 * 60),
        *others,  # type: ignore[arg-type]
        slots=slots,
    )
    return Planner(reg, now=at(0))


def test_backfilling_a_short_job_takes_the_reserved_slot_a_long_one_may_not() -> None:
    p = reserved_registry(
        proc("L", priority=9, expected_duration=5 * 3600),
        proc("S", not_before=at(2), expected_duration=30 * 60),
        proc("M", not_before=at(2), expected_duration=2 * 3600, priority=1),
    )
    assert started(p.handle(at(0))) == ["L"]  # 1 slot left: it must stay free at 03:00
    assert reasons_of(p, "M") == {"not_before": "until 2026-03-02T02:00:00+00:00"}
    step = p.handle(at(2))
    assert started(step) == ["S"]  # M ranks higher, but would still run at 03:00
    assert reasons_of(p, "M") == KEPT_FOR_R
    assert started(finish(p, "S", at(2, 30))) == []
    assert reasons_of(p, "M") == KEPT_FOR_R
    step = p.handle(at(3))
    assert [(s.process, s.scheduled) for s in step.starts] == [("R", at(3))]
    waiting = {d.process: d.reasons for d in p.plan(at(3)) if d.decision == "wait"}
    assert waiting["M"] == (Reason(Code.SLOTS, "all 2 slots busy"),)
    assert started(finish(p, "R", at(3, 30))) == ["M"]


def test_a_reservation_never_idles_a_slot_it_does_not_need() -> None:
    p = reserved_registry(
        proc("L1", expected_duration=5 * 3600),
        proc("L2", expected_duration=5 * 3600),
        proc("L3", expected_duration=5 * 3600),
        slots=3,
    )
    assert started(p.handle(at(0))) == ["L1", "L2"]
    assert reasons_of(p, "L3") == KEPT_FOR_R
    assert started(p.handle(at(3))) == ["R"]


def test_an_unknown_duration_waits_for_a_reserved_start_within_24h() -> None:
    weekly = proc("R", cron="0 3 * * 1", reserve=True, expected_duration=1800)  # Mondays
    reg = registry(weekly, proc("U"), slots=1)
    # Monday 04:00: the next reserved start is in 7 days, beyond the horizon
    p = Planner(reg, now=at(4))
    assert started(p.handle(at(4))) == ["U"]
    # Sunday 04:00: it is 23 h away, and U's duration is unknown
    p = Planner(reg, now=at(4, day=6))
    assert started(p.handle(at(4, day=6))) == []
    assert reasons_of(p, "U") == {"reserved": "slot kept for R at 2026-03-09T03:00:00+00:00"}


def test_a_known_history_lifts_the_unknown_duration() -> None:
    reg = registry(
        proc("R", cron="0 3 * * *", reserve=True, expected_duration=1800),
        proc("U"),
        slots=1,
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == []
    assert reasons_of(p, "U") == KEPT_FOR_R
    # the same process with a recorded success of 10 minutes fits before 03:00
    p = Planner(reg, now=at(0), histories={"U": ProcessHistory(durations=(600.0,))})
    assert started(p.handle(at(0))) == ["U"]


def test_reserved_start_at_not_before_of_a_single_process() -> None:
    reg = registry(
        proc("R", not_before=time(3), reserve=True, expected_duration=1800),
        proc("L", expected_duration=4 * 3600),
        slots=1,
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == []
    assert reasons_of(p, "L") == KEPT_FOR_R
    assert started(p.handle(at(3))) == ["R"]


def test_two_reservations_at_the_same_time_keep_two_slots() -> None:
    reg = registry(
        proc("R", cron="0 3 * * *", reserve=True, expected_duration=1800),
        proc("R2", cron="0 3 * * *", reserve=True, expected_duration=1800),
        proc("L", expected_duration=4 * 3600),
        proc("S", expected_duration=3600),
        slots=2,
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == ["S"]  # the 1 h job fits before 03:00, the 4 h one does not
    assert reasons_of(p, "L") == KEPT_FOR_R
    assert started(finish(p, "S", at(1))) == []
    assert reasons_of(p, "L") == KEPT_FOR_R
    assert started(p.handle(at(3))) == ["R", "R2"]


def test_a_held_or_disabled_reserved_process_keeps_no_slot() -> None:
    held = proc("R", cron="0 3 * * *", reserve=True, hold=True)
    p = Planner(registry(held, proc("L", expected_duration=5 * 3600), slots=1), now=at(0))
    assert started(p.handle(at(0))) == ["L"]


def test_a_reserved_process_waiting_for_its_ancestors_keeps_its_slot_only_until_due() -> None:
    reg = registry(
        proc("A", hold=True),
        proc("R", not_before=time(3), ancestors=["A"], reserve=True, expected_duration=1800),
        proc("L", not_before=time(2), expected_duration=5 * 3600),
        proc("L2", not_before=time(3), expected_duration=5 * 3600),
        slots=1,
    )
    p = Planner(reg, now=at(0))
    p.handle(at(2))
    assert reasons_of(p, "L") == KEPT_FOR_R  # R may be ready at 03:00
    # at 03:00 R still waits for A: it will not need the slot until A succeeds
    assert started(p.handle(at(3))) == ["L"]


def test_releasing_the_reservation_by_registry_change() -> None:
    base = proc("R", cron="0 3 * * *", reserve=True, expected_duration=1800)
    p = Planner(registry(base, proc("L", expected_duration=5 * 3600), slots=1), now=at(0))
    assert started(p.handle(at(0))) == []
    changed = registry(
        proc("R", cron="0 3 * * *", expected_duration=1800),
        proc("L", expected_duration=5 * 3600),
        slots=1,
    )
    assert started(p.handle(at(0, 1), RegistryChanged(registry=changed))) == ["L"]


def test_plan_and_explain_show_the_reservation() -> None:
    p = reserved_registry(proc("L", expected_duration=5 * 3600), slots=1)
    p.handle(at(0))
    decisions = {d.process: d for d in p.plan(at(1))}
    assert decisions["L"].decision == "wait"
    assert decisions["L"].reasons == (
        Reason(Code.RESERVED, "slot kept for R at 2026-03-02T03:00:00+00:00"),
    )
    explanation = p.explain("L", at(1))
    assert explanation.decision == "wait"
    assert "free slot" in explanation.blocked_until
