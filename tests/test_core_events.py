"""Events in, decisions out: completions, retries, cancellation, triggers, resets, hot registry
changes, capacity changes — and the incremental re-evaluation behind them."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from planner.core.events import (
    CapacityChanged,
    ProcessReset,
    Reason,
    RegistryChanged,
    RunFinished,
    RunSettled,
    StartKind,
    Step,
    TriggerRequested,
)
from planner.core.planner import Planner
from planner.core.readiness import Readiness
from planner.core.state import ProcState
from registry.errors import ProcessNotFound
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import ActiveRun, ProcessHistory
from tests.factories import at, finish, proc, reasons_of, registry, run_of, started

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = RunStatus


class CountingPlanner(Planner):
    """The real core, recording which processes it evaluates (a wrapper, not a mock): by the
    short path of a plain single process (``_plain_reasons``), or by every rule."""

    def __init__(self, reg: RegistryDef, *, now: datetime, **kwargs: object) -> None:
        self.evaluated: list[str] = []
        super().__init__(reg, now=now, **kwargs)  # type: ignore[arg-type]

    def _plain_reasons(self, ps: ProcState) -> tuple[Reason, ...] | None:
        reasons = super()._plain_reasons(ps)
        if reasons is not None:
            self.evaluated.append(ps.name)
        return reasons

    def _evaluate(self, ps: ProcState, now: datetime) -> Readiness:
        self.evaluated.append(ps.name)
        return super()._evaluate(ps, now)


def trigger(process: str, when: datetime, **kwargs: object) -> TriggerRequested:
    return TriggerRequested(process=process, at=when, **kwargs)  # type: ignore[arg-type]


# -- completions ---------------------------------------------------------------------------------


def test_completion_starts_successors_in_the_same_step() -> None:
    p = Planner(
        registry(proc("A"), proc("B", ancestors=["A"]), proc("C", ancestors=["A"]), slots=3),
        now=at(0),
    )
    assert started(p.handle(at(0))) == ["A"]
    step = finish(p, "A", at(0, 7))
    assert sorted(started(step)) == ["B", "C"]
    assert {s.decided_at for s in step.starts} == {at(0, 7)}
    assert step.settled == (RunSettled(run_id="A-1", process="A", attempt=1, status=S.SUCCEEDED),)


def test_a_failure_does_not_start_successors() -> None:
    p = Planner(registry(proc("A"), proc("B", ancestors=["A"])), now=at(0))
    p.handle(at(0))
    step = finish(p, "A", at(0, 7), S.FAILED)
    assert started(step) == []
    assert step.settled == (RunSettled(run_id="A-1", process="A", attempt=1, status=S.FAILED),)


def test_only_the_finished_process_and_its_successors_are_reevaluated() -> None:
    others = [proc(f"w{i:02}", ancestors=["gate"]) for i in range(30)]
    others += [proc(f"c{i:02}", cron=f"{i} 5 * * *") for i in range(30)]
    reg = registry(
        proc("gate", hold=True),
        proc("A", expected_duration=60),
        proc("B", ancestors=["A"]),
        proc("C", ancestors=["B"]),
        *others,
        slots=4,
    )
    # chaining evaluates a running process's successors too (tests/test_chaining.py)
    p = CountingPlanner(reg, now=at(0), chaining=False)
    assert started(p.handle(at(0))) == ["A"]
    assert len(set(p.evaluated)) == len(reg.processes)

    p.evaluated.clear()
    step = finish(p, "A", at(0, 1))
    assert started(step) == ["B"]
    # A (finished) and B (its successor, evaluated again once started); not C, not the others
    assert set(p.evaluated) == {"A", "B"}

    p.evaluated.clear()
    p.handle(at(0, 2))  # nothing happened, no time rule flipped
    assert p.evaluated == []

    p.evaluated.clear()
    p.handle(at(5, 3))  # c03's fire (and c00..c02's, due at 05:00..05:02) — nothing else
    assert sorted(set(p.evaluated)) == ["c00", "c01", "c02", "c03"]


def test_a_registry_change_reevaluates_only_what_changed() -> None:
    processes = [proc(f"p{i:02}", cron="0 5 * * *") for i in range(20)]
    p = CountingPlanner(registry(*processes), now=at(0))
    p.handle(at(0))
    p.evaluated.clear()
    processes[7] = proc("p07", cron="0 5 * * *", priority=3)
    p.handle(at(1), RegistryChanged(registry=registry(*processes)))
    assert p.evaluated == ["p07"]


# -- retries -------------------------------------------------------------------------------------


def test_retries_with_delay_and_backoff() -> None:
    p = Planner(registry(proc("P", retries=3, retry_delay=60, retry_backoff=2.0)), now=at(0))
    step = p.handle(at(0))
    assert [(s.run_id, s.attempt, s.final_attempt) for s in step.starts] == [("P-1", 1, False)]
    t = at(0, 10)
    attempts = []
    for delay in (60, 120, 240):
        step = finish(p, "P", t, S.FAILED)
        retry_at = t + timedelta(seconds=delay)
        assert step.settled == (
            RunSettled(
                run_id="P-1",
                process="P",
                attempt=len(attempts) + 1,
                status=S.RETRYING,
                retry_at=retry_at,
            ),
        )
        assert started(p.handle(retry_at - timedelta(seconds=1))) == []
        step = p.handle(retry_at)
        attempts += [(s.run_id, s.attempt, s.kind, s.final_attempt) for s in step.starts]
        t = retry_at + M
    assert attempts == [
        ("P-1", 2, StartKind.RETRY, False),
        ("P-1", 3, StartKind.RETRY, False),
        ("P-1", 4, StartKind.RETRY, True),
    ]
    step = finish(p, "P", t, S.FAILED)
    assert step.settled == (RunSettled(run_id="P-1", process="P", attempt=4, status=S.FAILED),)
    assert reasons_of(p, "P") == {"failed": "last run failed; `planner reset P` to rerun"}


def test_a_timeout_is_retried_a_cancel_is_not() -> None:
    p = Planner(registry(proc("T", retries=1), proc("C", retries=1), slots=2), now=at(0))
    p.handle(at(0))
    step = p.handle(
        at(0, 5),
        RunFinished(run_id="T-1", status=S.TIMED_OUT, at=at(0, 5)),
        RunFinished(run_id="C-1", status=S.CANCELLED, at=at(0, 5)),
    )
    assert [(s.run_id, s.attempt) for s in step.starts] == [("T-1", 2)]
    assert {s.run_id: s.status for s in step.settled} == {"T-1": S.RETRYING, "C-1": S.CANCELLED}


def test_a_retry_keeps_the_run_scheduled_time_and_params() -> None:
    p = Planner(registry(proc("P", every=H, retries=1, params={"x": 1})), now=at(0))
    p.handle(at(0))
    step = finish(p, "P", at(0, 5), S.FAILED)  # retry_delay 0: the retry starts at once
    assert [(s.run_id, s.attempt, s.scheduled, dict(s.params)) for s in step.starts] == [
        ("P-1", 2, at(0), {"x": 1})
    ]


def test_a_successful_retry_starts_the_successors() -> None:
    p = Planner(registry(proc("A", retries=1), proc("B", ancestors=["A"])), now=at(0))
    p.handle(at(0))
    finish(p, "A", at(0, 5), S.FAILED)
    step = finish(p, "A", at(0, 9))
    assert started(step) == ["B"]


def test_a_retry_goes_before_new_work_of_the_same_process() -> None:
    p = Planner(registry(proc("P", every=10 * M, retries=1, retry_delay=15 * 60)), now=at(0))
    p.handle(at(0))
    finish(p, "P", at(0, 1), S.FAILED)
    # the 00:10 fire waits: the retry of P-1 comes first
    assert started(p.handle(at(0, 10))) == []
    assert list(reasons_of(p, "P")) == ["retry_delay"]
    step = p.handle(at(0, 16))
    assert [(s.run_id, s.attempt) for s in step.starts] == [("P-1", 2)]
    step = finish(p, "P", at(0, 17))
    assert [(s.run_id, s.scheduled) for s in step.starts] == [("P-2", at(0, 10))]


# -- cancellation --------------------------------------------------------------------------------


def test_cancel_while_retrying() -> None:
    p = Planner(registry(proc("P", retries=2, retry_delay=600)), now=at(0))
    p.handle(at(0))
    finish(p, "P", at(0, 5), S.FAILED)
    step = p.handle(at(0, 6), RunFinished(run_id="P-1", status=S.CANCELLED, at=at(0, 6)))
    assert step.settled == (RunSettled(run_id="P-1", process="P", attempt=1, status=S.CANCELLED),)
    assert p.flights() == []
    assert reasons_of(p, "P") == {"failed": "last run cancelled; `planner reset P` to rerun"}
    assert started(p.handle(at(0, 15))) == []  # no retry at the old retry time
    assert p.idle()


def test_cancel_a_retry_that_waits_for_a_slot() -> None:
    p = Planner(registry(proc("P", retries=2, retry_delay=60), proc("Q")), now=at(0))
    assert started(p.handle(at(0))) == ["P"]
    assert started(finish(p, "P", at(0, 1), S.FAILED)) == ["Q"]
    p.handle(at(0, 5))  # P's retry is due but the slot is Q's
    assert reasons_of(p, "P") == {"slots": "all 1 slots busy"}
    step = p.handle(
        at(0, 6),
        RunFinished(run_id="P-1", status=S.CANCELLED, at=at(0, 6)),
        RunFinished(run_id="Q-1", status=S.SUCCEEDED, at=at(0, 6)),
    )
    assert started(step) == []
    assert [s.status for s in step.settled] == [S.CANCELLED, S.SUCCEEDED]
    assert p.flights() == []


def test_cancel_in_flight_frees_the_slot() -> None:
    p = Planner(registry(proc("A", priority=1), proc("B")), now=at(0))
    assert started(p.handle(at(0))) == ["A"]
    step = p.handle(at(0, 3), RunFinished(run_id="A-1", status=S.CANCELLED, at=at(0, 3)))
    assert started(step) == ["B"]
    assert reasons_of(p, "A") == {"failed": "last run cancelled; `planner reset A` to rerun"}


def test_unknown_and_repeated_finishes_are_ignored() -> None:
    p = Planner(registry(proc("A")), now=at(0))
    p.handle(at(0))
    assert (
        p.handle(at(0, 1), RunFinished(run_id="nope-1", status=S.FAILED, at=at(0, 1))).settled == ()
    )
    finish(p, "A", at(0, 2))
    again = p.handle(at(0, 3), RunFinished(run_id="A-1", status=S.FAILED, at=at(0, 3)))
    assert again.settled == ()
    assert reasons_of(p, "A") == {"done": "single process already succeeded"}
    # a failure reported for a run that waits to retry does not end it
    q = Planner(registry(proc("Q", retries=1, retry_delay=600)), now=at(0))
    q.handle(at(0))
    finish(q, "Q", at(0, 1), S.FAILED)
    assert q.handle(at(0, 2), RunFinished(run_id="Q-1", status=S.FAILED, at=at(0, 2))).settled == ()
    assert [f.run_id for _, f in q.flights()] == ["Q-1"]


# -- triggers ------------------------------------------------------------------------------------


def test_trigger_bypasses_done_with_its_params() -> None:
    p = Planner(registry(proc("P", params={"a": 1, "b": 2})), now=at(0))
    p.handle(at(0))
    finish(p, "P", at(0, 1))
    step = p.handle(at(1), trigger("P", at(0, 59), params={"b": 3}, request_id=7))
    (start,) = step.starts
    assert (start.run_id, start.kind, start.scheduled, start.request_id) == (
        "P-2",
        StartKind.TRIGGER,
        at(0, 59),
        7,
    )
    assert start.params == {"a": 1, "b": 3}
    finish(p, "P", at(1, 1))
    assert reasons_of(p, "P") == {"done": "single process already succeeded"}


@pytest.mark.parametrize(
    ("definition", "blocked_by"),
    [
        (proc("P", cron="0 5 * * *"), "not_due"),
        (proc("P", not_before=time(5)), "not_before"),
        (proc("P", refresh_window=6 * H, not_before=time(0)), "refresh_window"),
    ],
)
def test_trigger_bypasses_time_rules(definition: ProcessDef, blocked_by: str) -> None:
    p = Planner(registry(definition), now=at(0))
    p.handle(at(0))
    if blocked_by == "refresh_window":
        finish(p, "P", at(0, 1))
    assert list(reasons_of(p, "P")) == [blocked_by]
    assert [s.kind for s in p.handle(at(1), trigger("P", at(1))).starts] == [StartKind.TRIGGER]


def test_trigger_bypasses_failed() -> None:
    p = Planner(registry(proc("P")), now=at(0))
    p.handle(at(0))
    finish(p, "P", at(0, 1), S.FAILED)
    assert started(p.handle(at(1), trigger("P", at(1)))) == ["P"]
    finish(p, "P", at(1, 1))
    assert reasons_of(p, "P") == {"done": "single process already succeeded"}


def test_a_triggered_run_does_not_move_the_cron_schedule() -> None:
    p = Planner(registry(proc("P", cron="0 3 * * *")), now=at(0))
    p.handle(at(0))
    assert started(p.handle(at(1), trigger("P", at(1)))) == ["P"]
    finish(p, "P", at(1, 5))
    step = p.handle(at(3))
    assert [(s.kind, s.scheduled) for s in step.starts] == [(StartKind.FIRE, at(3))]


def test_trigger_does_not_bypass_ancestors_force_does_and_never_waits_behind_one() -> None:
    reg = registry(proc("A", hold=True), proc("P", ancestors=["A"]))
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0), trigger("P", at(0), request_id=1))) == []
    # visible: what the pending trigger waits for
    assert reasons_of(p, "P") == {
        "ancestors": "triggered (#1), waiting for ancestors: A (never succeeded)"
    }
    step = p.handle(at(1), trigger("P", at(1), force=True, request_id=2))
    # the forced request does not queue behind the unforced one, which keeps waiting for A
    assert [(s.kind, s.request_id) for s in step.starts] == [(StartKind.TRIGGER, 2)]
    assert [t.request_id for t in p.states["P"].triggers] == [1]


def test_trigger_does_not_bypass_hold_or_capacity() -> None:
    p = Planner(registry(proc("H", hold=True), proc("B", priority=5), proc("P")), now=at(0))
    assert started(p.handle(at(0))) == ["B"]
    step = p.handle(at(0, 1), trigger("H", at(0, 1)), trigger("P", at(0, 1)))
    assert started(step) == []
    assert reasons_of(p, "H") == {"hold": "triggered (one), waiting for hold"}
    assert reasons_of(p, "P") == {"slots": "all 1 slots busy"}


def test_trigger_of_a_due_process_is_satisfied_by_its_next_run() -> None:
    p = Planner(registry(proc("P")), now=at(0))
    step = p.handle(at(0), trigger("P", at(0), params={"x": 1}, request_id=7))
    # the run the process would start anyway carries the trigger's params and request id
    assert [(s.kind, dict(s.params), s.request_id) for s in step.starts] == [
        (StartKind.SINGLE, {"x": 1}, 7)
    ]
    assert started(finish(p, "P", at(0, 5))) == []  # no extra run: the trigger is satisfied


def test_a_trigger_is_never_starved_by_scheduled_runs() -> None:
    """A cron process with an ancestor: its own fire consumes each fresh ancestor success, so a
    trigger waiting "for an extra run" never got one; now the next run that starts carries it."""
    reg = registry(proc("A", cron="0 * * * *"), proc("P", cron="0 * * * *", ancestors=["A"]))
    p = Planner(reg, now=at(0))
    p.handle(at(0, 30), trigger("P", at(0, 30), params={"why": "manual"}, request_id=3))
    assert started(p.handle(at(1))) == ["A"]
    step = finish(p, "A", at(1, 1))
    assert [(s.process, s.request_id, dict(s.params)) for s in step.starts] == [
        ("P", 3, {"why": "manual"})
    ]
    assert not p.states["P"].triggers


def test_queued_triggers_run_one_after_the_other() -> None:
    p = Planner(registry(proc("P", cron="0 5 * * *"), slots=3), now=at(0))
    step = p.handle(at(0), trigger("P", at(0), request_id=1), trigger("P", at(0), request_id=2))
    assert [s.request_id for s in step.starts] == [1]
    assert reasons_of(p, "P") == {
        "max_active": "triggered (#2), waiting for max_active: 1 of 1 running"
    }
    assert [s.request_id for s in finish(p, "P", at(0, 5)).starts] == [2]


def test_queued_triggers_run_together_up_to_max_active() -> None:
    p = Planner(registry(proc("P", cron="0 5 * * *", max_active=2), slots=1), now=at(0))
    step = p.handle(at(0), *(trigger("P", at(0), request_id=i) for i in (1, 2, 3)))
    assert [s.request_id for s in step.starts] == [1]
    # the second request is a candidate again at once, held back by the single slot
    assert reasons_of(p, "P") == {"slots": "all 1 slots busy"}
    assert [s.request_id for s in finish(p, "P", at(0, 5)).starts] == [2]


def test_trigger_of_an_unknown_process_is_ignored() -> None:
    p = Planner(registry(proc("P", hold=True)), now=at(0))
    assert p.handle(at(0), trigger("nope", at(0))).starts == ()


# -- reset ---------------------------------------------------------------------------------------


def test_reset_lifts_max_runs_and_done() -> None:
    p = Planner(registry(proc("R", every=H, max_runs=1), proc("S"), slots=2), now=at(0))
    p.handle(at(0))
    finish(p, "R", at(0, 1))
    finish(p, "S", at(0, 1))
    p.handle(at(1))
    assert list(reasons_of(p, "R")) == ["max_runs"]
    assert list(reasons_of(p, "S")) == ["done"]
    step = p.handle(
        at(1, 30), ProcessReset(process="R", at=at(1, 30)), ProcessReset(process="S", at=at(1, 30))
    )
    assert sorted(started(step)) == ["R", "S"]


def test_reset_makes_a_failed_descendant_runnable_again() -> None:
    """Fix the job, reset it: it reruns on its ancestors' existing successes."""
    p = Planner(registry(proc("A"), proc("P", ancestors=["A"])), now=at(0))
    p.handle(at(0))
    assert started(finish(p, "A", at(1))) == ["P"]
    finish(p, "P", at(2), S.FAILED)
    assert set(reasons_of(p, "P")) == {"failed", "ancestors"}
    step = p.handle(at(3), ProcessReset(process="P", at=at(3)))
    assert started(step) == ["P"]


