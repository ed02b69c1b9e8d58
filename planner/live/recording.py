"""Carrying out a step of the live loop: record it as one ``Turn``, then act on it.

``Recording`` is the part of ``LiveDriver`` (``planner.live.loop``) that turns a core ``Step``
into the store's records — ended attempts, saved job states, new runs and next attempts, the
starts workers reported — written in one transaction, and only then submits the new attempts to
Dask and runs ``on_cancel`` hooks (write before act).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from planner.core.events import ChainKept, StartRun, Step
from planner.core.planner import Planner
from planner.live.dispatch import Dispatcher, Done, Started
from planner.live.worker import JobOutcome, JobSpec, run_hook
from registry.lifecycle import RunStatus
from registry.model import ProcessDef
from registry.records import (
    AttemptEnd,
    AttemptStart,
    ErrorInfo,
    NewRun,
    NextAttempt,
    Turn,
)
from registry.storage.store import Store

log = logging.getLogger(__name__)

TIMEOUT_GRACE = timedelta(
    seconds=30
)  # worker-side timeouts should fire first; this is the backstop


@dataclass(slots=True)
class Summary:
    """What a ``planner run`` did."""

    started: int = 0
    ahead: int = 0  # of which chained: handed to Dask before their ancestor ended
    statuses: Counter[str] = field(default_factory=Counter)
    #: attempts that ended: (process, run id, attempt, status, duration as the driver saw it)
    runs: list[tuple[str, str, int, str, float | None]] = field(default_factory=list)
    stopped_by: str | None = None  # "signal" when SIGTERM/Ctrl-C stopped it
    #: attempts an earlier planner left queued or running, with when each was queued: this one
    #: re-attached them or found them lost (``planner.live.restart``)
    inherited: dict[tuple[str, int], datetime] = field(default_factory=dict)
    #: (run id, attempt) of runs cancelled while waiting for their next attempt: no attempt
    #: ended then (the last one had), so they are not in ``runs``
    retries_cancelled: set[tuple[str, int]] = field(default_factory=set)


#: finished attempts the driver keeps for the page, newest last
RECENT_KEPT = 200
#: characters of each recent attempt's log the page gets (the tail)
RECENT_LOG_TAIL = 4096
#: seconds a start reported by a worker may wait to be written with other records: a short
#: job's start then shares its end's transaction instead of costing one of its own
START_FLUSH_S = 0.25


class Recording:
    """Step recording for ``LiveDriver``; the attributes are the driver's."""

    store: Store
    dispatcher: Dispatcher
    core: Planner
    cwd: str | None
    log_max_bytes: int  # each attempt's log bound (Dask's config, read once)
    summary: Summary
    outcomes: dict[tuple[str, int], JobOutcome]
    deadlines: dict[tuple[str, int], datetime]
    recent: list[dict[str, Any]]
    started_writes: list[Started]
    started_waiting: float  # time.monotonic() when the oldest unwritten start arrived
    states: dict[str, Any]
    results: dict[str, Any]  # each ancestor's latest success's JSON result (``ctx.ancestors``)
    clock: Callable[[], datetime]
    ahead: dict[str, StartRun]  # chained runs recorded pending, not yet started
    kept: list[ChainKept]  # withdrawals that came too late, for the core's next step
    held: list[Done]  # ends of chained runs not yet started by the core
    unsubmitted: set[str]  # chained runs decided while their ancestor's end was in transit

    def _carry_out(self, step: Step, *, flush: bool = False) -> bool:
        """Record the step as one ``Turn`` (one transaction, a bounded number of statements),
        then act on it: submit the new attempts, run ``on_cancel`` hooks. Starts that workers
        reported wait for the next turn that writes anyway, up to ``START_FLUSH_S`` (or
        ``flush``). True if it wrote."""
        if not (step.settled or step.starts or step.chained or step.withdrawn):
            if not self.started_writes:
                return False
            if not flush and time.monotonic() - self.started_waiting < START_FLUSH_S:
                return False
        turn = Turn(at=step.at)
        mark = len(self.recent)
        self._record_withdrawn(step.withdrawn, turn)
        hooks = self._record_settled(step, turn)
        specs = self._record_starts(step, turn)
        chained = self._record_chained(step, turn, {spec.run_id for spec, _ in specs})
        ended = {(e.run_id, e.attempt) for e in turn.ended if e.start is not None}
        turn.started = [  # an attempt that also ended in this turn: its end says when it began
            AttemptStart(run_id=s.run_id, attempt=s.attempt, start=s.start, worker=s.worker)
            for s in self.started_writes
            if (s.run_id, s.attempt) not in ended and s.run_id not in self.ahead
        ]
        fresh = self.recent[mark:]  # shown once committed (and not twice if it is not)
        del self.recent[mark:]
        self.store.record_turn(turn)
        self.recent += fresh
        del self.recent[:-RECENT_KEPT]
        # committed; a chained run's start waits for the run to be confirmed
        self.started_writes = [s for s in self.started_writes if s.run_id in self.ahead]
        self.dispatcher.submit_many(specs)
        for spec, after, resources in chained:
            if after is None:  # for the next slot to free
                self.dispatcher.submit_ahead(spec, resources=resources)
            else:
                self.dispatcher.submit_chained(spec, after, resources=resources)
        self._release_held()
        for hook in hooks:
            hook()
        return True

    def _release_held(self) -> None:
        """Ends of chained runs that arrived before the core started them: once started, they
        are handled as any end (next turn); once withdrawn, they are dropped."""
        for item in [d for d in self.held if d.run_id not in self.ahead]:
            self.held.remove(item)
            if self.dispatcher.in_flight(item.run_id):
                self.dispatcher.inbox.put(item)
                self.dispatcher.wake.set()

    def _record_withdrawn(self, withdrawn: Sequence[str], turn: Turn) -> None:
        """Chained runs the core withdrew: make sure Dask will not run them, then delete their
        records. Those Dask had begun stand (``ChainKept`` for the core's next step)."""
        for run_id in [r for r in withdrawn if r in self.unsubmitted]:  # neither recorded nor sent
            self.unsubmitted.discard(run_id)
            self.ahead.pop(run_id, None)
        attempts = [(run_id, 1) for run_id in withdrawn if run_id in self.ahead]
        late = {run_id for run_id, _ in self.dispatcher.withdraw(attempts)} if attempts else set()
        for run_id, _ in attempts:
            if run_id in late:
                self.kept.append(ChainKept(run_id=run_id))
            elif self.ahead.pop(run_id, None) is not None:
                turn.withdrawn.append(run_id)

    def _record_chained(
        self, step: Step, turn: Turn, submitting: set[str]
    ) -> list[tuple[JobSpec, str | None, dict[str, float]]]:
        """Runs decided ahead: recorded ``pending``, then handed to Dask behind their ancestor
        (or, ``after`` None, for the next worker thread to free)."""
        registry = self.core.registry
        out: list[tuple[JobSpec, str | None, dict[str, float]]] = []
        for start in step.chained:
            definition = registry.processes[start.process]
            self.ahead[start.run_id] = start
            after = start.after
            if (
                after is not None
                and after not in submitting
                and not self.dispatcher.in_flight(after)
            ):
                # its ancestor's end is on its way (taken while the database was away): the run
                # is recorded and submitted, plainly, if the core starts it
                self.unsubmitted.add(start.run_id)
                continue
            turn.created.append(_new_run(start, pending=True))
            spec = self._spec(definition, start)
            out.append((spec, start.after, dict(definition.resources)))
        return out

    def _record_settled(self, step: Step, turn: Turn) -> list[Callable[[], object]]:
        registry = self.core.registry
        hooks: list[Callable[[], object]] = []
        for s in step.settled:
            outcome = self.outcomes.pop((s.run_id, s.attempt), None)
            if outcome is None:  # cancelled while waiting to retry, or removed from the registry
                if s.status is RunStatus.CANCELLED:
                    turn.cancelled_retries.append(s.run_id)
                    self.summary.retries_cancelled.add((s.run_id, s.attempt))
                    self._note_finished(
                        s.process, s.run_id, s.attempt, "cancelled", None, attempt_ended=False
                    )
                continue
            attempt_status = outcome.status if s.status is not RunStatus.CANCELLED else s.status
            known = outcome.worker != "unknown"
            turn.ended.append(
                AttemptEnd(
                    run_id=s.run_id,
                    attempt=s.attempt,
                    status=attempt_status,
                    end=outcome.end,
                    start=outcome.start if known else None,
                    worker=outcome.worker if known else None,
                    error=outcome.error,
                    result=outcome.result,
                    result_json=outcome.result_json,
                    log=outcome.log,
                    retry_at=s.retry_at if s.status is RunStatus.RETRYING else None,
                )
            )
            if outcome.status is RunStatus.SUCCEEDED:
                if self.core.dag.g.out_degree(s.process):  # an ancestor: keep its result
                    self.results[s.process] = outcome.result_json
                if outcome.state_changed:
                    turn.states[s.process] = outcome.new_state
                    self.states[s.process] = outcome.new_state
            self._note_finished(
                s.process,
                s.run_id,
                s.attempt,
                attempt_status.value,
                outcome.duration_s,
                error=outcome.error,
                log=outcome.log,
                result=(outcome.result_json, outcome.result),
            )
            definition = registry.processes.get(s.process)
            if s.status is RunStatus.CANCELLED and definition and definition.on_cancel:
                hooks.append(
                    functools.partial(
                        run_hook,
                        definition.on_cancel,
                        event="on_cancel",
                        process=s.process,
                        run_id=s.run_id,
                        attempt=s.attempt,
                        status=RunStatus.CANCELLED,
                        error=outcome.error,
                        cwd=self.cwd,
                    )
                )
        return hooks

    def _record_starts(self, step: Step, turn: Turn) -> list[tuple[JobSpec, dict[str, float]]]:
        registry = self.core.registry
        specs: list[tuple[JobSpec, dict[str, float]]] = []
        for start in step.starts:
            definition = registry.processes.get(start.process)
            if start.ahead and start.run_id in self.unsubmitted:  # never handed over: now
                self.unsubmitted.discard(start.run_id)
                self.ahead.pop(start.run_id, None)
                start = dataclasses.replace(start, ahead=False, after=None)
            if start.ahead:  # recorded and handed to Dask already: it now counts as started
                turn.confirmed.append(start.run_id)
                if start.request_id is not None:  # its trigger is satisfied only now
                    turn.handled.append(start.request_id)
                self.ahead.pop(start.run_id, None)
                self._count_start(start, definition)
                continue
            assert definition is not None
            if start.attempt == 1:
                turn.created.append(_new_run(start))
                if start.request_id is not None:  # the trigger it satisfies is handled now
                    turn.handled.append(start.request_id)
            else:
                turn.retried.append(
                    NextAttempt(run_id=start.run_id, attempt=start.attempt, queued=start.decided_at)
                )
            specs.append((self._spec(definition, start), dict(definition.resources)))
            self._count_start(start, definition)
        return specs

    def _spec(self, definition: ProcessDef, start: StartRun) -> JobSpec:
        spec = JobSpec.for_process(
            definition,
            run_id=start.run_id,
            attempt=start.attempt,
            scheduled=start.scheduled,
            state=self._state_of(start.process),
            params=start.params,
            final_attempt=start.final_attempt,
            cwd=self.cwd,
            ancestors={a: self.results.get(a) for a in definition.ancestors},
            log_max_bytes=self.log_max_bytes,
        )
        if start.after is not None:  # chained: its ancestor's result joins on the worker
            return dataclasses.replace(spec, chained_after=process_of(start.after))
        return spec

    def _count_start(self, start: StartRun, definition: ProcessDef | None) -> None:
        if definition is not None and definition.timeout is not None:
            self.deadlines[(start.run_id, start.attempt)] = (
                start.decided_at + definition.timeout + TIMEOUT_GRACE
            )
        self.summary.started += 1
        self.summary.ahead += start.ahead

    def _state_of(self, process: str) -> Any:
        """The process's saved state (the driver loaded them all; only it writes them)."""
        return self.states.get(process)

    def _note_finished(
        self,
        process: str,
        run_id: str,
        attempt: int,
        status: str,
        duration: float | None,
        *,
        error: ErrorInfo | None = None,
        attempt_ended: bool = True,
        log: str | None = None,
        result: tuple[Any, str | None] = (None, None),
    ) -> None:
        """Count the ended attempt and list it among the recent ones for the page, with its
        error, its result as ``history`` shows it (``result``: the JSON value, and the summary
        that stands in, marked as a repr, for a value that was not JSON) and its log's tail; the
        snapshot adds its run's params (``planner.live.snapshot.with_params``)."""
        self.summary.statuses[status] += 1
        as_json, summary = result
        if attempt_ended:
            self.summary.runs.append((process, run_id, attempt, status, duration))
        self.recent.append(
            {
                "process": process,
                "run_id": run_id,
                "attempt": attempt,
                "status": status,
                "duration_s": duration,
                "at": self.clock(),
                "error": None if error is None else f"{error.type}: {error.message}",
                "result": as_json if as_json is not None or summary is None else {"repr": summary},
                # the page shows it; ``planner logs`` has the whole log
                "log": None if not log else log[-RECENT_LOG_TAIL:],
            }
        )


def process_of(run_id: str) -> str:
    """The process of run ``run_id`` (ids are ``f"{process}-{seq}"``)."""
    return run_id.rsplit("-", 1)[0]


def _new_run(start: StartRun, *, pending: bool = False) -> NewRun:
    return NewRun(
        run_id=start.run_id,
        process=start.process,
        scheduled=start.scheduled,
        queued=start.decided_at,
        params=start.params,
        request_id=start.request_id,
        pending=pending,
    )
