"""Readiness: each rule of the SPEC and its reason code, due logic, capacity codes, wake-ups.

Tests feed events to the core at chosen instants and compare what it decides; time is an argument.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from planner.core.events import (
    CapacityChanged,
    Code,
    Decision,
    ProcessReset,
    Reason,
    RegistryChanged,
    RunFinished,
    StartKind,
)
from planner.core.planner import Planner
from planner.simulation.simulate import simulate
from registry.lifecycle import RunStatus
from registry.model import Missed
from registry.records import ProcessHistory
from tests.factories import at, finish, proc, reasons_of, registry, run_of, started

H = timedelta(hours=1)
M = timedelta(minutes=1)


def planner(*processes: object, now: datetime | None = None, **settings: object) -> Planner:
    reg = registry(*processes, **settings)  # type: ignore[arg-type]
    return Planner(reg, now=now or at(0))


# -- the rules, one by one -----------------------------------------------------------------------


def test_disabled() -> None:
    p = planner(proc("P", enabled=False))
    step = p.handle(at(0))
    assert started(step) == []
    assert step.decisions == (
        Decision(process="P", decision="wait", reasons=(Reason(Code.DISABLED),)),
    )
    assert step.next_wakeup is None


def test_hold() -> None:
    p = planner(proc("P", hold=True))
    assert started(p.handle(at(0))) == []
    assert reasons_of(p, "P") == {"hold": ""}


def test_window_before_start_at_opens_at_start_at() -> None:
    p = planner(proc("P", start_at=at(2)))
    step = p.handle(at(0))
    assert started(step) == []
    assert reasons_of(p, "P") == {"window": "active from 2026-03-02T02:00:00+00:00"}
    assert step.next_wakeup == at(2)
    assert started(p.handle(at(2))) == ["P"]


def test_window_after_end_at() -> None:
    p = planner(proc("P", end_at=at(1)), now=at(2))
    assert started(p.handle(at(2))) == []
    assert reasons_of(p, "P") == {"window": "active period ended 2026-03-02T01:00:00+00:00"}


def test_end_at_stops_a_recurrent_process() -> None:
    reg = registry(proc("P", every=H, end_at=at(2, 30), expected_duration=10 * 60))
    sim = simulate(reg, start=at(0), until=at(6))
    assert [r.start for r in sim.runs] == [at(0), at(1), at(2)]


def test_max_runs() -> None:
    p = planner(proc("P", every=H, max_runs=2))
    assert started(p.handle(at(0))) == ["P"]
    finish(p, "P", at(0, 10))
    assert started(p.handle(at(1))) == ["P"]
    finish(p, "P", at(1, 10))
    assert started(p.handle(at(2))) == []
    assert reasons_of(p, "P") == {"max_runs": "2 of 2 runs done"}


def test_done_single_runs_once() -> None:
    p = planner(proc("P"))
    assert started(p.handle(at(0))) == ["P"]
    step = finish(p, "P", at(0, 5))
    assert started(step) == []
    assert reasons_of(p, "P") == {"done": "single process already succeeded"}
    assert started(p.handle(at(5))) == []


def test_single_with_max_active_does_not_run_twice_at_once() -> None:
    p = planner(proc("P", max_active=3), slots=4)
    assert started(p.handle(at(0))) == ["P"]
    assert reasons_of(p, "P") == {"not_due": "its run P-1 is in flight"}
    finish(p, "P", at(0, 5))
    assert reasons_of(p, "P") == {"done": "single process already succeeded"}


def test_not_due_new_cron_waits_for_its_next_fire() -> None:
    p = planner(proc("P", cron="0 3 * * *"), now=at(3, 30))
    step = p.handle(at(3, 30))
    assert started(step) == []
    assert reasons_of(p, "P") == {"not_due": "next fire 2026-03-03T03:00:00+00:00"}
    assert step.next_wakeup == at(3, day=1)
    step = p.handle(at(3, day=1))
    assert started(step) == ["P"]
    assert step.starts[0].kind is StartKind.FIRE
    assert step.starts[0].scheduled == at(3, day=1)


def test_failed_single_waits_for_reset() -> None:
    p = planner(proc("P"))
    p.handle(at(0))
    finish(p, "P", at(0, 5), RunStatus.FAILED)
    assert reasons_of(p, "P") == {"failed": "last run failed; `planner reset P` to rerun"}
    assert started(p.handle(at(5))) == []
    assert started(p.handle(at(6), ProcessReset(process="P", at=at(6)))) == ["P"]


def test_failed_after_retries_are_exhausted() -> None:
    p = planner(proc("P", retries=1))
    p.handle(at(0))
    finish(p, "P", at(0, 5), RunStatus.FAILED)
    assert started(p.handle(at(0, 5))) == []  # retry_delay 0: the retry started with the finish
    assert [f.attempt for _, f in p.flights()] == [2]
    finish(p, "P", at(0, 9), RunStatus.TIMED_OUT)
    assert reasons_of(p, "P") == {"failed": "last run timed_out; `planner reset P` to rerun"}


def test_refresh_window() -> None:
    p = planner(proc("P", refresh_window=6 * H))
    assert started(p.handle(at(0))) == ["P"]
    step = finish(p, "P", at(1))
    assert started(step) == []
    assert reasons_of(p, "P") == {"refresh_window": "until 2026-03-02T06:00:00+00:00"}
    assert step.next_wakeup == at(6)
    assert started(p.handle(at(6))) == ["P"]


def test_not_before_time_of_day_in_the_registry_timezone() -> None:
    # 03:00 in Madrid is 02:00 UTC in winter
    p = planner(proc("P", not_before=time(3)), timezone="Europe/Madrid")
    step = p.handle(at(0))
    assert started(step) == []
    assert reasons_of(p, "P") == {"not_before": "until 2026-03-02T03:00:00+01:00"}
    assert step.next_wakeup == at(2)
    assert started(p.handle(at(1, 59))) == []
    assert started(p.handle(at(2))) == ["P"]


def test_not_before_time_of_day_closes_again_at_local_midnight() -> None:
    p = planner(proc("P", not_before=time(23), refresh_window=30 * M), now=at(22))
    assert started(p.handle(at(22))) == []
    assert started(p.handle(at(23))) == ["P"]
    finish(p, "P", at(23, 10))
    assert started(p.handle(at(23, 30))) == ["P"]
    step = finish(p, "P", at(23, 40))
    assert step.next_wakeup == at(0, day=1)  # the refresh window ends and the day changes
    step = p.handle(at(0, day=1))
    assert started(step) == []
    assert reasons_of(p, "P") == {"not_before": "until 2026-03-03T23:00:00+00:00"}
    assert step.next_wakeup == at(23, day=1)


def test_not_before_datetime() -> None:
    p = planner(proc("P", not_before=at(5, day=1)))
    step = p.handle(at(0))
    assert reasons_of(p, "P") == {"not_before": "until 2026-03-03T05:00:00+00:00"}
    assert step.next_wakeup == at(5, day=1)
    assert started(p.handle(at(5, day=1))) == ["P"]


def test_ancestors_detail_names_only_the_stale_ones() -> None:
    p = planner(
        proc("A"),
        proc("B", not_before=at(1)),
        proc("C", ancestors=["A", "B"]),
        slots=3,
    )
    assert started(p.handle(at(0))) == ["A"]
    # explain evaluates afresh; the queue keeps the reasons of C's last evaluation
    assert p.explain("C", at(0)).reasons == (
        Reason(Code.ANCESTORS, "A (running), B (never succeeded)"),
    )
    finish(p, "A", at(0, 30))
    assert reasons_of(p, "C") == {"ancestors": "B (never succeeded)"}
    assert started(p.handle(at(1))) == ["B"]
    finish(p, "B", at(1, 30), RunStatus.FAILED)
    p.handle(at(1, 30))
    assert p.explain("C", at(1, 30)).reasons == (Reason(Code.ANCESTORS, "B (failed)"),)
    p.handle(at(2), ProcessReset(process="B", at=at(2)))
    assert started(finish(p, "B", at(2, 30))) == ["C"]


def test_ancestors_retrying_is_named() -> None:
    p = planner(proc("A", retries=1, retry_delay=600), proc("C", ancestors=["A"]))
    p.handle(at(0))
    finish(p, "A", at(0, 5), RunStatus.FAILED)
    assert p.explain("C", at(0, 6)).reasons == (Reason(Code.ANCESTORS, "A (retrying)"),)


def test_ancestors_must_succeed_after_the_last_start() -> None:
    p = planner(proc("A", every=H, expected_duration=600), proc("C", ancestors=["A"], every=H))
    assert started(p.handle(at(0))) == ["A"]
    assert started(finish(p, "A", at(0, 10))) == ["C"]
    finish(p, "C", at(0, 20))
    # C is due at 01:00, but A's success at 00:10 is older than C's last start
    assert started(p.handle(at(1))) == ["A"]
    assert reasons_of(p, "C") == {"ancestors": "A (no success since this process last started)"}
    assert p.explain("C", at(1)).reasons == (Reason(Code.ANCESTORS, "A (running)"),)
    finish(p, "A", at(1, 5), RunStatus.FAILED)
    assert p.explain("C", at(1, 5)).reasons == (Reason(Code.ANCESTORS, "A (failed)"),)
    assert started(p.handle(at(2))) == ["A"]
    assert started(finish(p, "A", at(2, 10))) == ["C"]


def test_retry_delay() -> None:
    p = planner(proc("P", retries=2, retry_delay=5 * 60))
    p.handle(at(0))
    step = finish(p, "P", at(0, 10), RunStatus.FAILED)
    assert started(step) == []
    assert reasons_of(p, "P") == {"retry_delay": "attempt 2 of P-1 at 2026-03-02T00:15:00+00:00"}
    assert step.next_wakeup == at(0, 15)
    step = p.handle(at(0, 15))
    assert [(s.run_id, s.attempt, s.kind) for s in step.starts] == [("P-1", 2, StartKind.RETRY)]


def test_max_active() -> None:
    p = planner(proc("P", every=10 * M), slots=3)
    p.handle(at(0))
    assert started(p.handle(at(0, 10))) == []
    assert reasons_of(p, "P") == {"max_active": "1 of 1 running"}


def test_max_active_above_one_overlaps_fires() -> None:
    p = planner(proc("P", every=10 * M, max_active=2), slots=3)
    assert started(p.handle(at(0))) == ["P"]
    assert started(p.handle(at(0, 10))) == ["P"]
    assert started(p.handle(at(0, 20))) == []
    assert reasons_of(p, "P") == {"max_active": "2 of 2 running"}


def test_all_failing_rules_are_reported_together() -> None:
    p = planner(proc("A"), proc("P", hold=True, ancestors=["A"], not_before=time(5)), slots=1)
    p.handle(at(0))
    assert set(reasons_of(p, "P")) == {"hold", "not_before", "ancestors"}


# -- capacity ------------------------------------------------------------------------------------


def test_slots() -> None:
    p = planner(proc("A", priority=2), proc("B", priority=1), slots=1)
    step = p.handle(at(0))
    assert started(step) == ["A"]
    assert reasons_of(p, "B") == {"slots": "all 1 slots busy"}
    assert Decision(
        process="B", decision="wait", reasons=(Reason(Code.SLOTS, "all 1 slots busy"),)
    ) in (step.decisions)
    assert started(finish(p, "A", at(1))) == ["B"]


def test_pool() -> None:
    p = planner(
        proc("A", pool="wh", priority=3),
        proc("B", pool="wh", priority=2),
        proc("C", priority=1),
        slots=5,
        pools={"wh": 1},
    )
    assert started(p.handle(at(0))) == ["A", "C"]
    assert reasons_of(p, "B") == {"pool": "pool 'wh': 1 of 1 in use"}
    assert started(finish(p, "A", at(1))) == ["B"]


def test_resources() -> None:
    reg = registry(
        proc("big", resources={"memory": 8e9}, priority=3),
        proc("m1", resources={"memory": 3e9}, priority=2),
        proc("m2", resources={"memory": 3e9}, priority=1),
        slots=5,
    )
    p = Planner(reg, now=at(0), resources=({"memory": 4e9}, {"memory": 4e9}))
    assert started(p.handle(at(0))) == ["m1", "m2"]  # one on each worker
    assert reasons_of(p, "big") == {"resources": "no worker has memory=8e+09 free"}
    # a bigger worker joins
    step = p.handle(
        at(1), CapacityChanged(threads=4, resources=({"memory": 4e9},) * 2 + ({"memory": 16e9},))
    )
    assert started(step) == ["big"]


def test_resources_in_use_are_released() -> None:
    reg = registry(
        proc("m1", resources={"gpu": 1}, priority=2), proc("m2", resources={"gpu": 1}), slots=5
    )
    p = Planner(reg, now=at(0), resources=({"gpu": 1},))
    assert started(p.handle(at(0))) == ["m1"]
    assert reasons_of(p, "m2") == {"resources": "no worker has gpu=1 free"}
    assert started(finish(p, "m1", at(1))) == ["m2"]


def test_reserved_names_the_process_the_slot_is_kept_for() -> None:
    p = planner(
        proc("R", cron="0 3 * * *", reserve=True, expected_duration=30 * 60),
        proc("L", expected_duration=2 * 3600),
        slots=1,
        now=at(2),
    )
    assert started(p.handle(at(2))) == []
    assert reasons_of(p, "L") == {"reserved": "slot kept for R at 2026-03-02T03:00:00+00:00"}


# -- due logic -----------------------------------------------------------------------------------


def test_single_with_refresh_window_reruns_after_each_fresh_success_of_its_ancestors() -> None:
    """The daily-DAG idiom: a cron root plus descendants with refresh_window."""
    reg = registry(
        proc("root", cron="0 3 * * *", expected_duration=30 * 60),
        proc("mid", ancestors=["root"], refresh_window=6 * H, expected_duration=20 * 60),
        proc("leaf", ancestors=["mid"], refresh_window=6 * H, expected_duration=10 * 60),
        slots=2,
    )
    sim = simulate(reg, start=at(0), until=at(0, day=3))
    got = [(r.process, r.start) for r in sim.runs]
    expected = []
    for day in range(3):
        expected += [
            ("root", at(3, day=day)),
            ("mid", at(3, 30, day=day)),
            ("leaf", at(3, 50, day=day)),
        ]
    assert got == expected


def test_single_with_refresh_window_and_no_ancestors_reruns_every_window() -> None:
    reg = registry(proc("P", refresh_window=6 * H, expected_duration=600))
    sim = simulate(reg, start=at(0), until=at(23))
    assert [r.start for r in sim.runs] == [at(0), at(6), at(12), at(18)]


def test_every_fires_at_once_then_on_the_grid() -> None:
    reg = registry(proc("P", every=15 * M, expected_duration=20 * 60), slots=2)
    p = Planner(reg, now=at(0, 7))
    step = p.handle(at(0, 7))
    assert [s.scheduled for s in step.starts] == [at(0, 7)]
    assert finish(p, "P", at(0, 10)).next_wakeup == at(0, 22)
    assert [s.scheduled for s in p.handle(at(0, 22)).starts] == [at(0, 22)]
    # a late run (past the next fire): the next run starts when it ends, for that fire
    assert [s.scheduled for s in finish(p, "P", at(0, 42)).starts] == [at(0, 37)]
    assert finish(p, "P", at(0, 45)).next_wakeup == at(0, 52)


def test_every_grid_counts_from_when_the_process_was_applied() -> None:
    p = Planner(registry(proc("P", every=15 * M)), now=at(1), applied_at={"P": at(0, 5)})
    step = p.handle(at(1))
    assert [s.scheduled for s in step.starts] == [at(0, 50)]
    step = finish(p, "P", at(1, 1))
    assert step.next_wakeup == at(1, 5)


def _missed_planner(missed: Missed) -> Planner:
    """A daily 03:00 process whose last run was on day 0; the planner comes back on day 3."""
    history = ProcessHistory(
        runs_created=1,
        last_fire=at(3),
        last_start=at(3),
        last_end=at(3, 10),
        last_success_end=at(3, 10),
        successes=1,
        last_outcome=RunStatus.SUCCEEDED,
    )
    reg = registry(proc("P", cron="0 3 * * *", missed=missed))
    return Planner(reg, now=at(5, day=3), applied_at={"P": at(0)}, histories={"P": history})


def test_missed_latest_collapses_missed_fires_into_one_run_at_the_latest_fire() -> None:
    p = _missed_planner(Missed.LATEST)
    step = p.handle(at(5, day=3))
    assert [(s.run_id, s.scheduled) for s in step.starts] == [("P-2", at(3, day=3))]
    step = finish(p, "P", at(5, 10, day=3))
    assert started(step) == []
    assert reasons_of(p, "P") == {"not_due": "next fire 2026-03-06T03:00:00+00:00"}


def test_missed_all_runs_once_per_missed_fire() -> None:
    p = _missed_planner(Missed.ALL)
    scheduled = [s.scheduled for s in p.handle(at(5, day=3)).starts]
    for minute in (10, 20):
        scheduled += [s.scheduled for s in finish(p, "P", at(5, minute, day=3)).starts]
    assert scheduled == [at(3, day=1), at(3, day=2), at(3, day=3)]
    finish(p, "P", at(5, 30, day=3))
    assert reasons_of(p, "P") == {"not_due": "next fire 2026-03-06T03:00:00+00:00"}


def test_missed_skip_drops_fires_missed_while_down() -> None:
    p = _missed_planner(Missed.SKIP)
    step = p.handle(at(5, day=3))
    assert started(step) == []
    assert reasons_of(p, "P") == {"not_due": "missed fire skipped; next 2026-03-06T03:00:00+00:00"}
    assert step.next_wakeup == at(3, day=4)
    step = p.handle(at(3, day=4))
    assert [s.scheduled for s in step.starts] == [at(3, day=4)]


def test_missed_skip_for_a_process_applied_before_the_planner_started() -> None:
    reg = registry(proc("P", cron="0 * * * *", missed=Missed.SKIP))
    p = Planner(reg, now=at(5, 30), applied_at={"P": at(0)})
    assert started(p.handle(at(5, 30))) == []
    assert [s.scheduled for s in p.handle(at(6)).starts] == [at(6)]


def test_missed_skip_drops_fires_missed_while_a_run_was_late() -> None:
    def run(missed: Missed) -> list[tuple[datetime, datetime]]:
        reg = registry(proc("P", every=10 * M, missed=missed), slots=2)
        p = Planner(reg, now=at(0))
        out = [(s.scheduled, at(0)) for s in p.handle(at(0)).starts]
        p.handle(at(0, 10))
        p.handle(at(0, 20))
        out += [(s.scheduled, at(0, 25)) for s in finish(p, "P", at(0, 25)).starts]
        out += [(s.scheduled, at(0, 30)) for s in p.handle(at(0, 30)).starts]
        return out

    assert run(Missed.SKIP) == [(at(0), at(0)), (at(0, 30), at(0, 30))]
    assert run(Missed.LATEST) == [(at(0), at(0)), (at(0, 20), at(0, 25))]
    assert run(Missed.ALL) == [(at(0), at(0)), (at(0, 10), at(0, 25))]


def test_missed_latest_also_collapses_fires_passed_while_waiting_for_a_slot() -> None:
    p = planner(proc("H", cron="0 * * * *"), proc("L"), slots=1, now=at(0, 30))
    assert started(p.handle(at(0, 30))) == ["L"]
    assert started(p.handle(at(1))) == []  # H due, no slot
    step = finish(p, "L", at(3, 30))
    assert [(s.process, s.scheduled) for s in step.starts] == [("H", at(3))]
    step = finish(p, "H", at(3, 31))
    assert started(step) == []  # 01:00, 02:00 and 03:00 were one run
    assert step.next_wakeup == at(4)


def test_single_run_scheduled_is_its_start_decision() -> None:
    p = planner(proc("A", priority=1), proc("B"), slots=1)
    p.handle(at(0))
    step = finish(p, "A", at(2))
    assert [(s.process, s.kind, s.scheduled) for s in step.starts] == [
        ("B", StartKind.SINGLE, at(2))
    ]


# -- wake-ups ------------------------------------------------------------------------------------


def test_next_wakeup_is_the_earliest_time_a_time_rule_flips() -> None:
    p = planner(
        proc("nb", not_before=time(4)),
        proc("cr", cron="30 2 * * *"),
        proc("win", start_at=at(6)),
        proc("held", hold=True),
        proc("anc", ancestors=["held"]),
    )
    assert p.handle(at(0)).next_wakeup == at(2, 30)
    assert p.handle(at(2, 30)).next_wakeup == at(4)
    assert p.handle(at(4)).next_wakeup == at(6)
    # nb's not_before closes at midnight; cr's next fire is 02:30 tomorrow; win started
    assert p.handle(at(6)).next_wakeup == at(0, day=1)


def test_next_wakeup_is_none_when_no_time_rule_can_flip() -> None:
    p = planner(proc("A", hold=True), proc("B", ancestors=["A"]), proc("C"))
    step = p.handle(at(0))
    assert started(step) == ["C"]
    assert step.next_wakeup is None
    assert finish(p, "C", at(1)).next_wakeup is None


def test_next_wakeup_forgets_a_rule_removed_by_a_registry_change() -> None:
    p = planner(proc("P", not_before=time(3)))
    assert p.handle(at(0)).next_wakeup == at(3)
    changed = registry(proc("P", hold=True))
    step = p.handle(at(1), RegistryChanged(registry=changed))
    assert reasons_of(p, "P") == {"hold": ""}
    assert step.next_wakeup is None


def test_next_wakeup_for_a_retry_and_a_window() -> None:
    p = planner(proc("P", retries=1, retry_delay=90), proc("Q", refresh_window=H), slots=2)
    p.handle(at(0))
    p.handle(at(0, 1), RunFinished(run_id=run_of(p, "Q"), status=RunStatus.SUCCEEDED, at=at(0, 1)))
    step = finish(p, "P", at(0, 2), RunStatus.FAILED)
    assert step.next_wakeup == at(0, 2) + timedelta(seconds=90)
    step = p.handle(step.next_wakeup)
    assert started(step) == ["P"]
    assert step.next_wakeup == at(1)


def test_a_tick_with_nothing_to_do_changes_nothing() -> None:
    p = planner(proc("P", cron="0 3 * * *"))
    first = p.handle(at(0))
    again = p.handle(at(1))
    assert again.starts == () and again.decisions == ()
    assert again.next_wakeup == first.next_wakeup == at(3)


def test_times_are_aware_utc_in_and_out() -> None:
    p = planner(proc("P", every=H))
    step = p.handle(at(0))
    assert step.starts[0].scheduled.tzinfo is not None
    assert step.next_wakeup is not None and step.next_wakeup.utcoffset() == timedelta(0)
    assert step.next_wakeup == datetime(2026, 3, 2, 1, tzinfo=UTC)