def test_reset_of_an_unknown_process_is_ignored() -> None:
    p = Planner(registry(proc("P")), now=at(0))
    assert started(p.handle(at(0), ProcessReset(process="nope", at=at(0)))) == ["P"]


# -- hot registry changes ------------------------------------------------------------------------


def test_add_a_process_while_runs_are_in_flight() -> None:
    base = [proc("A", expected_duration=3600)]
    p = Planner(registry(*base, slots=2), now=at(0))
    assert started(p.handle(at(0))) == ["A"]
    changed = registry(*base, proc("N", every=H), proc("D", ancestors=["A"]), slots=2)
    step = p.handle(at(0, 30), RegistryChanged(registry=changed, applied_at={"N": at(0, 30)}))
    assert started(step) == ["N"]  # a new every process fires at once
    assert reasons_of(p, "D") == {"ancestors": "A (running)"}
    assert sorted(started(finish(p, "A", at(1)))) == ["D"]
    finish(p, "N", at(1, 10))
    assert started(p.handle(at(1, 30))) == ["N"]  # its grid is anchored when it was applied


def test_remove_a_process_with_a_run_in_flight() -> None:
    p = Planner(registry(proc("A", retries=2), proc("B"), slots=1), now=at(0))
    assert started(p.handle(at(0))) == ["A"]
    step = p.handle(at(0, 1), RegistryChanged(registry=registry(proc("B"), slots=1)))
    # A keeps its slot until it ends; no retry for a process that is gone
    assert started(step) == []
    assert [name for name, _ in p.flights()] == ["A"]
    assert reasons_of(p, "B") == {"slots": "all 1 slots busy"}
    with pytest.raises(ProcessNotFound):
        p.explain("A", at(0, 1))
    step = finish(p, "A", at(0, 2), S.FAILED)
    assert step.settled == (RunSettled(run_id="A-1", process="A", attempt=1, status=S.FAILED),)
    assert started(step) == ["B"]
    assert [name for name, _ in p.flights()] == ["B"]


