"""Read-side queries of ``registry.storage.sqlstore.SqlStore``: table rows in, domain records out.

Each function takes an open connection (the caller owns the transaction) and returns frozen records
from ``registry.records`` / ``registry.model``; no row object leaves this module or ``sqlstore``.

The registry tables may hold anything an operator wrote with SQL, so they are read defensively:
documents come as text and are parsed here (a row that is not JSON is one invalid process, not a
failed query), promoted columns as the database gives them, and everything is validated with the
YAML side's rules (``registry.definitions.stored``) before it becomes a definition.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Executable,
    Row,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.types import NullType

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
from registry.storage.codec import stored_fields, stored_source
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


@dataclass(frozen=True, slots=True)
class StoredProcess:
    """One row of ``processes`` as stored, before validation."""

    name: str
    document: Any  # the parsed JSON document (None when ``error`` says it is unreadable)
    error: str | None
    promoted: dict[str, Any]  # the promoted columns as the database gives them
    first_applied: datetime

    def effective_document(self) -> dict[str, Any]:
        """The document with the promoted columns (perhaps edited with SQL) laid over it."""
        doc = dict(self.document) if isinstance(self.document, dict) else {}
        doc.update((k, v) for k, v in self.promoted.items() if v is not None)
        return doc


def _parse_json(text: Any) -> tuple[Any, str | None]:
    if text is None:
        return None, "the document is NULL"
    if not isinstance(text, str):  # a driver that parses JSON even when cast to text
        return text, None
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"the document is not valid JSON ({exc})"


def stored_processes(conn: Connection, names: Collection[str] | None = None) -> list[StoredProcess]:
    """The rows of ``processes`` (of ``names`` only, if given), read so that no value can fail."""
    raw = [type_coerce(processes.c[key], NullType()).label(key) for key in PROMOTED]
    query = select(
        processes.c.name,
        cast(processes.c.document, Text).label("document"),
        *raw,
        processes.c.first_applied,
    ).order_by(processes.c.name)
    if names is not None:
        query = query.where(processes.c.name.in_(list(names)))
    out = []
    for r in conn.execute(query):
        document, error = _parse_json(r.document)
        promoted = {key: _promoted_value(key, getattr(r, key)) for key in PROMOTED}
        out.append(StoredProcess(r.name, document, error, promoted, r.first_applied))
    return out


def _promoted_value(key: str, value: Any) -> Any:
    """SQLite keeps booleans as 0/1; anything else is left for validation to judge."""
    if key in ("hold", "enabled") and type(value) is int and value in (0, 1):
        return bool(value)
    return value


def stored_settings(conn: Connection) -> tuple[Any, str | None]:
    """The settings document (``{}`` if there is none), or ``None`` and why it is unreadable."""
    text = conn.execute(
        select(cast(settings.c.document, Text)).where(settings.c.id == 1)
    ).scalar_one_or_none()
    return ({}, None) if text is None else _parse_json(text)


def load_registry(conn: Connection) -> tuple[RegistryDef, dict[str, datetime]]:
    """The registry as the tables hold it: invalid rows in ``invalid``, never an exception."""
    from registry.definitions.stored import validate_stored  # pydantic & co.: only when needed

    settings_doc, settings_error = stored_settings(conn)
    rows = stored_processes(conn)
    fields: dict[str, dict[str, Any] | str] = {}
    for row in rows:
        if row.error is not None:
            fields[row.name] = row.error
            continue
        document = row.effective_document() if isinstance(row.document, dict) else row.document
        try:
            fields[row.name] = stored_fields(document)
        except ValueError as exc:  # not a JSON object
            fields[row.name] = str(exc)
    registry = validate_stored(
        settings_doc if settings_error is None else settings_error,
        fields,
        {row.name: stored_source(row.document) for row in rows},
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
        result_json=getattr(row, "result_json", None),
        params=dict(getattr(row, "params", None) or {}),
        log=getattr(row, "log", None),
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


_WITHOUT_LOG = [c for c in attempts.c if c.name != "log"]


def history(
    conn: Connection,
    process: str | None,
    since: datetime | None,
    limit: int | None,
    status: RunStatus | None = None,
) -> list[AttemptRecord]:
    """Attempts newest first by queued time, with their run's params and without their logs;
    ``since`` keeps those queued at or after it, ``status`` those that ended so."""
    query = (
        select(*_WITHOUT_LOG, runs.c.params)
        .join(runs, runs.c.run_id == attempts.c.run_id)
        .order_by(attempts.c.queued.desc(), attempts.c.attempt.desc(), attempts.c.run_id.desc())
    )
    if process is not None:
        query = query.where(attempts.c.process == process)
    if since is not None:
        query = query.where(attempts.c.queued >= since)
    if status is not None:
        query = query.where(attempts.c.status == status.value)
    if limit is not None:
        query = query.limit(limit)
    return [attempt_record(row) for row in _rows(conn, query)]


def attempt_log(conn: Connection, run_id: str, attempt: int | None) -> AttemptRecord | None:
    """One attempt of ``run_id`` with its log (the latest attempt when ``attempt`` is None)."""
    query = (
        select(*attempts.c, runs.c.params)
        .join(runs, runs.c.run_id == attempts.c.run_id)
        .where(attempts.c.run_id == run_id)
    )
    if attempt is None:
        query = query.order_by(attempts.c.attempt.desc()).limit(1)
    else:
        query = query.where(attempts.c.attempt == attempt)
    found = _rows(conn, query)
    return attempt_record(found[0]) if found else None


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
            due=r.due,
            scheduled=r.scheduled,
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


def last_results(conn: Connection, processes: Collection[str]) -> dict[str, Any]:
    """Per process of ``processes`` that ever succeeded, the JSON result of its latest
    successful attempt (``None`` when it returned no JSON); the others are left out.

    One statement for any number of names: they travel as one JSON array, unnested by the
    database. For each name, the latest success's end is the top of the index on (process,
    status, end) and its attempt is found through the same index, so the cost follows the
    number of names, not the number of attempts ever recorded."""
    if not processes:
        return {}
    wanted = _names(conn, processes)
    succeeded = RunStatus.SUCCEEDED.value
    latest = attempts.alias("latest")
    last_end = (
        select(func.max(latest.c.end))
        .where(latest.c.process == wanted.c.value, latest.c.status == succeeded)
        .scalar_subquery()
    )
    query = (
        select(attempts.c.process, attempts.c.result_json)
        .select_from(wanted)
        .join(
            attempts,
            and_(
                attempts.c.process == wanted.c.value,
                attempts.c.status == succeeded,
                attempts.c.end == last_end,
            ),
        )
        # two successes ending at the same instant: the last by run id and attempt wins
        .order_by(attempts.c.run_id, attempts.c.attempt)
    )
    return {r.process: r.result_json for r in _rows(conn, query)}


def _names(conn: Connection, names: Collection[str]) -> Any:
    """A table of one column, ``value``: ``names`` bound as a single JSON array."""
    array = bindparam("names", json.dumps(sorted(set(names))), type_=Text)
    if conn.dialect.name == "postgresql":
        rows = func.json_array_elements_text(cast(array, JSON))
    else:
        rows = func.json_each(array)
    return rows.table_valued("value").alias("wanted")
