"""Restart safety: what the planner before this one left queued or running.

With a remote scheduler each attempt was submitted ``fire_and_forget`` under a key named after it,
so a new planner claims the keys the cluster still knows (re-attached: their outcome arrives as
usual) and reads the outcomes of those that finished meanwhile from the scheduler's event log.
With an in-process cluster the work died with its planner (``planner.live.worker.guardian`` sees
to it): such attempts are recorded ``failed`` with error type ``RunLost`` and retried by policy.
Only the lease holder runs this, so a second planner never marks the first one's live runs lost.
Chained runs left ``pending`` are settled first (``withdraw_pending``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from planner.core.events import Event, RunFinished
from planner.live.dispatch import Dispatcher
from planner.live.keys import attempt_key
from planner.live.worker import JobOutcome
from registry.lifecycle import RunStatus
from registry.records import AttemptEnd, ErrorInfo, Turn
from registry.storage.store import Store

log = logging.getLogger(__name__)


def withdraw_pending(store: Store, dispatcher: Dispatcher, now: datetime) -> None:
    """Chained runs an earlier planner recorded ``pending`` (handed to Dask ahead of their
    ancestor's end, or for the next slot to free) and never saw start. With an in-process
    cluster they died with it: deleted, as any withdrawn run, so they leave no attempt and do
    not count (a single process runs as if they never were). On a remote scheduler they are
    withdrawn for good and recorded ``cancelled`` (error ``Withdrawn``; their numbers stay
    taken: the scheduler refuses their keys from now on) — unless Dask had begun them, and then
    they are queued runs like any other, for ``reconcile``."""
    pending = store.pending_runs()
    if not pending:
        return
    if not dispatcher.remote:
        store.record_turn(Turn(at=now, withdrawn=[run_id for run_id, _ in sorted(pending)]))
        runs = "run" if len(pending) == 1 else "runs"
        log.info("%d %s handed over ahead by an earlier planner withdrawn", len(pending), runs)
        return
    late = dispatcher.withdraw(pending)
    error = ErrorInfo(type="Withdrawn", message="the planner that chained it stopped first")
    store.record_turn(
        Turn(
            at=now,
            confirmed=[run_id for run_id, _ in sorted(late)],
            # cancelled, not deleted: the run number stays taken (its key was used)
            ended=[
                AttemptEnd(
                    run_id=run_id, attempt=attempt, status=RunStatus.CANCELLED, end=now, error=error
                )
                for run_id, attempt in pending
                if (run_id, attempt) not in late
            ],
        )
    )
    withdrawn = len(pending) - len(late)
    runs = "run" if withdrawn == 1 else "runs"
    log.info("%d chained %s left by an earlier planner withdrawn", withdrawn, runs)


def reconcile(
    store: Store,
    dispatcher: Dispatcher,
    outcomes: dict[tuple[str, int], JobOutcome],
    now: datetime,
    inherited: dict[tuple[str, int], datetime] | None = None,
) -> list[Event]:
    """Runs an earlier planner left queued/running: re-attach, collect, or mark lost.

    Fills ``outcomes`` with what is known of each and returns the events that settle them;
    ``inherited`` gets each of those attempts with when it was queued (for the run summary)."""
    active = [r for r in store.active_runs() if r.status is not RunStatus.RETRYING]
    if inherited is not None:
        inherited.update({(r.run_id, r.attempt): r.started for r in active})
    if not active:
        return []
    keys = {attempt_key(r.run_id, r.attempt): (r.run_id, r.attempt) for r in active}
    found = dispatcher.reattach(keys)
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
            outcomes[(run_id, attempt)] = outcome
            events.append(RunFinished(run_id=run_id, status=RunStatus.FAILED, at=now))
            log.warning("run %s attempt %d was lost while the planner was down", run_id, attempt)
        else:
            outcomes[(run_id, attempt)] = outcome
            events.append(
                RunFinished(
                    run_id=run_id,
                    status=outcome.status,
                    at=outcome.end,
                    duration_s=outcome.duration_s,
                )
            )
    return events