def test_remove_a_process_waiting_to_retry_cancels_the_run() -> None:
    p = Planner(registry(proc("A", retries=2, retry_delay=600), proc("B", hold=True)), now=at(0))
    p.handle(at(0))
    finish(p, "A", at(0, 1), S.FAILED)
    step = p.handle(at(0, 2), RegistryChanged(registry=registry(proc("B", hold=True))))
    assert step.settled == (RunSettled(run_id="A-1", process="A", attempt=1, status=S.CANCELLED),)
    assert p.flights() == []
    assert p.handle(at(0, 11)).starts == ()


def test_re_adding_a_process_while_its_old_run_is_in_flight_keeps_its_accounting() -> None:
    defs = [proc("A", every=10 * M, expected_duration=3600)]
    p = Planner(registry(*defs, slots=3), now=at(0))
    assert started(p.handle(at(0))) == ["A"]
    p.handle(at(0, 1), RegistryChanged(registry=registry(slots=3)))
    step = p.handle(at(0, 2), RegistryChanged(registry=registry(*defs, slots=3)))
    assert started(step) == []
    assert reasons_of(p, "A") == {"max_active": "1 of 1 running"}
    step = finish(p, "A", at(0, 30))
    assert [s.run_id for s in step.starts] == ["A-2"]


