"""The live driver: the planning core, the store and Dask in one small loop.

Each turn of the loop: collect what happened (Dask completions and starts from ``Dispatcher``,
registry revisions, operator requests and cluster size from the store and the scheduler, reached
times), hand it to ``Planner.handle`` and carry out the ``Step``: record each settled attempt, then
record each new run as ``queued`` *before* submitting it. The loop sleeps on an event that Dask's
callbacks set, with a timeout that is the earliest of the core's next wake-up, the next poll of the
store, and the nearest timeout deadline — so a completion starts its successor at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from planner.core.events import (
    CapacityChanged,
    Decision,
    Event,
    ProcessReset,
    RegistryChanged,
    RunFinished,
    Step,
    TriggerRequested,
)
from planner.core.planner import Planner
from planner.live.cluster import Connection
from planner.live.dispatch import Dispatcher, Done, Started, attempt_key
from planner.live.worker import JobOutcome, JobSpec, run_hook
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo, LoggedDecision, RequestKind
from registry.storage.store import Store

log = logging.getLogger(__name__)

TIMEOUT_GRACE = timedelta(
    seconds=30
)  # worker-side timeouts should fire first; this is the backstop


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Summary:
    """What a ``planner run`` did."""

    started: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    runs: list[tuple[str, str, int, str, float | None]] = field(default_factory=list)


class LiveDriver:
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        slots: int | None = None,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
        cwd: str | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.poll_interval = poll_interval
        self.cwd = cwd
        self.stop_event = threading.Event()
        self.lock = threading.Lock()  # guards the core for readers (dashboard)
        self.summary = Summary()
        self.outcomes: dict[tuple[str, int], JobOutcome] = {}
        self.deadlines: dict[tuple[str, int], datetime] = {}
        self.recent: list[dict[str, Any]] = []  # finished attempts, newest last (bounded)
        self.running: set[tuple[str, int]] = set()  # attempts a worker reported as started
        self.started_writes: list[Started] = []  # to record in this turn's transaction
        self.states: dict[str, Any] = {}  # saved job state by process (write-through cache)
        self.decision_buffer: list[LoggedDecision] = []
        self.listeners: list[Callable[[LiveDriver, Step], None]] = []
        now = clock()
        registry, applied = store.load_registry()
        self.revision = store.registry_revision()
        threads, resources = dispatcher.threads_and_resources()
        self.core = Planner(
            registry,
            now=now,
            applied_at=applied,
            histories=store.load_histories(),
            slots=slots,
            threads=threads,
            resources=resources,
        )
        self.capacity = (threads, resources)
        self._next_poll = 0.0
        self._startup_events = self._reconcile(now)

    # -- restart safety ---------------------------------------------------------------------------

    def _reconcile(self, now: datetime) -> list[Event]:
        """Runs an earlier planner left queued/running: re-attach, collect, or mark lost."""
        active = [r for r in self.store.active_runs() if r.status is not RunStatus.RETRYING]
        if not active:
            return []
        keys = {attempt_key(r.run_id, r.attempt): (r.run_id, r.attempt) for r in active}
        found = self.dispatcher.reattach(keys)
        events: list[Event] = []
        for key, outcome in found.items():
            run_id, attempt = keys[key]
            if outcome is None:
                outcome = JobOutcome(
                    status=RunStatus.FAILED,
                    start=now,
                    end=now,
                    worker="unknown",
                    error=ErrorInfo(
                        type="RunLost",
                        message="the planner stopped and the cluster no longer knows this attempt",
                    ),
                )
                self.outcomes[(run_id, attempt)] = outcome
                events.append(RunFinished(run_id=run_id, status=RunStatus.FAILED, at=now))
                log.warning(
                    "run %s attempt %d was lost while the planner was down", run_id, attempt
                )
            else:
                self.outcomes[(run_id, attempt)] = outcome
                events.append(
                    RunFinished(
                        run_id=run_id,
                        status=outcome.status,
                        at=outcome.end,
                        duration_s=outcome.duration_s,
                    )
                )
        return events

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, *, until_idle: bool = False, until: datetime | None = None) -> Summary:
        events: list[Event] = list(self._startup_events)
        self._startup_events = []
        events += self._poll()
        while not self.stop_event.is_set():
            now = self.clock()
            events += self._collect(now)
            polled = time.monotonic() >= self._next_poll
            if polled:
                events += self._poll()
            with self.lock:
                step = self.core.handle(now, *events)
            events = []
            self._carry_out(step)
            for listener in self.listeners:
                listener(self, step)
            if until_idle and self.core.idle() and not self.dispatcher.futures:
                if polled and not step.starts:
                    break
                self._next_poll = 0.0  # look for requests from other shells once more first
                continue
            if until is not None and now >= until:
                break
            self._sleep(step, now, until)
        self._flush_decisions()
        return self.summary

    def snapshot(self, *, limit: int = 500) -> dict[str, Any]:
        """A consistent, JSON-able picture of the planner for pages and status displays."""
        with self.lock:
            core = self.core
            now = self.clock()
            running = [
                {
                    "process": process,
                    "run_id": f.run_id,
                    "attempt": f.attempt,
                    "status": (
                        "retrying"
                        if f.retry_at is not None
                        else "running"
                        if (f.run_id, f.attempt) in self.running
                        else "queued"
                    ),
                    "started": f.started,
                    "retry_at": f.retry_at,
                }
                for process, f in core.flights()
            ]
            queue = [
                {"process": name, "reasons": [r.as_json() for r in reasons]}
                for name, reasons in core.queue()[:limit]
            ]
            nodes = []
            for name, ps in list(core.states.items())[:limit]:
                if ps.flights:
                    state = "running"
                elif ps.definition.hold or not ps.definition.enabled:
                    state = "held"
                elif ps.candidate:
                    state = "ready"
                elif ps.last_outcome is not None:
                    state = ps.last_outcome.value
                else:
                    state = "waiting"
                nodes.append({"process": name, "state": state})
            shown = {n["process"] for n in nodes}
            edges = [(a, b) for a, b in core.dag.g.edges if a in shown and b in shown]
            return {
                "at": now,
                "slots": core.slots,
                "in_flight": core.in_flight,
                "running": running,
                "queue": queue,
                "recent": list(self.recent[-100:]),
                "failures": [r for r in self.recent if r["status"] in ("failed", "timed_out")][
                    -20:
                ],
                "nodes": nodes,
                "edges": edges,
            }

    def stop(self) -> None:
        self.stop_event.set()
        self.dispatcher.wake.set()

    def _sleep(self, step: Step, now: datetime, until: datetime | None) -> None:
        waits = [max(self._next_poll - time.monotonic(), 0.0)]
        for at in (step.next_wakeup, until, min(self.deadlines.values(), default=None)):
            if at is not None:
                waits.append(max((at - now).total_seconds(), 0.0))
        if self.dispatcher.inbox.empty():
            self.dispatcher.wake.wait(min(waits))
        self.dispatcher.wake.clear()

    def _collect(self, now: datetime) -> list[Event]:
        events: list[Event] = []
        inbox = self.dispatcher.inbox
        self._drain(inbox, events)
        for (run_id, attempt), deadline in list(self.deadlines.items()):
            if deadline <= now and self.dispatcher.cancel(run_id, attempt):
                error = ErrorInfo(type="Timeout", message="no answer from the worker in time")
                outcome = JobOutcome(
                    status=RunStatus.TIMED_OUT, start=now, end=now, worker="unknown", error=error
                )
                events.append(self._finished(run_id, attempt, outcome))
        return events

    def _drain(self, inbox: Any, events: list[Event]) -> None:
        """Take what Dask reported; starts are written with the turn's other records."""
        while not inbox.empty():
            item = inbox.get_nowait()
            if isinstance(item, Started):
                if (item.run_id, item.attempt) in self.dispatcher.futures:
                    self.running.add((item.run_id, item.attempt))
                    self.started_writes.append(item)
            elif isinstance(item, Done):
                outcome = self.dispatcher.take(item)
                if outcome is not None:
                    events.append(self._finished(item.run_id, item.attempt, outcome))

    def _finished(self, run_id: str, attempt: int, outcome: JobOutcome) -> RunFinished:
        self.outcomes[(run_id, attempt)] = outcome
        self.deadlines.pop((run_id, attempt), None)
        self.running.discard((run_id, attempt))
        return RunFinished(
            run_id=run_id, status=outcome.status, at=outcome.end, duration_s=outcome.duration_s
        )

    def _poll(self) -> list[Event]:
        """Changes other processes made: registry, operator requests, cluster size."""
        self._next_poll = time.monotonic() + self.poll_interval
        events: list[Event] = []
        revision = self.store.registry_revision()
        if revision != self.revision:
            registry, applied = self.store.load_registry()
            events.append(RegistryChanged(registry=registry, applied_at=applied))
            self.revision = revision
        requests = self.store.pending_requests()
        now = self.clock()
        for req in requests:
            if req.kind is RequestKind.TRIGGER and req.process:
                events.append(
                    TriggerRequested(
                        process=req.process,
                        at=req.created,
                        params=dict(req.params),
                        force=req.force,
                        request_id=req.id,
                    )
                )
            elif req.kind is RequestKind.RESET and req.process:
                events.append(ProcessReset(process=req.process, at=req.created))
            elif req.kind is RequestKind.CANCEL and req.run_id:
                event = self._cancel(req.run_id, now)
                if event is not None:
                    events.append(event)
        if requests:
            self.store.mark_handled([r.id for r in requests], at=now)
        self.dispatcher.check_reattached()
        capacity = self.dispatcher.threads_and_resources()
        if capacity != self.capacity:
            self.capacity = capacity
            events.append(CapacityChanged(threads=capacity[0], resources=capacity[1]))
        self._flush_decisions()
        return events

    def _cancel(self, run_id: str, now: datetime) -> Event | None:
        for rid, attempt in list(self.dispatcher.futures):
            if rid == run_id and self.dispatcher.cancel(rid, attempt):
                error = ErrorInfo(type="Cancelled", message="cancelled by an operator")
                outcome = JobOutcome(
                    status=RunStatus.CANCELLED, start=now, end=now, worker="unknown", error=error
                )
                return self._finished(run_id, attempt, outcome)
        # waiting to retry (or unknown: the core ignores it)
        return RunFinished(run_id=run_id, status=RunStatus.CANCELLED, at=now)

    # -- carrying out a step ----------------------------------------------------------------------

    def _carry_out(self, step: Step) -> None:
        """Record the step (one transaction), then act on it: submit the new attempts."""
        self.decision_buffer += [_logged(step.at, d) for d in step.decisions]
        if not (step.settled or step.starts or self.started_writes):
            return
        with self.store.batch():
            for item in self.started_writes:
                self.store.attempt_started(
                    item.run_id, item.attempt, start=item.start, worker=item.worker
                )
            self.started_writes.clear()
            self._record_settled(step)
            specs = self._record_starts(step)
        for spec, resources in specs:
            self.dispatcher.submit(spec, resources=resources)

    def _record_settled(self, step: Step) -> None:
        registry = self.core.registry
        for s in step.settled:
            outcome = self.outcomes.pop((s.run_id, s.attempt), None)
            if outcome is None:  # cancelled while waiting to retry, or removed from the registry
                if s.status is RunStatus.CANCELLED:
                    self.store.cancel_retry(s.run_id, at=step.at)
                    self._note_finished(s.process, s.run_id, s.attempt, "cancelled", None)
                continue
            attempt_status = outcome.status if s.status is not RunStatus.CANCELLED else s.status
            self.store.finish_attempt(
                s.run_id,
                s.attempt,
                status=attempt_status,
                end=outcome.end,
                start=outcome.start if outcome.worker != "unknown" else None,
                worker=outcome.worker if outcome.worker != "unknown" else None,
                error=outcome.error,
                result=outcome.result,
                retry_at=s.retry_at if s.status is RunStatus.RETRYING else None,
            )
            if outcome.status is RunStatus.SUCCEEDED and outcome.state_changed:
                self.store.save_state(s.process, outcome.new_state)
                self.states[s.process] = outcome.new_state
            self._note_finished(
                s.process,
                s.run_id,
                s.attempt,
                attempt_status.value,
                outcome.duration_s,
                error=outcome.error,
            )
            definition = registry.processes.get(s.process)
            if s.status is RunStatus.CANCELLED and definition and definition.on_cancel:
                run_hook(
                    definition.on_cancel,
                    event="on_cancel",
                    process=s.process,
                    run_id=s.run_id,
                    attempt=s.attempt,
                    status=RunStatus.CANCELLED,
                    error=outcome.error,
                    cwd=self.cwd,
                )

    def _record_starts(self, step: Step) -> list[tuple[JobSpec, dict[str, float]]]:
        registry = self.core.registry
        specs: list[tuple[JobSpec, dict[str, float]]] = []
        for start in step.starts:
            definition = registry.processes[start.process]
            if start.attempt == 1:
                self.store.create_run(
                    run_id=start.run_id,
                    process=start.process,
                    scheduled=start.scheduled,
                    queued=start.decided_at,
                    params=start.params,
                    request_id=start.request_id,
                )
            else:
                self.store.retry_run(start.run_id, attempt=start.attempt, queued=start.decided_at)
            spec = JobSpec.for_process(
                definition,
                run_id=start.run_id,
                attempt=start.attempt,
                scheduled=start.scheduled,
                state=self._state_of(start.process),
                params=start.params,
                final_attempt=start.final_attempt,
                cwd=self.cwd,
            )
            specs.append((spec, dict(definition.resources)))
            if definition.timeout is not None:
                self.deadlines[(start.run_id, start.attempt)] = (
                    start.decided_at + definition.timeout + TIMEOUT_GRACE
                )
            self.summary.started += 1
        return specs

    def _state_of(self, process: str) -> Any:
        """The process's saved state; only this planner writes it, so it is read once."""
        if process not in self.states:
            self.states[process] = self.store.load_state(process)
        return self.states[process]

    def _note_finished(
        self,
        process: str,
        run_id: str,
        attempt: int,
        status: str,
        duration: float | None,
        *,
        error: ErrorInfo | None = None,
    ) -> None:
        self.summary.statuses[status] += 1
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
            }
        )
        del self.recent[:-200]

    def _flush_decisions(self) -> None:
        if self.decision_buffer:
            batch, self.decision_buffer = self.decision_buffer, []
            self.store.log_decisions(batch)


