"""A realistic history without a cluster: random outcomes for the simulator, written to a store.

The history notebook needs a database with runs, failures, retries and late starts.
``RandomOutcomes`` draws each simulated attempt's duration and outcome; ``record_simulation`` then
writes the simulated attempts through the store API, in the order and with the fields the live
driver would. It is the only helper of ``planner.interfaces.notebook`` that changes anything.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from planner.core.schedule import Schedule, zone
from planner.simulation.simulate import Outcome, SimRun, Simulation
from registry.definitions.durations import format_duration
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import ErrorInfo
from registry.storage.store import Store

__all__ = ["RandomOutcomes", "record_simulation"]


class RandomOutcomes(Mapping[str, Outcome]):
    """Per-run outcomes for ``simulate``, drawn from a seeded generator at every lookup.

    ``simulate`` looks a process up once for each attempt it starts, so every attempt gets its own
    draw: a duration around the process's ``expected_duration`` (log-normal, spread ``jitter``),
    failure with probability ``failure_rates[process]`` (ending after part of the duration), and
    time-out with probability ``timeout_rates[process]`` when the process has a ``timeout``.
    """

    def __init__(
        self,
        registry: RegistryDef,
        *,
        seed: int = 0,
        jitter: float = 0.25,
        failure_rates: Mapping[str, float] | None = None,
        timeout_rates: Mapping[str, float] | None = None,
        default_duration: timedelta = timedelta(minutes=1),
    ) -> None:
        self._processes = dict(registry.processes)
        self._random = random.Random(seed)
        self._jitter = jitter
        self._failure_rates = dict(failure_rates or {})
        self._timeout_rates = dict(timeout_rates or {})
        self._default = default_duration

    def __getitem__(self, process: str) -> Outcome:
        definition = self._processes[process]
        draw = self._random
        duration = (definition.expected_duration or self._default) * draw.lognormvariate(
            0.0, self._jitter
        )
        if definition.timeout is not None and draw.random() < self._timeout_rates.get(process, 0):
            return Outcome(duration=definition.timeout, status=RunStatus.TIMED_OUT)
        if draw.random() < self._failure_rates.get(process, 0.0):
            return Outcome(duration=duration * draw.uniform(0.1, 1.0), status=RunStatus.FAILED)
        if definition.timeout is not None:
            duration = min(duration, definition.timeout)
        return Outcome(duration=duration)

    def __iter__(self) -> Iterator[str]:
        return iter(self._processes)

    def __len__(self) -> int:
        return len(self._processes)


def record_simulation(
    store: Store,
    registry: RegistryDef,
    simulation: Simulation,
    *,
    latency: Callable[[SimRun], timedelta] | None = None,
    worker: str = "simulated-worker",
) -> int:
    """Write the finished attempts of ``simulation`` into ``store`` as the live driver would
    (create_run / retry_run, attempt_started, finish_attempt); returns how many attempts.

    The simulator decides and starts at the same instant; ``latency(run)`` adds the time between
    queueing and the job beginning on a worker (at most half the attempt, which keeps its end).
    ``scheduled`` is the fire time for recurrent
    processes (the latest fire at or before the decision) and the decision time otherwise, as in
    the live driver. Runs still running at the end of the simulation are left out, and a run whose
    last attempt failed with retries left stays ``retrying``.
    """
    tz = zone(registry.timezone)
    by_run: dict[str, list[SimRun]] = {}
    for run in sorted(simulation.runs, key=lambda r: (r.start, r.run_id, r.attempt)):
        if run.status is not RunStatus.RUNNING:
            by_run.setdefault(run.run_id, []).append(run)
    written = 0
    for run_id, attempts in by_run.items():
        first = attempts[0]
        definition = registry.processes[first.process]
        scheduled = _scheduled(definition, first.start, simulation.start, tz)
        for attempt in attempts:
            if attempt.attempt == 1:
                store.create_run(
                    run_id=run_id,
                    process=attempt.process,
                    scheduled=scheduled,
                    queued=attempt.start,
                    params=definition.params,
                )
            else:
                store.retry_run(run_id, attempt=attempt.attempt, queued=attempt.start)
            delay = latency(attempt) if latency is not None else timedelta(0)
            began = attempt.start + min(delay, (attempt.end - attempt.start) / 2)
            store.attempt_started(run_id, attempt.attempt, start=began, worker=worker)
            retry_at = None
            retryable = attempt.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
            if retryable and attempt.attempt <= definition.retries:
                retry_at = attempt.end + definition.retry_wait(attempt.attempt)
            store.finish_attempt(
                run_id,
                attempt.attempt,
                status=attempt.status,
                end=attempt.end,
                error=_simulated_error(attempt, definition),
                retry_at=retry_at,
            )
            written += 1
    return written


def _scheduled(definition: ProcessDef, decided: datetime, anchor: datetime, tz: Any) -> datetime:
    if not definition.recurrent:
        return decided
    schedule = Schedule(
        anchor=definition.start_at or anchor, tz=tz, cron=definition.cron, every=definition.every
    )
    return schedule.latest_at_or_before(decided) or decided


def _simulated_error(run: SimRun, definition: ProcessDef) -> ErrorInfo | None:
    if run.status is RunStatus.FAILED:
        return ErrorInfo(type="SimulatedFailure", message=f"{run.process} failed (simulated)")
    if run.status is RunStatus.TIMED_OUT:
        limit = format_duration(definition.timeout) if definition.timeout else "its timeout"
        return ErrorInfo(type="TimeoutError", message=f"no result within {limit}")
    return None
