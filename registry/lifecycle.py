"""Run statuses and the one table of legal transitions between them.

    pending → queued → running → succeeded | failed | cancelled | timed_out
                                    failed | timed_out → retrying → queued (next attempt)

``pending`` is a run the planner decided on but has not written yet; ``queued`` is written to the
store before the job is handed to Dask. A run that was queued or running when the planner died and
that the cluster no longer knows is recorded as ``failed`` with error type ``RunLost``.
"""

from __future__ import annotations

import enum

from registry.errors import IllegalTransition


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    RETRYING = "retrying"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def active(self) -> bool:
        return self in ACTIVE


TERMINAL = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)
ACTIVE = frozenset({RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING})

_S = RunStatus
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    _S.PENDING: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.TIMED_OUT}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELLED, _S.TIMED_OUT}),
    _S.RETRYING: frozenset({_S.QUEUED, _S.CANCELLED}),
    # a failed or timed-out attempt may be followed by a retry: the run leaves its terminal state
    _S.FAILED: frozenset({_S.RETRYING}),
    _S.TIMED_OUT: frozenset({_S.RETRYING}),
    _S.SUCCEEDED: frozenset(),
    _S.CANCELLED: frozenset(),
}


def check_transition(run_id: str, current: RunStatus, new: RunStatus) -> None:
    """Raise ``IllegalTransition`` unless ``current → new`` is in the table."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(run_id, current.value, new.value)
