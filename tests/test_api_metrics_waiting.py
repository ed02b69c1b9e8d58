"""``planner_waiting{reason}`` counts the processes that wait, not those whose run is in flight:
a running process at its ``max_active`` is running, as the live page's queue has it. Fed by a
real planning core, step by step, through the metrics' own listener."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from planner.core.events import Step
from planner.core.planner import Planner
from planner.interfaces.api import PlannerMetrics
from registry.lifecycle import RunStatus
from tests.factories import T0, at, finish, proc, registry


@dataclass
class FakeDriver:
    """What the metrics read of the live driver."""

    core: Planner
    decision_s: float = 0.0
    ended_at: list[datetime] = field(default_factory=list)
    listeners: list[object] = field(default_factory=list)

    def clock(self) -> datetime:
        return T0


def waiting(metrics: PlannerMetrics) -> dict[str, float]:
    """``planner_waiting`` by reason, the zeros left out."""
    text = metrics.exposition().decode()
    return {
        s.labels["reason"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "planner_waiting"
        for s in f.samples
        if s.value
    }


def test_a_process_whose_run_is_in_flight_is_not_waiting() -> None:
    core = Planner(
        registry(
            proc("extract"),
            proc("load", ancestors=["extract"]),
            proc("tick", every=60, retries=1, retry_delay=600),
            slots=4,
        ),
        now=T0,
    )
    driver = FakeDriver(core)
    metrics = PlannerMetrics()
    metrics.attach(driver)  # type: ignore[arg-type]

    def step(s: Step) -> dict[str, float]:
        metrics.on_step(driver, s)  # type: ignore[arg-type]
        return waiting(metrics)

    # extract and tick run (each at its max_active of 1): only load waits, for its ancestor
    assert step(core.handle(T0)) == {"ancestors": 1}
    # tick is due again while its run is still running: it runs, it does not wait
    assert step(core.handle(at(0, 2))) == {"ancestors": 1}
    assert step(finish(core, "extract", at(0, 3))) == {"done": 1}  # load runs now
    assert step(finish(core, "load", at(0, 4))) == {"done": 2}
    # a failed attempt with a retry left: waiting for its retry delay, with no run in flight
    assert step(finish(core, "tick", at(0, 5), RunStatus.FAILED)) == {
        "done": 2,
        "retry_delay": 1,
    }