def _logged(at: datetime, d: Decision) -> LoggedDecision:
    return LoggedDecision(
        at=at,
        process=d.process,
        decision=d.decision,
        reasons=tuple((r.code.value, r.detail) for r in d.reasons),
    )


def run_planner(
    store: Store,
    *,
    scheduler: str | None = None,
    slots: int | None = None,
    until_idle: bool = False,
    duration: timedelta | None = None,
    processes: bool = True,
    n_workers: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    on_ready: Callable[[LiveDriver, Connection], Callable[[], None] | None] | None = None,
    cwd: str | None = None,
) -> Summary:
    """``planner run``: connect to Dask, then plan and execute until told to stop.

    ``on_ready(driver, connection)`` runs once the driver exists (to print addresses, serve the
    page, show a live display); it may return a function called when the run ends."""
    from planner.live.cluster import connect

    with connect(
        scheduler, processes=processes, n_workers=n_workers, dashboard_address=dashboard_address
    ) as conn:
        dispatcher = Dispatcher(conn.client, remote=conn.remote)
        driver = LiveDriver(store, dispatcher, slots=slots, cwd=cwd)
        cleanup = on_ready(driver, conn) if on_ready is not None else None
        until = utcnow() + duration if duration is not None else None
        try:
            return driver.run(until_idle=until_idle, until=until)
        except KeyboardInterrupt:
            driver._flush_decisions()
            return driver.summary
        finally:
            if cleanup is not None:
                cleanup()
