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

Retries of finished runs (``planner retry``, the dead letters) are trigger requests that name
the run they retry in their ``run_id``; the run that carries one out has that request's id
(``Retry``). ``add_retry`` asks for one unless the run already has a retry that waits, is in
flight or succeeded; two retries at once of one run are serialised by the lock on its row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, select, update

from registry.errors import Conflict, IllegalTransition, RunNotFound
from registry.lifecycle import RunStatus, check_transition
from registry.records import ErrorInfo, RequestKind
from registry.storage.codec import json_roundtrip
from registry.storage.tables import attempts, requests, runs

#: a retry that ended so leaves its run a dead letter still: it may be retried again
_GAVE_UP = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED})


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """A retry of the run ``of``: the trigger request that asks for it and, once it started,
    the run that carries it out (``run_id``, its ``status``)."""

    of: str
    request: int
    pending: bool  # the request waits for a planner to start its run
    run_id: str | None = None
    status: RunStatus | None = None

    @property
    def blocks(self) -> bool:
        """Whether it stands in the way of another retry of ``of``: it waits, runs or
        succeeded (one that was dropped unstarted, or gave up, does not)."""
        if self.run_id is None:
            return self.pending
        return self.status not in _GAVE_UP

    def describe(self) -> str:
        if self.run_id is None:
            return f"request {self.request}, waiting for its run"
        assert self.status is not None
        return f"{self.run_id!r} ({self.status.value})"


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


def retries(conn: Connection, run_ids: Collection[str]) -> list[Retry]:
    """The retries asked of ``run_ids``, and those that ``run_ids`` carry out, oldest first."""
    retry = and_(requests.c.kind == RequestKind.TRIGGER.value, requests.c.run_id.is_not(None))
    # the run of a retry is of its request's process: the index on (process, created) narrows
    # the search to that process's runs (no comparison of times: the request's comes from the
    # clock of the shell that asked, the run's from the planner's)
    asked = (
        select(
            requests.c.id,
            requests.c.run_id.label("of"),
            requests.c.handled,
            runs.c.run_id,
            runs.c.status,
        )
        .select_from(requests)
        .outerjoin(
            runs,
            and_(runs.c.process == requests.c.process, runs.c.request_id == requests.c.id),
        )
        .where(retry)
    )
    carrying = (
        select(
            requests.c.id,
            requests.c.run_id.label("of"),
            requests.c.handled,
            runs.c.run_id,
            runs.c.status,
        )
        .join(requests, requests.c.id == runs.c.request_id)
        .where(retry)
    )
    found: dict[int, Retry] = {}
    wanted = sorted(set(run_ids))
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        for query in (
            asked.where(requests.c.run_id.in_(chunk)),
            carrying.where(runs.c.run_id.in_(chunk)),
        ):
            for row in conn.execute(query):
                found[int(row.id)] = Retry(
                    of=row.of,
                    request=int(row.id),
                    pending=row.handled is None,
                    run_id=row.run_id,
                    status=None if row.status is None else RunStatus(row.status),
                )
    return [found[k] for k in sorted(found)]


def add_retry(conn: Connection, run_id: str, *, at: datetime) -> int:
    """A trigger request, made at ``at``, for ``run_id`` again: its process, params and
    scheduled time; the request's id. ``RunNotFound``; ``Conflict`` if a retry of it waits, is
    in flight or succeeded (nothing is written)."""
    run = _lock_run(conn, run_id)
    standing = [r for r in retries(conn, [run_id]) if r.of == run_id and r.blocks]
    if standing:
        what = standing[-1]
        raise Conflict(
            f"run {run_id!r} was already retried: {what.describe()}"
            + ("" if what.status is RunStatus.SUCCEEDED else "; let that retry end first")
        )
    key = conn.execute(
        insert(requests).values(
            kind=RequestKind.TRIGGER.value,
            process=run.process,
            run_id=run_id,
            params=json_roundtrip(dict(run.params or {})),
            force=False,
            created=at,
            scheduled=run.scheduled,
        )
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


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
