"""The Dask tasks of attempts, run on the worker, and the events they send the planner.

``run_attempt`` claims the attempt on the scheduler (at most once, ``planner.live.once``; the
worker has usually sent the claim ahead, ``planner.live.claim_ahead``), says ``started`` under the
``dask-planner`` topic, executes the job and says ``finished`` with its
outcome (``outcome_to_message``; ``Dispatcher`` reads it back with ``outcome_from_message``).
``run_chained`` is the task of a chained attempt: it runs after its ancestor's task, only if that
ancestor succeeded. The planner side of these tasks is ``planner.live.dispatch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from distributed import get_worker

from planner.live import claim_ahead, once
from planner.live.log_stream import send_chunk
from planner.live.worker import JobOutcome, JobSpec, execute
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

__all__ = [
    "EVENT_LOG_TAIL",
    "TOPIC",
    "outcome_from_message",
    "outcome_to_message",
    "run_attempt",
    "run_chained",
]

TOPIC = "dask-planner"


def _log(msg: dict[str, Any], worker: Any = None) -> None:
    """Log ``msg`` under our topic; pass ``worker`` off the task's thread (get_worker fails)."""
    if worker is None:
        try:
            worker = get_worker()
        except ValueError:  # not on a worker (tests calling run_attempt directly)
            return
    worker.log_event(TOPIC, msg)  # thread-safe


def run_attempt(spec: JobSpec, key: str, token: str | None = None) -> JobOutcome:
    """The task Dask runs for one attempt, on the worker: claim it (the scheduler reports the
    start as it grants the claim), execute, report the end. A second execution of the same
    attempt (Dask re-running it) raises at the claim."""
    try:
        worker: Any = get_worker()
    except ValueError:  # not on a worker (tests calling run_attempt directly)
        worker = None
    if worker is not None and not _claim(worker, spec, key, token or key):
        raise once.AttemptAlreadyRan(f"attempt {key} already ran (its worker died); not run again")

    def overdue() -> None:  # on the timeout's timer thread
        if worker is not None:
            _log({"event": "overdue", "key": key}, worker)

    def stream(data: bytes, skipped: int) -> None:  # on the worker's log publisher thread
        send_chunk(worker, spec.run_id, spec.attempt, data, skipped)

    outcome = execute(spec, key=key, on_overdue=overdue, on_log=stream if worker else None)
    _log({"event": "finished", "key": key, **outcome_to_message(outcome)})
    return outcome


def _claim(worker: Any, spec: JobSpec, key: str, token: str) -> bool:
    """The attempt's claim: the answer to the one the worker sent ahead as it gave the task this
    thread, or else asked now. The scheduler publishes the start with a grant: one message, and
    never for a re-run."""
    granted = claim_ahead.await_grant(worker, token)
    if granted is not None:
        return granted
    started = claim_ahead.started_event(spec, key, worker.address)
    return once.claim(worker, token, TOPIC, started)


def run_chained(
    ancestor: JobOutcome, spec: JobSpec, key: str, token: str | None = None
) -> JobOutcome:
    """The task of a chained attempt: Dask runs it once its ancestor's task ended, with that
    task's outcome. It runs the attempt only if the ancestor succeeded (and, at the claim, only
    if the planner did not withdraw it); otherwise it returns at once, having run nothing."""
    if not isinstance(ancestor, JobOutcome) or ancestor.status is not RunStatus.SUCCEEDED:
        now = datetime.now(UTC)
        error = ErrorInfo(type="Withdrawn", message="its ancestor did not succeed")
        return JobOutcome(
            status=RunStatus.CANCELLED, start=now, end=now, worker="unknown", error=error
        )
    if spec.chained_after is not None:  # the result that makes it fresh, known only now
        ancestors = {**spec.ancestors, spec.chained_after: ancestor.result_json}
        spec = dataclasses.replace(spec, ancestors=ancestors)
    return run_attempt(spec, key, token)


#: characters of an attempt's log kept in its message on the scheduler's event log
EVENT_LOG_TAIL = 64 * 1024


def outcome_to_message(outcome: JobOutcome) -> dict[str, Any]:
    """A msgpack-able form of an outcome (for the scheduler's event log)."""
    error = dataclasses.asdict(outcome.error) if outcome.error else None
    if error is not None:
        error.pop("kinds", None)  # the worker's alone: it decided the retry already
    return {
        "status": outcome.status.value,
        "start": outcome.start.isoformat(),
        "end": outcome.end.isoformat(),
        "worker": outcome.worker,
        "error": error,
        "result": outcome.result,
        "state_changed": outcome.state_changed,
        "new_state": outcome.new_state,
        "retry": outcome.retry,
        "result_json": outcome.result_json,
        # the scheduler keeps these messages: a tail of the log is enough to recover from; a
        # longer log comes with the task's result (``Dispatcher.take``)
        "log": None if outcome.log is None else outcome.log[-EVENT_LOG_TAIL:],
        "log_cut": outcome.log is not None and len(outcome.log) > EVENT_LOG_TAIL,
    }


def outcome_from_message(msg: Mapping[str, Any]) -> JobOutcome:
    error = msg.get("error")
    return JobOutcome(
        status=RunStatus(msg["status"]),
        start=datetime.fromisoformat(msg["start"]),
        end=datetime.fromisoformat(msg["end"]),
        worker=msg.get("worker") or "unknown",
        error=ErrorInfo(**error) if error else None,
        result=msg.get("result"),
        state_changed=bool(msg.get("state_changed")),
        new_state=msg.get("new_state"),
        retry=bool(msg.get("retry", True)),
        result_json=msg.get("result_json"),
        log=msg.get("log"),
    )
