"""The simulated driver: the same core on a virtual clock, runs lasting their expected durations."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from planner.core.events import Code
from planner.core.schedule import zone
from planner.simulation.simulate import DEFAULT_DURATION, Outcome, SimRun, simulate
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import ProcessHistory
from tests.factories import at, proc, registry

H = timedelta(hours=1)
M = timedelta(minutes=1)


def runs(sim_runs: list[SimRun]) -> list[tuple[str, datetime, datetime]]:
    return [(r.process, r.start, r.end) for r in sim_runs]


def diamond(slots: int) -> RegistryDef:
    return registry(
        proc("A", expected_duration=600),
        proc("B", ancestors=["A"], expected_duration=1200, priority=1),
        proc("C", ancestors=["A"], expected_duration=300),
        proc("D", ancestors=["B", "C"], expected_duration=60),
        slots=slots,
    )


def test_a_true_condition_waiting_for_a_slot_is_not_a_step_of_its_own() -> None:
    """A simulated condition, once true, stays true: asking it again while its process waits
    for a slot only refreshes the answer, so the simulator answers at the steps that come anyway
    instead of stepping every few virtual seconds for it (the answer still goes stale on time:
    a step each ``CONDITION_FRESH``)."""
    reg = registry(
        proc("busy", every=3600, expected_duration=3600),
        proc("gated", condition="workflows.jobs.demo:noop", priority=-1),
        slots=1,
    )
    sim = simulate(reg, start=at(0), until=at(0) + timedelta(days=1))
    assert {r.process for r in sim.runs} == {"busy"}  # gated waits for the slot all day
    assert sim.steps <= 24 * 3600 / 10 + 100  # not one every 5 s (17 282 before)


def test_a_diamond_with_two_slots() -> None:
    sim = simulate(diamond(2), start=at(0), until=at(6))
    assert runs(sim.runs) == [
        ("A", at(0), at(0, 10)),
        ("B", at(0, 10), at(0, 30)),
        ("C", at(0, 10), at(0, 15)),
        ("D", at(0, 30), at(0, 31)),
    ]
    assert sim.makespan == timedelta(minutes=31)
    assert sim.slots == 2


def test_a_diamond_with_one_slot_follows_the_ranking() -> None:
    sim = simulate(diamond(1), start=at(0), until=at(6))
    assert [r.process for r in sim.runs] == ["A", "B", "C", "D"]
    assert sim.makespan == timedelta(minutes=36)


def test_slots_argument_overrides_the_registry() -> None:
    sim = simulate(diamond(1), start=at(0), until=at(6), slots=2)
    assert sim.slots == 2
    assert sim.makespan == timedelta(minutes=31)


def test_durations_come_from_outcomes_then_expected_duration_then_the_default() -> None:
    reg = registry(proc("X", expected_duration=600), proc("Y"), proc("Z"), slots=3)
    sim = simulate(reg, start=at(0), until=at(1), outcomes={"Z": Outcome(duration=42 * M)})
    assert {r.process: r.end - r.start for r in sim.runs} == {
        "X": timedelta(minutes=10),
        "Y": DEFAULT_DURATION,
        "Z": timedelta(minutes=42),
    }


def test_failures_are_retried_after_their_delay() -> None:
    reg = registry(
        proc("F", retries=2, retry_delay=60, retry_backoff=3.0, expected_duration=60),
        proc("after", ancestors=["F"]),
    )
    sim = simulate(
        reg,
        start=at(0),
        until=at(1),
        outcomes={"F": Outcome(duration=M, status=RunStatus.FAILED)},
    )
    assert [(r.run_id, r.attempt, r.start, r.status) for r in sim.runs] == [
        ("F-1", 1, at(0), RunStatus.FAILED),
        ("F-1", 2, at(0, 2), RunStatus.FAILED),  # 1 min delay
        ("F-1", 3, at(0, 6), RunStatus.FAILED),  # 3 min delay
    ]


def test_runs_still_going_at_the_end_are_reported_running() -> None:
    reg = registry(proc("L", expected_duration=5 * 3600))
    sim = simulate(reg, start=at(0), until=at(1))
    assert [(r.process, r.status, r.end) for r in sim.runs] == [("L", RunStatus.RUNNING, at(5))]
    assert sim.makespan == timedelta(0)


def test_recurrent_processes_run_until_the_end() -> None:
    reg = registry(proc("E", every=H, expected_duration=60), proc("C", cron="30 */2 * * *"))
    sim = simulate(reg, start=at(0), until=at(5))
    expected = [("E", at(h)) for h in range(6)] + [("C", at(h, 30)) for h in (0, 2, 4)]
    assert [(r.process, r.start) for r in sim.runs] == sorted(expected, key=lambda x: x[1])
    assert [r.status for r in sim.runs][-1] is RunStatus.RUNNING  # E at 05:00 ends after


def test_as_json() -> None:
    reg = registry(proc("A", expected_duration=600), timezone="Europe/Madrid")
    sim = simulate(reg, start=at(0), until=at(1))
    assert sim.as_json(zone("Europe/Madrid")) == {
        "start": "2026-03-02T01:00:00+01:00",
        "end": "2026-03-02T02:00:00+01:00",
        "slots": 1,
        "runs": [
            {
                "process": "A",
                "run_id": "A-1",
                "attempt": 1,
                "start": "2026-03-02T01:00:00+01:00",
                "end": "2026-03-02T01:10:00+01:00",
                "status": "succeeded",
            }
        ],
    }


def test_json_runs_are_sorted_by_start() -> None:
    sim = simulate(diamond(2), start=at(0), until=at(6))
    starts = [r["start"] for r in sim.as_json(UTC)["runs"]]
    assert starts == sorted(starts)


def test_the_same_input_gives_the_same_simulation() -> None:
    reg = registry(
        *(proc(f"p{i}", every=(i + 1) * 7 * M, expected_duration=(i + 2) * 60) for i in range(8)),
        slots=3,
    )
    one = simulate(reg, start=at(0), until=at(12), keep_decisions=True)
    two = simulate(reg, start=at(0), until=at(12), keep_decisions=True)
    assert one.runs == two.runs
    assert one.decisions == two.decisions
    assert one.steps == two.steps


def test_keep_decisions_records_the_reasons() -> None:
    reg = registry(proc("A", expected_duration=600), proc("B", ancestors=["A"]))
    sim = simulate(reg, start=at(0), until=at(1), keep_decisions=True)
    first = next((t, d.process, d.decision) for t, d in sim.decisions if d.process == "B")
    assert first == (at(0), "B", "wait")
    reasons = next(d.reasons for t, d in sim.decisions if d.process == "B" and t == at(0))
    assert [r.code for r in reasons] == [Code.ANCESTORS]
    assert simulate(reg, start=at(0), until=at(1)).decisions == []


def test_histories_carry_over() -> None:
    reg = registry(proc("done-before"), proc("after", ancestors=["done-before"]))
    history = ProcessHistory(
        runs_created=1,
        last_start=at(0, day=-1),
        last_end=at(0, 10, day=-1),
        last_success_end=at(0, 10, day=-1),
        successes=1,
        last_outcome=RunStatus.SUCCEEDED,
    )
    sim = simulate(reg, start=at(0), until=at(1), histories={"done-before": history})
    assert [r.process for r in sim.runs] == ["after"]


def test_a_daily_cron_runs_once_a_day_across_both_dst_changes() -> None:
    reg = registry(
        proc("night", cron="30 2 * * *", expected_duration=600),
        proc("after", ancestors=["night"], not_before=time(4), refresh_window=12 * H),
        timezone="Europe/Madrid",
        slots=2,
    )
    madrid = zone("Europe/Madrid")
    for first_day in (datetime(2026, 3, 27, tzinfo=madrid), datetime(2026, 10, 23, tzinfo=madrid)):
        sim = simulate(reg, start=first_day, until=first_day + timedelta(days=4))
        night = [r.start.astimezone(madrid).isoformat() for r in sim.runs if r.process == "night"]
        after = [r.start.astimezone(madrid) for r in sim.runs if r.process == "after"]
        assert len(night) == 4, night
        assert [a.time() for a in after] == [time(4)] * 4
    day = datetime(2026, 3, 29, tzinfo=madrid)
    spring = simulate(reg, start=day, until=day + timedelta(days=1))
    first = spring.runs[0]
    assert first.process == "night"
    assert first.start.astimezone(madrid).isoformat() == "2026-03-29T03:00:00+02:00"


DECISIONS_SCRIPT = """
import json
from datetime import timedelta
from planner.simulation.simulate import simulate
from tests.factories import at, proc, registry
reg = registry(
    *(proc(f"p{i}", every=timedelta(minutes=30), expected_duration=600) for i in range(12)),
    slots=3,
)
sim = simulate(reg, start=at(0), until=at(3), keep_decisions=True)
print(json.dumps([(t.isoformat(), d.as_json()) for t, d in sim.decisions]))
"""


def test_decisions_do_not_depend_on_the_interpreter_hash_seed() -> None:
    """The same registry gives the same decision log in any process (string hashing varies)."""
    root = Path(__file__).resolve().parent.parent
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", DECISIONS_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=True,
            timeout=120,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