def test_change_priority_while_runs_are_in_flight() -> None:
    defs = [proc("X", priority=9), proc("Y", priority=1), proc("Z", priority=0)]
    p = Planner(registry(*defs, slots=1), now=at(0))
    assert started(p.handle(at(0))) == ["X"]
    changed = registry(proc("X", priority=9), proc("Y", priority=1), proc("Z", priority=5), slots=1)
    step = p.handle(at(0, 1), RegistryChanged(registry=changed))
    assert started(step) == []
    assert [s.run_id for s in finish(p, "X", at(0, 2)).starts] == ["Z-1"]


def test_hold_a_candidate_and_release_it() -> None:
    defs = [proc("B", priority=9), proc("P")]
    p = Planner(registry(*defs, slots=1), now=at(0))
    p.handle(at(0))
    held = registry(proc("B", priority=9), proc("P", hold=True), slots=1)
    p.handle(at(0, 1), RegistryChanged(registry=held))
    assert reasons_of(p, "P") == {"hold": ""}
    assert started(finish(p, "B", at(0, 2))) == []
    assert started(p.handle(at(0, 3), RegistryChanged(registry=registry(*defs, slots=1)))) == ["P"]


def test_raise_max_active_while_running() -> None:
    p = Planner(registry(proc("P", every=10 * M), slots=3), now=at(0))
    p.handle(at(0))
    p.handle(at(0, 10))
    assert list(reasons_of(p, "P")) == ["max_active"]
    more = registry(proc("P", every=10 * M, max_active=2), slots=3)
    step = p.handle(at(0, 11), RegistryChanged(registry=more))
    assert [s.scheduled for s in step.starts] == [at(0, 10)]


