"""Read-side queries of ``registry.storage.sqlstore.SqlStore``: table rows in, domain records out.

Each function takes an open connection (the caller owns the transaction) and returns frozen records
from ``registry.records`` / ``registry.model``; no row object leaves this module or ``sqlstore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, Row, and_, case, func, or_, select

from registry.lifecycle import TERMINAL, RunStatus
from registry.model import RegistryDef
from registry.records import (
    ActiveRun,
    AttemptRecord,
    ErrorInfo,
    LoggedDecision,
    ProcessHistory,
    Request,
    RequestKind,
)
from registry.storage.codec import registry_from_documents
from registry.storage.tables import (
    attempts,
    decisions,
    process_state,
    processes,
    requests,
    runs,
    settings,
)

#: document keys that have their own column; the column wins when loading
PROMOTED = ("priority", "hold", "enabled", "max_active")
_ACTIVE_RUN = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.RETRYING.value)
_TERMINAL = tuple(s.value for s in TERMINAL)


def row_promoted(row: Row[Any]) -> dict[str, Any]:
    """The promoted columns as Python values (SQLite gives 0/1 for booleans)."""
    kinds = {"priority": int, "hold": bool, "enabled": bool, "max_active": int}
    values = {key: getattr(row, key) for key in PROMOTED}
    return {key: None if v is None else kinds[key](v) for key, v in values.items()}


def effective_document(row: Row[Any]) -> dict[str, Any]:
    """The stored document with the promoted columns (perhaps edited with SQL) laid over it."""
    doc = dict(row.document)
    doc.update((k, v) for k, v in row_promoted(row).items() if v is not None)
    return doc


def load_registry(conn: Connection) -> tuple[RegistryDef, dict[str, datetime]]:
    settings_doc = conn.execute(
        select(settings.c.document).where(settings.c.id == 1)
    ).scalar_one_or_none()
    rows = conn.execute(select(processes).order_by(processes.c.name)).all()
    registry = registry_from_documents(
        settings_doc or {}, {r.name: effective_document(r) for r in rows}
    )
    return registry, {r.name: r.first_applied for r in rows}


def attempt_record(row: Row[Any]) -> AttemptRecord:
    error = None
    if row.error_type is not None:
        error = ErrorInfo(
            type=row.error_type,
            message=row.error_message or "",
            traceback=row.error_traceback or "",
        )
    return AttemptRecord(
        process=row.process,
        run_id=row.run_id,
        attempt=int(row.attempt),
        status=RunStatus(row.status),
        scheduled=row.scheduled,
        queued=row.queued,
        start=row.start,
        end=row.end,
        worker=row.worker,
        error=error,
        result=row.result,
    )


def active_runs(conn: Connection) -> list[ActiveRun]:
    query = (
        select(runs, attempts.c.queued)
        .join(
            attempts, and_(attempts.c.run_id == runs.c.run_id, attempts.c.attempt == runs.c.attempt)
        )
        .where(runs.c.status.in_(_ACTIVE_RUN))
        .order_by(runs.c.created, runs.c.run_id)
    )
    return [
        ActiveRun(
            run_id=r.run_id,
            process=r.process,
            attempt=int(r.attempt),
            status=RunStatus(r.status),
            scheduled=r.scheduled,
            started=r.queued,
            retry_at=r.retry_at,
            params=dict(r.params or {}),
            request_id=None if r.request_id is None else int(r.request_id),
        )
        for r in conn.execute(query)
    ]


def load_histories(conn: Connection, durations_kept: int) -> dict[str, ProcessHistory]:
    """Build ``ProcessHistory`` per process that has runs, from a few grouped queries.

    - the *latest run* is the one created (first queued) last: ``last_fire`` is its scheduled
      time, ``last_start`` when its current attempt was queued;
    - ``last_end`` / ``last_success_end``: latest end of any / a successful attempt, resets or not;
    - ``successes`` / ``last_outcome`` count runs first queued at or after the last reset (a run
      started in the same tick as the reset belongs after it); the outcome is the terminal
      status of the run that ended last;
    - ``durations``: the ``durations_kept`` most recently ended successful attempts, oldest first.
    """
    facts: dict[str, dict[str, Any]] = {}

    def put(process: str, **values: Any) -> None:
        facts.setdefault(process, {}).update(values)

    since_reset = or_(
        process_state.c.reset_at.is_(None), runs.c.created >= process_state.c.reset_at
    )
    with_resets = runs.outerjoin(process_state, process_state.c.process == runs.c.process)

    for r in _rows(
        conn, select(runs.c.process, func.max(runs.c.seq).label("seq")).group_by(runs.c.process)
    ):
        put(r.process, runs_created=int(r.seq or 0))

    latest = (
        select(
            runs.c.process,
            runs.c.scheduled,
            attempts.c.queued,
            func.row_number()
            .over(
                partition_by=runs.c.process,
                order_by=(runs.c.created.desc(), runs.c.seq.desc(), runs.c.run_id.desc()),
            )
            .label("rn"),
        )
        .join(
            attempts, and_(attempts.c.run_id == runs.c.run_id, attempts.c.attempt == runs.c.attempt)
        )
        .subquery()
    )
    for r in _rows(conn, select(latest).where(latest.c.rn == 1)):
        put(r.process, last_fire=r.scheduled, last_start=r.queued)

    succeeded = attempts.c.status == RunStatus.SUCCEEDED.value
    ends = select(
        attempts.c.process,
        func.max(attempts.c.end).label("last_end"),
        func.max(case((succeeded, attempts.c.end))).label("last_success_end"),
    ).group_by(attempts.c.process)
    for r in _rows(conn, ends):
        put(r.process, last_end=r.last_end, last_success_end=r.last_success_end)

    wins = (
        select(runs.c.process, func.count().label("n"))
        .select_from(with_resets)
        .where(runs.c.status == RunStatus.SUCCEEDED.value, since_reset)
        .group_by(runs.c.process)
    )
    for r in _rows(conn, wins):
        put(r.process, successes=int(r.n))

    outcomes = (
        select(
            runs.c.process,
            runs.c.status,
            func.row_number()
            .over(
                partition_by=runs.c.process,
                order_by=(runs.c.ended.desc(), runs.c.created.desc(), runs.c.seq.desc()),
            )
            .label("rn"),
        )
        .select_from(with_resets)
        .where(runs.c.status.in_(_TERMINAL), since_reset)
        .subquery()
    )
    for r in _rows(conn, select(outcomes).where(outcomes.c.rn == 1)):
        put(r.process, last_outcome=RunStatus(r.status))

    recent = (
        select(
            attempts.c.process,
            attempts.c.end,
            attempts.c.duration_s,
            func.row_number()
            .over(partition_by=attempts.c.process, order_by=attempts.c.end.desc())
            .label("rn"),
        )
        .where(succeeded, attempts.c.duration_s.is_not(None))
        .subquery()
    )
    durations: dict[str, list[float]] = {}
    if durations_kept > 0:
        query = select(recent).where(recent.c.rn <= durations_kept).order_by(recent.c.end)
        for r in _rows(conn, query):
            durations.setdefault(r.process, []).append(float(r.duration_s))
    for process, values in durations.items():
        put(process, durations=tuple(values))

    active: dict[str, list[ActiveRun]] = {}
    for run in active_runs(conn):
        active.setdefault(run.process, []).append(run)
    for process, runs_ in active.items():
        put(process, active=tuple(runs_))

    # a reset forgets the last start too (the core does the same), so that ancestors that
    # succeeded before the reset count as fresh again
    resets = select(process_state.c.process, process_state.c.reset_at).where(
        process_state.c.reset_at.is_not(None)
    )
    for r in _rows(conn, resets):
        known = facts.get(r.process)
        if known and known.get("last_start") is not None and known["last_start"] < r.reset_at:
            known["last_start"] = None

    return {process: ProcessHistory(**values) for process, values in facts.items()}


def history(
    conn: Connection, process: str | None, since: datetime | None, limit: int | None
) -> list[AttemptRecord]:
    """Attempts newest first by queued time; ``since`` keeps those queued at or after it."""
    query = select(attempts).order_by(
        attempts.c.queued.desc(), attempts.c.attempt.desc(), attempts.c.run_id.desc()
    )
    if process is not None:
        query = query.where(attempts.c.process == process)
    if since is not None:
        query = query.where(attempts.c.queued >= since)
    if limit is not None:
        query = query.limit(limit)
    return [attempt_record(row) for row in _rows(conn, query)]


def pending_requests(conn: Connection) -> list[Request]:
    query = select(requests).where(requests.c.handled.is_(None)).order_by(requests.c.id)
    return [
        Request(
            id=int(r.id),
            kind=RequestKind(r.kind),
            created=r.created,
            process=r.process,
            run_id=r.run_id,
            params=dict(r.params or {}),
            force=bool(r.force),
        )
        for r in _rows(conn, query)
    ]


def decision_rows(decisions_: Sequence[LoggedDecision]) -> list[dict[str, Any]]:
    return [
        {
            "at": d.at,
            "process": d.process,
            "decision": d.decision,
            "reasons": [[code, detail] for code, detail in d.reasons],
        }
        for d in decisions_
    ]


def logged_decisions(conn: Connection, process: str | None, limit: int) -> list[LoggedDecision]:
    query = select(decisions).order_by(decisions.c.at.desc(), decisions.c.id.desc()).limit(limit)
    if process is not None:
        query = query.where(decisions.c.process == process)
    return [
        LoggedDecision(
            at=r.at,
            process=r.process,
            decision=r.decision,
            reasons=tuple((str(code), str(detail)) for code, detail in r.reasons),
        )
        for r in _rows(conn, query)
    ]


def _rows(conn: Connection, query: Executable) -> list[Any]:
    return list(conn.execute(query))
