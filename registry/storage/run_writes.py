"""The write side of runs and attempts: every run status change, checked before it is written.

Each function takes a connection inside the caller's write transaction (``SqlStore`` owns it) and
either writes the whole change or raises before writing anything. A change to an existing run
first locks the run's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
already serialises writers), then checks both the run's and the attempt's status change against
``registry.lifecycle``; an illegal one raises ``IllegalTransition``.

A run row holds the run's current status and attempt number; each attempt has its own row, which
repeats the run's process and scheduled time so that ``history`` needs no join. Run ids are
``f"{process}-{seq}"`` (the core makes them); ``seq`` is kept in its own column so that
``runs_created`` is an indexed MAX().
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from registry.errors import IllegalTransition, RunNotFound
from registry.lifecycle import RunStatus, check_transition
from registry.records import ErrorInfo
from registry.storage.codec import json_roundtrip
from registry.storage.tables import attempts, runs


def create_run(
    conn: Connection,
    *,
    run_id: str,
    process: str,
    scheduled: datetime,
    queued: datetime,
    params: Mapping[str, Any],
    request_id: int | None,
) -> None:
    """A new run, queued as its first attempt."""
    existing = conn.execute(
        select(runs.c.status).where(runs.c.run_id == run_id)
    ).scalar_one_or_none()
    if existing is not None:
        raise IllegalTransition(run_id, existing, RunStatus.QUEUED.value)
    conn.execute(
        insert(runs).values(
            run_id=run_id,
            process=process,
            seq=run_seq(run_id, process),
            scheduled=scheduled,
            status=RunStatus.QUEUED.value,
            attempt=1,
            params=json_roundtrip(dict(params)),
            request_id=request_id,
            created=queued,
        )
    )
    conn.execute(
        insert(attempts).values(
            run_id=run_id,
            attempt=1,
            process=process,
            status=RunStatus.QUEUED.value,
            scheduled=scheduled,
            queued=queued,
        )
    )


def retry_run(conn: Connection, run_id: str, *, attempt: int, queued: datetime) -> None:
    """Queue the next attempt (``attempt``, one after the last) of a run that is retrying."""
    run = _lock_run(conn, run_id)
    check_transition(run_id, RunStatus(run.status), RunStatus.QUEUED)
    if attempt != run.attempt + 1:
        raise IllegalTransition(
            run_id, f"retrying after attempt {run.attempt}", f"queued as attempt {attempt}"
        )
    conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(status=RunStatus.QUEUED.value, attempt=attempt, retry_at=None)
    )
    conn.execute(
        insert(attempts).values(
            run_id=run_id,
            attempt=attempt,
            process=run.process,
            status=RunStatus.QUEUED.value,
            scheduled=run.scheduled,
            queued=queued,
        )
    )


def attempt_started(
    conn: Connection, run_id: str, attempt: int, *, start: datetime, worker: str
) -> None:
    """The run's current attempt began on ``worker``."""
    run = _lock_run(conn, run_id)
    current = _current_attempt(conn, run, attempt, RunStatus.RUNNING)
    check_transition(run_id, RunStatus(current.status), RunStatus.RUNNING)
    check_transition(run_id, RunStatus(run.status), RunStatus.RUNNING)
    conn.execute(
        update(attempts)
        .where(attempts.c.run_id == run_id, attempts.c.attempt == attempt)
        .values(status=RunStatus.RUNNING.value, start=start, worker=worker)
    )
    conn.execute(update(runs).where(runs.c.run_id == run_id).values(status=RunStatus.RUNNING.value))


def finish_attempt(
    conn: Connection,
    run_id: str,
    attempt: int,
    *,
    status: RunStatus,
    end: datetime,
    start: datetime | None,
    worker: str | None,
    error: ErrorInfo | None,
    result: str | None,
    retry_at: datetime | None,
) -> None:
    """The run's current attempt ended in ``status``; the run retries at ``retry_at`` if given,
    else it ends with the attempt."""
    if not status.terminal:
        raise ValueError(f"an attempt ends in a terminal status, not {status.value!r}")
    run = _lock_run(conn, run_id)
    current = _current_attempt(conn, run, attempt, status)
    check_transition(run_id, RunStatus(current.status), status)
    check_transition(run_id, RunStatus(run.status), status)
    if retry_at is not None:
        check_transition(run_id, status, RunStatus.RETRYING)
    began = start if start is not None else current.start
    conn.execute(
        update(attempts)
        .where(attempts.c.run_id == run_id, attempts.c.attempt == attempt)
        .values(
            status=status.value,
            start=began,
            end=end,
            duration_s=None if began is None else (end - began).total_seconds(),
            worker=worker if worker is not None else current.worker,
            error_type=None if error is None else error.type,
            error_message=None if error is None else error.message,
            error_traceback=None if error is None else error.traceback,
            result=result,
        )
    )
    if retry_at is not None:
        values: dict[str, Any] = {"status": RunStatus.RETRYING.value, "retry_at": retry_at}
    else:
        values = {"status": status.value, "ended": end}
    conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))


def cancel_retry(conn: Connection, run_id: str, *, at: datetime) -> None:
    """Cancel a run between attempts (queued and running runs end through their attempt)."""
    run = _lock_run(conn, run_id)
    check_transition(run_id, RunStatus(run.status), RunStatus.CANCELLED)
    if run.status != RunStatus.RETRYING.value:
        raise IllegalTransition(run_id, run.status, "cancelled before its next attempt")
    conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(status=RunStatus.CANCELLED.value, retry_at=None, ended=at)
    )


def run_seq(run_id: str, process: str) -> int | None:
    suffix = run_id.removeprefix(f"{process}-")
    if suffix != run_id and suffix.isascii() and suffix.isdigit():
        return int(suffix)
    return None


def _lock_run(conn: Connection, run_id: str) -> Row[Any]:
    row = conn.execute(select(runs).where(runs.c.run_id == run_id).with_for_update()).one_or_none()
    if row is None:
        raise RunNotFound(run_id)
    return row


def _current_attempt(conn: Connection, run: Row[Any], attempt: int, new: RunStatus) -> Row[Any]:
    """The run's current attempt, which must be ``attempt``."""
    row = conn.execute(
        select(attempts).where(attempts.c.run_id == run.run_id, attempts.c.attempt == attempt)
    ).one_or_none()
    if row is None or attempt != run.attempt:
        raise IllegalTransition(
            run.run_id,
            f"{run.status} at attempt {run.attempt}",
            f"{new.value} at attempt {attempt}",
        )
    return row


def write_partial_logs(conn: Connection, logs: Mapping[tuple[str, int], str]) -> None:
    """The logs of attempts still running, as far as they came (an ended attempt keeps the
    whole log its outcome brought: it is not overwritten)."""
    if not logs:
        return
    statement = (
        update(attempts)
        .where(
            attempts.c.run_id == bindparam("k_run_id"),
            attempts.c.attempt == bindparam("k_attempt"),
            attempts.c.end.is_(None),
        )
        .values(log=bindparam("v_log"))
    )
    conn.execute(
        statement,
        [{"k_run_id": r, "k_attempt": a, "v_log": text} for (r, a), text in logs.items()],
    )