def test_change_pool_size_and_slots() -> None:
    defs = [proc(n, pool="wh") for n in "abc"]
    p = Planner(registry(*defs, slots=2, pools={"wh": 1}), now=at(0))
    assert started(p.handle(at(0))) == ["a"]
    assert reasons_of(p, "b") == {"pool": "pool 'wh': 1 of 1 in use"}
    step = p.handle(at(0, 1), RegistryChanged(registry=registry(*defs, slots=2, pools={"wh": 3})))
    assert started(step) == ["b"]
    assert [(d.process, d.decision) for d in p.plan(at(0, 1))] == [
        ("c", "wait"),
        ("a", "wait"),
        ("b", "wait"),
    ]
    step = p.handle(at(0, 2), RegistryChanged(registry=registry(*defs, slots=3, pools={"wh": 3})))
    assert started(step) == ["c"]


def test_a_run_keeps_the_pool_it_started_in() -> None:
    p = Planner(
        registry(proc("a", pool="p1"), proc("b", pool="p1"), slots=3, pools={"p1": 1, "p2": 1}),
        now=at(0),
    )
    assert started(p.handle(at(0))) == ["a"]
    moved = registry(proc("a", pool="p2"), proc("b", pool="p1"), slots=3, pools={"p1": 1, "p2": 1})
    assert started(p.handle(at(0, 1), RegistryChanged(registry=moved))) == []  # a holds p1
    assert started(finish(p, "a", at(0, 2))) == ["b"]


