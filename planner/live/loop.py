"""The live driver: the planning core, the store and Dask in one small loop.

Each turn of the loop: collect what happened (Dask completions and starts from ``Dispatcher``,
registry revisions, operator requests and cluster size from the store and the scheduler, reached
times), hand it to ``Planner.handle`` and carry out the ``Step``: record each settled attempt, then
record each new run as ``queued`` *before* submitting it. The loop sleeps on an event that Dask's
callbacks set, with a timeout that is the earliest of the core's next wake-up, the next poll of the
store, and the nearest timeout deadline — so a completion starts its successor at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from planner.core.events import (
    CapacityChanged,
    ChainKept,
    ConditionAnswered,
    Decision,
    Event,
    ProcessReset,
    RegistryChanged,
    RunFinished,
    StartRun,
    Step,
    TriggerRequested,
)
from planner.core.planner import Planner
from planner.live.dispatch import Dispatcher, Done, Started
from planner.live.leadership import Leadership
from planner.live.log_stream import LogChunk, PartialLogs
from planner.live.outage import DEFAULT_LIMIT, Outage, describe, is_outage
from planner.live.recording import START_FLUSH_S, Recording, Summary
from planner.live.restart import reconcile, withdraw_pending
from planner.live.worker import JobOutcome
from planner.live.worker.logs import configured_log_max_bytes
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import (
    ErrorInfo,
    LoggedDecision,
    RequestKind,
)
from registry.storage.store import Store

log = logging.getLogger(__name__)


#: decisions kept in memory while the database is away (the oldest are dropped past it)
DECISIONS_BUFFERED = 10_000
#: ends are gathered for a turn while Dask holds at least this many of the planner's runs not
#: yet begun per thread (slots well above the cluster's threads) ...
GATHER_DEPTH_PER_THREAD = 2
#: ... for this long at most after the first of them
GATHER_S = 0.02


def utcnow() -> datetime:
    return datetime.now(UTC)


class LiveDriver(Recording):
    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        slots: int | None = None,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
        cwd: str | None = None,
        leadership: Leadership | None = None,
        db_outage_limit: timedelta = DEFAULT_LIMIT,
    ) -> None:
        self.store = store
        self.leadership = leadership
        self.outage = Outage(db_outage_limit)
        self.unrecorded: Step | None = None  # a step the database has not taken yet (outage)
        self.triggers_seen: set[int] = set()  # pending trigger requests given to the core
        self.dispatcher = dispatcher
        self.clock = clock
        self.poll_interval = poll_interval
        self.cwd = cwd if cwd is not None else os.getcwd()  # where jobs run by default
        self.stop_event = threading.Event()
        self.lock = threading.Lock()  # guards the core for readers (dashboard)
        self.summary = Summary()
        self.outcomes: dict[tuple[str, int], JobOutcome] = {}
        self.deadlines: dict[tuple[str, int], datetime] = {}
        self.recent: list[dict[str, Any]] = []  # finished attempts, newest last (bounded)
        self.running: set[tuple[str, int]] = set()  # attempts a worker reported as started
        self.started_writes: list[Started] = []  # to record with a turn's other records
        self.started_waiting = 0.0
        # saved job states by process: only this planner writes them, so they are read once,
        # all at once; a process missing here has none (write-through cache)
        self.states: dict[str, Any] = store.load_states()
        # the result of each ancestor's latest success, for its descendants' ``ctx.ancestors``:
        # read for the registry's ancestors at start-up and for new ones at each reload, then
        # kept up to date by the successes this planner records
        self.results: dict[str, Any] = {}
        self.ancestor_names: frozenset[str] = frozenset()  # the names ``results`` is kept for
        self.decision_buffer: list[LoggedDecision] = []
        self.listeners: list[Callable[[LiveDriver, Step], None]] = []
        self.decision_s = 0.0  # how long the core took over the last step (for listeners)
        self.ended_at: list[datetime] = []  # end times of the attempts that step handled
        self.ahead: dict[str, StartRun] = {}  # chained runs recorded pending, not yet started
        self.kept: list[ChainKept] = []  # withdrawals too late, for the core's next step
        self.held: list[Done] = []  # ends of chained runs that the core has not started yet
        self.unsubmitted: set[str] = set()  # chained runs whose ancestor left Dask first
        self.log_max_bytes = configured_log_max_bytes()  # read once: each attempt's bound
        self.partial_logs = PartialLogs(self.log_max_bytes)  # attempts in flight, so far
        now = clock()
        withdraw_pending(store, dispatcher, now)  # chained runs an earlier planner left
        self.revision = store.registry_revision()  # first: a change made meanwhile is seen later
        registry, applied = store.load_registry(refresh=True)
        threads, resources = dispatcher.threads_and_resources()
        self._load_results(registry)
        self.core = Planner(
            registry,
            now=now,
            applied_at=applied,
            histories=store.load_histories(),
            slots=slots,
            threads=threads,
            resources=resources,
            # on its own cluster no worker joins unasked: a run may wait in Dask for a slot
            slot_ahead=not dispatcher.remote,
        )
        self.capacity = (threads, resources)
        self._next_poll = 0.0
        self._gathering: float | None = None  # when the ends waiting for a turn began to gather
        self._startup_events = reconcile(
            store, dispatcher, self.outcomes, now, self.summary.inherited
        )

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, *, until_idle: bool = False, until: datetime | None = None) -> Summary:
        events: list[Event] = list(self._startup_events)
        self._startup_events = []
        while not self.stop_event.is_set():
            now = self.clock()
            events += self._collect(now)
            while self._gather(events):  # more ends may come: one turn refills the slots
                now = self.clock()
                events += self._collect(now)
            # a database outage: completions wait in ``events``; nothing new is decided or
            # started until the step that could not be recorded has been
            if self.unrecorded is not None and (
                not self.outage.due() or not self._record(self.unrecorded)
            ):
                self._wait_for_database()
                continue
            polled = time.monotonic() >= self._next_poll
            if polled:
                try:
                    events += self._poll()
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    self.outage.failed(exc)
                    self._wait_for_database()
                    continue
                self.outage.recovered()
            kept, self.kept = self.kept, []
            with self.lock:
                began = time.perf_counter()
                step = self.core.handle(now, *kept, *events)
                self.decision_s = time.perf_counter() - began
            # for listeners (metrics): when the attempts this step settled ended on their workers
            self.ended_at = [e.at for e in events if isinstance(e, RunFinished)]
            events = []
            self.decision_buffer += [_logged(step.at, d) for d in step.decisions]
            self._bound_decisions()
            if not self._record(step):
                continue
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
        self._best_effort(self._flush)
        return self.summary

    def _flush(self) -> None:
        """Write what waits to be written: reported starts and logged decisions."""
        if self.unrecorded is None:
            self._carry_out(Step(at=self.clock()), flush=True)
        self._flush_decisions()

    def _record(self, step: Step) -> bool:
        """Carry out ``step``; on a database outage keep it (and its outcomes) for a retry."""
        saved = (dict(self.outcomes), list(self.started_writes), dict(self.deadlines))
        chains = (dict(self.ahead), list(self.kept), set(self.unsubmitted), self.summary.ahead)
        counts = (self.summary.started, Counter(self.summary.statuses), len(self.summary.runs))
        self.unrecorded = step
        try:
            wrote = self._carry_out(step)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # nothing of the step committed: put back what recording it consumed
            self.outcomes, self.started_writes, self.deadlines = saved
            self.ahead, self.kept, self.unsubmitted, self.summary.ahead = chains
            self.summary.started, self.summary.statuses = counts[0], counts[1]
            del self.summary.runs[counts[2] :]
            self.outage.failed(exc)
            return False
        self.unrecorded = None
        if wrote:  # only a store call that succeeded says the database is back
            self.outage.recovered()
        return True

    def _wait_for_database(self) -> None:
        self.dispatcher.wake.wait(max(self.outage.wait_s(), 0.01))
        self.dispatcher.wake.clear()

    def _best_effort(self, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("could not write to the database while stopping: %s", describe(exc))

    def shutdown(self, *, cancel: bool, record: bool = True, grace: float = 10.0) -> None:
        """A clean stop. ``cancel`` (in-process cluster): stop the work in flight on the
        workers, wait up to ``grace`` seconds for it to end, and record every attempt that was
        in flight as it ended (``cancelled`` unless it finished first), so no run is left
        ``queued``/``running`` with nobody to own it. Otherwise (remote scheduler) the work keeps
        running for the next planner to re-attach. ``record=False``: the lease is lost, nothing
        may be written."""
        if cancel:
            for run_id, attempt in list(self.dispatcher.futures):
                self.dispatcher.request_cancel(run_id, attempt, "the planner stopped")
            deadline = time.monotonic() + grace
            events: list[Event] = []
            while self.dispatcher.futures and time.monotonic() < deadline:
                self._drain(self.dispatcher.inbox, events)
                self.dispatcher.wake.wait(0.05)
                self.dispatcher.wake.clear()
            self._drain(self.dispatcher.inbox, events)
            now = self.clock()
            error = ErrorInfo(type="Cancelled", message="the planner stopped before it ended")
            for run_id, attempt in list(self.dispatcher.futures):
                outcome = JobOutcome(
                    status=RunStatus.CANCELLED, start=now, end=now, worker="unknown", error=error
                )
                events.append(self._finished(run_id, attempt, outcome))
            if record and self.unrecorded is None:
                with self.lock:
                    step = self.core.settle(now, *self.kept, *events)
                self.kept = []
                # chained runs that did not start: withdrawn (their ancestors were cancelled)
                listed = {s.run_id for s in step.starts} | set(step.withdrawn)
                idle = tuple(r for r in self.ahead if r not in listed)
                step = dataclasses.replace(step, withdrawn=(*step.withdrawn, *idle))
                self._best_effort(lambda: self._carry_out(step, flush=True))
        if record:
            self._best_effort(self._flush)

    def snapshot(self, *, limit: int = 500) -> dict[str, Any]:
        """A consistent, JSON-able picture of the planner for pages and status displays."""
        from planner.live.snapshot import snapshot

        return snapshot(self, limit=limit)

    def stop(self) -> None:
        self.stop_event.set()
        self.dispatcher.wake.set()

    def _sleep(self, step: Step, now: datetime, until: datetime | None) -> None:
        waits = [max(self._next_poll - time.monotonic(), 0.0)]
        if self.started_writes:  # write them by START_FLUSH_S even if nothing else happens
            waits.append(max(self.started_waiting + START_FLUSH_S - time.monotonic(), 0.0))
        for at in (step.next_wakeup, until, min(self.deadlines.values(), default=None)):
            if at is not None:
                waits.append(max((at - now).total_seconds(), 0.0))
        if self.dispatcher.inbox.empty():
            self.dispatcher.wake.wait(min(waits))
        self.dispatcher.wake.clear()

    def _gather(self, events: list[Event]) -> bool:
        """Whether to wait a little for more ends before the turn (True after waiting; the ends
        gathered are then collected, and the next call decides again — never True once the
        driver is stopping, so gathered ends always reach a turn).

        While Dask still holds many of this planner's runs that no thread has begun, refilling
        the freed slots at once gains nothing: no thread idles. A turn of many ends costs about
        what a turn of one does (one transaction, one submission), so ends are gathered for up
        to ``GATHER_S``. Anything but ends (a trigger, a condition's answer, a poll, an outage,
        a stop) and a shallow queue take the turn at once."""
        since, self._gathering = self._gathering, None
        if not events or self.unrecorded is not None or self.stop_event.is_set():
            return False
        if time.monotonic() >= self._next_poll or not all(
            isinstance(e, RunFinished) for e in events
        ):
            return False
        begun = len(self.running) + len(self.ahead)  # a chained run waits for its ancestor
        if len(self.dispatcher.futures) - begun < GATHER_DEPTH_PER_THREAD * max(
            self.capacity[0] or 1, 1
        ):
            return False
        now = time.monotonic()
        since = now if since is None else since
        if now - since >= GATHER_S:
            return False
        self._gathering = since
        if self.dispatcher.inbox.empty():
            self.dispatcher.wake.wait(since + GATHER_S - now)
        self.dispatcher.wake.clear()
        return True

    def _collect(self, now: datetime) -> list[Event]:
        events: list[Event] = []
        inbox = self.dispatcher.inbox
        self._drain(inbox, events)
        for (run_id, attempt), deadline in list(self.deadlines.items()):
            if deadline <= now and self.dispatcher.lingering(run_id, attempt):
                del self.deadlines[(run_id, attempt)]  # its thread runs on: the slot stays busy
            elif deadline <= now and self.dispatcher.cancel(run_id, attempt):
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
                    if not self.started_writes:
                        self.started_waiting = time.monotonic()
                    self.started_writes.append(item)
            elif isinstance(item, ConditionAnswered):  # from the condition watcher's thread
                events.append(item)
            elif isinstance(item, LogChunk):  # an attempt's log as it runs
                if (item.run_id, item.attempt) in self.dispatcher.futures:
                    self.partial_logs.add(item)
            elif isinstance(item, Done):
                if item.run_id in self.ahead:  # a chained run the core has not started yet:
                    self.held.append(item)  # its end waits for its start (or its withdrawal)
                    continue
                outcome = self.dispatcher.take(item)
                if outcome is not None:
                    events.append(self._finished(item.run_id, item.attempt, outcome))

    def _finished(self, run_id: str, attempt: int, outcome: JobOutcome) -> RunFinished:
        self.partial_logs.ended(run_id, attempt)
        self.outcomes[(run_id, attempt)] = outcome
        self.deadlines.pop((run_id, attempt), None)
        self.running.discard((run_id, attempt))
        return RunFinished(
            run_id=run_id,
            status=outcome.status,
            at=outcome.end,
            duration_s=outcome.duration_s,
            retry=outcome.retry,
        )

    def _poll(self) -> list[Event]:
        """Changes other processes made: registry, operator requests, cluster size."""
        self._next_poll = time.monotonic() + self.poll_interval
        if self.leadership is not None:
            self.leadership.renew_if_due(self.clock())
        events: list[Event] = []
        revision = self.store.registry_revision()
        if revision != self.revision:
            registry, applied = self.store.load_registry(refresh=True)  # kept for the commands
            self._load_results(registry)
            events.append(RegistryChanged(registry=registry, applied_at=applied))
        requests = self.store.pending_requests()
        now = self.clock()
        handled: list[int] = []
        for req in requests:
            if req.kind is RequestKind.TRIGGER and req.process:
                # durable: it stays pending in the store until the run that satisfies it is
                # recorded (same transaction), so a restarted planner picks it up again
                if req.id in self.triggers_seen:
                    continue
                self.triggers_seen.add(req.id)
                events.append(TriggerRequested.of(req))
                continue
            handled.append(req.id)
            if req.kind is RequestKind.RESET and req.process:
                events.append(ProcessReset(process=req.process, at=req.created))
            elif req.kind is RequestKind.CANCEL and req.run_id:
                event = self._cancel(req.run_id, now)
                if event is not None:
                    events.append(event)
        if handled:
            self.store.mark_handled(handled, at=now)
        self.dispatcher.check_reattached()
        capacity = self.dispatcher.threads_and_resources()
        if capacity != self.capacity:
            self.capacity = capacity
            events.append(CapacityChanged(threads=capacity[0], resources=capacity[1]))
        self._flush_decisions()
        grown = self.partial_logs.due()
        if grown:
            self.store.write_partial_logs(grown)
        self.revision = revision  # only now: a poll that failed halfway is redone whole
        return events

    def _load_results(self, registry: RegistryDef) -> None:
        """Keep ``results`` for ``registry``'s ancestors: a process that just became one may
        have succeeded while it had no descendant (no result kept), so the results of the new
        ancestors are read from the store, in one query; those of former ones are dropped."""
        wanted = frozenset(a for p in registry.processes.values() for a in p.ancestors)
        new = wanted - self.ancestor_names
        loaded = self.store.last_results(sorted(new)) if new else {}
        for name in self.ancestor_names - wanted:
            self.results.pop(name, None)
        self.results.update(loaded)
        self.ancestor_names = wanted

    def _cancel(self, run_id: str, now: datetime) -> Event | None:
        for rid, attempt in list(self.dispatcher.futures):
            if rid == run_id and self.dispatcher.request_cancel(rid, attempt):
                # the worker stops the work; the attempt ends (cancelled) when it really has, and
                # its slot stays busy until then
                return None
        # waiting to retry (or unknown: the core ignores it)
        return RunFinished(run_id=run_id, status=RunStatus.CANCELLED, at=now)

    def _flush_decisions(self) -> None:
        if self.decision_buffer:
            self.store.log_decisions(self.decision_buffer)
            self.decision_buffer = []  # only once written: an outage keeps them for later

    def _bound_decisions(self) -> None:
        # during a long outage keep the newest decisions only: memory stays bounded
        del self.decision_buffer[:-DECISIONS_BUFFERED]


def _logged(at: datetime, d: Decision) -> LoggedDecision:
    return LoggedDecision(
        at=at,
        process=d.process,
        decision=d.decision,
        reasons=tuple((r.code.value, r.detail) for r in d.reasons),
    )
