"""Conditions and retry decisions in the pure core: the driver asks and reports, the core judges.

A condition is asked only of a process that nothing else holds back (``conditions_due``); its
answer lets one run start, if it is true, given since the last start and within
``condition_interval``. A failed attempt whose job said not to retry (``retry_on``,
``on_error``) ends its run even with retries left.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from planner.core.events import Code, ConditionAnswered, RunFinished
from planner.core.planner import Planner
from planner.core.readiness import CONDITION_FRESH
from planner.interfaces.cli import cli
from planner.simulation.simulate import simulate
from registry.lifecycle import RunStatus
from tests.factories import at, finish, proc, reasons_of, registry, run_of, started

M = timedelta(minutes=1)
S = timedelta(seconds=1)
SENSOR = "workflows.jobs.checks:ready"


def answer(p: Planner, name: str, value: bool, when: object, detail: str = "") -> list[str]:
    step = p.handle(when, ConditionAnswered(process=name, value=value, at=when, detail=detail))  # type: ignore[arg-type]
    return started(step)


def test_a_process_with_a_condition_waits_until_it_answers_true() -> None:
    p = Planner(registry(proc("load", condition=SENSOR)), now=at(0))
    assert started(p.handle(at(0))) == []
    assert reasons_of(p, "load") == {"condition": "not asked yet"}
    assert p.conditions_due() == {"load": at(0)}  # ask at once

    assert answer(p, "load", False, at(0)) == []
    assert reasons_of(p, "load")["condition"].startswith("false (asked")
    assert p.conditions_due() == {"load": at(0) + M}  # asked again a minute later

    assert answer(p, "load", False, at(0, 1), "error: OSError: no route") == []
    assert "OSError: no route" in reasons_of(p, "load")["condition"]
    assert answer(p, "load", True, at(0, 2)) == ["load"]
    assert p.conditions_due() == {}  # running: nothing to ask


def test_each_run_needs_a_true_answer_given_since_its_last_start() -> None:
    p = Planner(registry(proc("poll", every=600, condition=SENSOR)), now=at(0))
    p.handle(at(0))
    assert answer(p, "poll", True, at(0)) == ["poll"]
    finish(p, "poll", at(0, 1))
    assert started(p.handle(at(0, 10))) == []  # due again, but the old answer was used
    assert reasons_of(p, "poll") == {"condition": "not asked yet"}
    assert p.conditions_due() == {"poll": at(0, 10)}
    assert answer(p, "poll", True, at(0, 10)) == ["poll"]


def test_a_true_answer_goes_stale_after_the_interval() -> None:
    reg = registry(proc("a", expected_duration=3600), proc("b", condition=SENSOR), slots=1)
    p = Planner(reg, now=at(0))
    # the condition is the last readiness rule; capacity comes after it
    assert started(p.handle(at(0))) == ["a"]
    assert p.conditions_due() == {"b": at(0)}
    assert answer(p, "b", True, at(0)) == []  # true, but no free slot
    assert Code.SLOTS.value in reasons_of(p, "b")
    finish(p, "a", at(0, 5))  # after the interval: the answer is stale, asked again
    stale = f"true at {at(0).isoformat()}; asking again before it starts"
    assert reasons_of(p, "b") == {"condition": stale}
    assert p.conditions_due() == {"b": at(0, 5)}
    assert answer(p, "b", True, at(0, 5)) == ["b"]


def test_a_true_answer_is_asked_again_just_before_the_start_it_waited_for() -> None:
    # asked once an hour while false; a true answer that waited for a slot is asked again
    hourly = proc("b", condition=SENSOR, condition_interval=timedelta(hours=1))
    p = Planner(registry(proc("a", expected_duration=3600), hourly, slots=1), now=at(0))
    assert started(p.handle(at(0))) == ["a"]
    assert answer(p, "b", True, at(0)) == []  # true, but no free slot
    assert p.conditions_due() == {"b": at(0) + CONDITION_FRESH / 2}  # asked ahead of the slot
    # not asked (or not answered) in time; the source goes away meanwhile; a's end frees the
    # slot 30 s after the true answer
    freed = at(0) + 30 * S
    assert started(finish(p, "a", freed)) == []  # not on the 30-second-old answer
    stale = f"true at {at(0).isoformat()}; asking again before it starts"
    assert reasons_of(p, "b") == {"condition": stale}
    assert p.conditions_due() == {"b": freed}  # asked at once
    assert answer(p, "b", False, freed + S, "false (it returned 0)") == []  # no start
    assert reasons_of(p, "b")["condition"].startswith("false (it returned 0)")
    assert p.conditions_due() == {"b": freed + S + timedelta(hours=1)}
    assert answer(p, "b", True, at(0, 40)) == ["b"]  # a fresh true answer starts it at once


def test_a_candidate_waiting_for_a_slot_is_asked_ahead_and_keeps_its_place() -> None:
    hourly = proc("b", condition=SENSOR, condition_interval=timedelta(hours=1))
    p = Planner(registry(proc("a", expected_duration=3600), hourly, slots=1), now=at(0))
    assert started(p.handle(at(0))) == ["a"]
    assert answer(p, "b", True, at(0)) == []
    ahead = at(0) + CONDITION_FRESH / 2
    assert p.conditions_due() == {"b": ahead}
    step = p.handle(ahead, ConditionAnswered(process="b", value=True, at=ahead))
    assert step.decisions == ()  # still a candidate held back by the slot: nothing to log
    assert reasons_of(p, "b") == {"slots": "all 1 slots busy"}
    assert p.conditions_due() == {"b": ahead + CONDITION_FRESH / 2}
    # the slot frees 12 s after the first answer, 7 s after the one asked ahead: it starts
    assert started(finish(p, "a", at(0) + 12 * S)) == ["b"]


def test_nothing_is_asked_ahead_of_capacity_that_nothing_in_flight_frees() -> None:
    gpu = proc("b", condition=SENSOR, resources={"gpu": 1})
    p = Planner(registry(gpu), now=at(0), resources=({"cpu": 4},))
    p.handle(at(0))
    assert answer(p, "b", True, at(0)) == []
    assert "resources" in reasons_of(p, "b")
    assert p.conditions_due() == {} and p.idle()  # --until-idle ends: no ask keeps it up


def test_a_true_answer_is_fresh_for_a_start_a_few_seconds_only() -> None:
    p = Planner(
        registry(proc("a", expected_duration=5), proc("b", condition=SENSOR), slots=1), now=at(0)
    )
    assert started(p.handle(at(0))) == ["a"]
    assert answer(p, "b", True, at(0)) == []
    assert started(finish(p, "a", at(0) + CONDITION_FRESH - S)) == ["b"]  # fresh enough


def test_a_condition_is_not_asked_while_other_rules_hold_the_process_back() -> None:
    reg = registry(
        proc("up", expected_duration=60), proc("down", ancestors=["up"], condition=SENSOR)
    )
    p = Planner(reg, now=at(0))
    assert started(p.handle(at(0))) == ["up"]
    assert p.conditions_due() == {}
    assert "ancestors" in reasons_of(p, "down")
    finish(p, "up", at(0, 1))
    assert p.conditions_due() == {"down": at(0, 1)}
    assert answer(p, "down", True, at(0, 1)) == ["down"]


def test_retries_do_not_ask_the_condition_again() -> None:
    p = Planner(registry(proc("x", condition=SENSOR, retries=1)), now=at(0))
    p.handle(at(0))
    assert answer(p, "x", True, at(0)) == ["x"]
    step = finish(p, "x", at(0, 1), RunStatus.FAILED)
    assert started(step) == ["x"] and step.starts[0].attempt == 2


def test_a_failure_the_job_says_not_to_retry_ends_the_run() -> None:
    p = Planner(registry(proc("x", retries=3)), now=at(0))
    p.handle(at(0))
    run_id = run_of(p, "x")
    step = p.handle(
        at(0, 1), RunFinished(run_id=run_id, status=RunStatus.FAILED, at=at(0, 1), retry=False)
    )
    assert started(step) == []
    assert [(s.run_id, s.status) for s in step.settled] == [(run_id, RunStatus.FAILED)]
    assert "failed" in reasons_of(p, "x")


# -- simulated ----------------------------------------------------------------------------------


def test_simulated_conditions_are_true_unless_told_when_they_become_true() -> None:
    reg = registry(
        proc("sensed", condition=SENSOR, expected_duration=60),
        proc("after", ancestors=["sensed"], expected_duration=60),
        proc("free", condition=SENSOR, expected_duration=60),
    )
    sim = simulate(reg, start=at(0), until=at(6), conditions={"sensed": at(2, 30)})
    starts = {r.process: r.start for r in sim.runs}
    assert starts["free"] == at(0)
    # false until 02:30, asked every minute (its condition_interval): it starts at 02:30
    assert starts["sensed"] == at(2, 30) and starts["after"] == at(2, 31)


def test_simulate_conditions_file(tmp_path: Path) -> None:
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        "processes:\n"
        "  load:\n"
        "    run: workflows.jobs.demo:noop\n"
        "    condition: workflows.jobs.demo:noop\n"
        "    expected_duration: 1m\n"
    )
    when = tmp_path / "conditions.yaml"
    when.write_text('load: "2026-03-02T05:00:00"\n')
    args = ["simulate", str(registry_file), "--start", "2026-03-02T00:00:00", "--for", "12h"]
    out = CliRunner().invoke(cli, [*args, "--conditions", str(when), "--format", "json"])
    assert out.exit_code == 0, out.output
    runs = json.loads(out.output)["runs"]
    assert [(r["process"], r["start"]) for r in runs] == [("load", "2026-03-02T05:00:00+00:00")]
    when.write_text('nope: "2026-03-02T05:00:00"\n')
    bad = CliRunner().invoke(cli, [*args, "--conditions", str(when)])
    assert bad.exit_code == 1 and "nope" in bad.output