def test_change_ancestors_rewires_the_graph() -> None:
    p = Planner(
        registry(proc("A", every=H), proc("B", every=H), proc("C", ancestors=["A"]), slots=3),
        now=at(0),
    )
    p.handle(at(0))
    rewired = registry(proc("A", every=H), proc("B", every=H), proc("C", ancestors=["B"]), slots=3)
    p.handle(at(0, 1), RegistryChanged(registry=rewired))
    assert reasons_of(p, "C") == {"ancestors": "B (running)"}
    assert started(finish(p, "A", at(0, 2))) == []
    assert started(finish(p, "B", at(0, 3))) == ["C"]


def test_change_the_cron_of_a_waiting_process() -> None:
    p = Planner(registry(proc("P", cron="0 5 * * *")), now=at(0))
    assert p.handle(at(0)).next_wakeup == at(5)
    step = p.handle(at(1), RegistryChanged(registry=registry(proc("P", cron="0 2 * * *"))))
    assert step.next_wakeup == at(2)
    assert started(p.handle(at(2))) == ["P"]


def test_change_the_timezone() -> None:
    p = Planner(registry(proc("P", not_before=time(3))), now=at(0))
    assert p.handle(at(0)).next_wakeup == at(3)
    madrid = registry(proc("P", not_before=time(3)), timezone="Europe/Madrid")
    step = p.handle(at(1), RegistryChanged(registry=madrid))
    assert step.next_wakeup == at(2)
    assert reasons_of(p, "P") == {"not_before": "until 2026-03-02T03:00:00+01:00"}


# -- capacity ------------------------------------------------------------------------------------


def test_capacity_changes_set_the_slots_when_the_registry_does_not() -> None:
    p = Planner(registry(*(proc(n) for n in "abcd")), now=at(0), threads=1)
    assert p.slots == 1
    assert started(p.handle(at(0))) == ["a"]
    assert started(p.handle(at(0, 1), CapacityChanged(threads=3))) == ["b", "c"]
    assert p.slots == 3
    # fewer threads: nothing is stopped, nothing new starts until runs end
    assert started(p.handle(at(0, 2), CapacityChanged(threads=1))) == []
    assert started(finish(p, "a", at(0, 3))) == []
    assert started(finish(p, "b", at(0, 4))) == []
    assert started(finish(p, "c", at(0, 5))) == ["d"]


def test_registry_slots_and_the_override_win_over_threads() -> None:
    p = Planner(registry(proc("a"), slots=2), now=at(0), threads=8)
    assert p.slots == 2
    p = Planner(registry(proc("a"), slots=2), now=at(0), threads=8, slots=5)
    assert p.slots == 5


def test_pool_counts_runs_of_every_process_in_it() -> None:
    defs = [proc("a", pool="wh", max_active=2, every=10 * M), proc("b", pool="wh")]
    p = Planner(registry(*defs, slots=5, pools={"wh": 2}), now=at(0))
    assert started(p.handle(at(0))) == ["a", "b"]
    assert started(p.handle(at(0, 10))) == []
    assert reasons_of(p, "a") == {"pool": "pool 'wh': 2 of 2 in use"}
    assert started(finish(p, "b", at(0, 11))) == ["a"]


# -- the step --------------------------------------------------------------------------------------


def test_decisions_are_reported_when_they_change() -> None:
    p = Planner(registry(proc("A", priority=1), proc("B")), now=at(0))

    def seen(step: Step) -> list[tuple[str, str, list[str]]]:
        return [(d.process, d.decision, [r.code.value for r in d.reasons]) for d in step.decisions]

    assert seen(p.handle(at(0))) == [
        ("A", "start", []),
        ("B", "wait", ["slots"]),
        ("A", "wait", ["max_active"]),  # what a started process waits for next
    ]
    assert p.handle(at(0, 1)).decisions == ()
    assert seen(finish(p, "A", at(0, 2))) == [
        ("A", "wait", ["done"]),
        ("B", "start", []),
        ("B", "wait", ["max_active"]),
    ]


def test_idle() -> None:
    p = Planner(registry(proc("A"), proc("C", cron="0 5 * * *")), now=at(0))
    p.handle(at(0))
    assert not p.idle()
    finish(p, "A", at(0, 1))
    assert p.idle()  # only time can start something now


# -- restart: the core rebuilt from history ------------------------------------------------------


def test_runs_in_flight_before_a_restart_keep_their_capacity() -> None:
    reg = registry(proc("P", every=H, pool="wh"), proc("Q", pool="wh"), slots=3, pools={"wh": 1})
    running = ActiveRun(
        run_id="P-3", process="P", attempt=1, status=S.RUNNING, scheduled=at(0), started=at(0)
    )
    history = ProcessHistory(runs_created=3, last_fire=at(0), last_start=at(0), active=(running,))
    p = Planner(reg, now=at(0, 10), applied_at={"P": at(0, day=-1)}, histories={"P": history})
    assert started(p.handle(at(0, 10))) == []
    assert reasons_of(p, "Q") == {"pool": "pool 'wh': 1 of 1 in use"}
    assert [f.run_id for _, f in p.flights()] == ["P-3"]
    step = p.handle(at(0, 20), RunFinished(run_id="P-3", status=S.SUCCEEDED, at=at(0, 20)))
    assert started(step) == ["Q"]
    step = finish(p, "Q", at(0, 30))
    assert started(p.handle(at(1))) == ["P"]
    assert run_of(p, "P") == "P-4"


def test_a_run_waiting_to_retry_before_a_restart_resumes() -> None:
    waiting = ActiveRun(
        run_id="R-1",
        process="R",
        attempt=1,
        status=S.RETRYING,
        scheduled=at(0),
        started=at(0),
        retry_at=at(0, 30),
        params={"x": 1},
    )
    history = ProcessHistory(runs_created=1, last_start=at(0), active=(waiting,))
    p = Planner(registry(proc("R", retries=2)), now=at(0, 10), histories={"R": history})
    step = p.handle(at(0, 10))
    assert step.next_wakeup == at(0, 30)
    assert not p.idle()
    step = p.handle(at(0, 30))
    assert [(s.run_id, s.attempt, s.kind, dict(s.params)) for s in step.starts] == [
        ("R-1", 2, StartKind.RETRY, {"x": 1})
    ]


# -- explain -------------------------------------------------------------------------------------


def test_explain_says_what_must_happen() -> None:
    reg = registry(
        proc("A", expected_duration=600),
        proc("B", ancestors=["A"], not_before=time(5)),
        proc("H", hold=True),
    )
    p = Planner(reg, now=at(0))
    p.handle(at(0))
    a = p.explain("A", at(0, 1))
    assert (a.decision, a.running) == ("running", ("A-1",))
    b = p.explain("B", at(0, 1))
    assert b.decision == "wait"
    assert b.next_possible == at(5)
    assert b.blocked_until == (
        "time to reach 2026-03-02T05:00:00+00:00; fresh successes of its ancestors (A (running))"
    )
    assert p.explain("H", at(0, 1)).blocked_until == "`planner release`"
    with pytest.raises(ProcessNotFound):
        p.explain("nope", at(0))
