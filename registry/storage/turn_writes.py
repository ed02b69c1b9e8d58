"""One live-loop turn's run records in a bounded number of statements, however many runs it moves.

``record_turn`` takes a ``Turn`` (starts, ends, cancelled retries, new runs, next attempts,
handled requests) and, inside the caller's write transaction:

1. reads every run the turn touches with its current attempt in one ``SELECT`` (runs joined to
   their current attempts; ``FOR UPDATE OF runs`` on PostgreSQL, where SQLite's ``BEGIN
   IMMEDIATE`` already serialises writers);
2. applies the changes in memory, in the turn's order, checking every status change against
   ``registry.lifecycle`` exactly as the one-run functions of ``run_writes`` do — an illegal one
   raises ``IllegalTransition`` before anything is written, so the whole turn is refused;
3. writes the result: one multi-row ``INSERT`` each for new runs and new attempts, one
   ``UPDATE`` executed over many parameter sets each for changed runs and changed attempts
   (binding only the fields a turn changes), and one upsert for the processes' saved states.

Lists longer than ``CHUNK`` ids are read in chunks, so the count of statements grows with the
turn's size divided by ``CHUNK``, not with the number of runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from registry.errors import IllegalTransition, RunNotFound
from registry.lifecycle import RunStatus, check_transition
from registry.records import AttemptEnd, AttemptStart, NewRun, NextAttempt, Turn
from registry.storage.codec import json_roundtrip
from registry.storage.run_writes import run_seq
from registry.storage.tables import attempts, process_state, requests, runs

#: ids per ``IN (...)`` list
CHUNK = 500

_RUN_FIELDS = ("status", "attempt", "retry_at", "ended")
_ATTEMPT_FIELDS = (
    "status",
    "queued",
    "start",
    "end",
    "duration_s",
    "worker",
    "error_type",
    "error_message",
    "error_traceback",
    "result",
    "result_json",
    "log",
)


# Built once: constructing SQLAlchemy statements costs more than SQLite running them.
_RUN_COLUMNS = tuple(c.name for c in runs.c)
# an attempt's log (up to 1 MiB) is neither read nor written back unless the turn brings one
_ATTEMPT_COLUMNS = tuple(c.name for c in attempts.c if c.name != "log")
_SELECT_TURN = (
    select(runs, *(attempts.c[name].label(f"a_{name}") for name in _ATTEMPT_COLUMNS))
    .outerjoin(
        attempts, and_(attempts.c.run_id == runs.c.run_id, attempts.c.attempt == runs.c.attempt)
    )
    .where(runs.c.run_id.in_(bindparam("ids", expanding=True)))
    .with_for_update(of=runs)
)
_INSERT_RUNS = insert(runs)
_INSERT_ATTEMPTS = insert(attempts)
_UPDATE_RUNS = (
    update(runs)
    .where(runs.c.run_id == bindparam("k_run_id"))
    .values({f: bindparam(f"v_{f}") for f in _RUN_FIELDS})
)
_UPDATE_ATTEMPTS = (
    update(attempts)
    .where(
        attempts.c.run_id == bindparam("k_run_id"),
        attempts.c.attempt == bindparam("k_attempt"),
    )
    .values(
        {
            **{f: bindparam(f"v_{f}") for f in _ATTEMPT_FIELDS if f != "log"},
            "log": func.coalesce(bindparam("v_log", type_=Text), attempts.c.log),
        }
    )
)


def _save_states(make: Any) -> Any:
    statement = make(process_state)
    return statement.on_conflict_do_update(
        index_elements=["process"], set_={"state": statement.excluded.state}
    )


_SAVE_STATES = {"sqlite": _save_states(sqlite_insert), "postgresql": _save_states(pg_insert)}
_DELETE_ATTEMPTS = delete(attempts).where(attempts.c.run_id.in_(bindparam("ids", expanding=True)))
_DELETE_RUNS = delete(runs).where(runs.c.run_id.in_(bindparam("ids", expanding=True)))
_MARK_HANDLED = (
    update(requests)
    .where(requests.c.id.in_(bindparam("ids", expanding=True)), requests.c.handled.is_(None))
    .values(handled=bindparam("at"))
)


class _Rows:
    """The turn's runs and current attempts in memory, and which of them are new or changed."""

    def __init__(self, conn: Connection, run_ids: set[str]) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.attempts: dict[tuple[str, int], dict[str, Any]] = {}
        split = len(_RUN_COLUMNS)
        for chunk in _chunks(sorted(run_ids)):
            for row in conn.execute(_SELECT_TURN, {"ids": chunk}):
                values = tuple(row)
                run = dict(zip(_RUN_COLUMNS, values[:split], strict=True))
                self.runs[run["run_id"]] = run
                if values[split] is not None:  # its current attempt (a run always has one)
                    current = dict(zip(_ATTEMPT_COLUMNS, values[split:], strict=True))
                    self.attempts[(current["run_id"], current["attempt"])] = current
        self.new_runs: list[str] = []
        self.new_attempts: list[tuple[str, int]] = []
        self.changed_runs: set[str] = set()
        self.changed_attempts: set[tuple[str, int]] = set()

    def run(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def current(self, run: dict[str, Any], attempt: int, new: RunStatus) -> dict[str, Any]:
        row = self.attempts.get((run["run_id"], attempt))
        if row is None or attempt != run["attempt"]:
            raise IllegalTransition(
                run["run_id"],
                f"{run['status']} at attempt {run['attempt']}",
                f"{new.value} at attempt {attempt}",
            )
        return row

    def set_run(self, run: dict[str, Any], **values: Any) -> None:
        run.update(values)
        if run["run_id"] not in self.new_runs:
            self.changed_runs.add(run["run_id"])

    def set_attempt(self, row: dict[str, Any], **values: Any) -> None:
        row.update(values)
        key = (row["run_id"], row["attempt"])
        if key not in self.new_attempts:
            self.changed_attempts.add(key)

    def add_attempt(
        self, run: dict[str, Any], attempt: int, queued: Any, status: RunStatus = RunStatus.QUEUED
    ) -> None:
        key = (run["run_id"], attempt)
        self.attempts[key] = {
            "run_id": run["run_id"],
            "attempt": attempt,
            "process": run["process"],
            "status": status.value,
            "scheduled": run["scheduled"],
            "queued": queued,
        }
        self.new_attempts.append(key)


def record_turn(conn: Connection, turn: Turn) -> None:
    """Write ``turn``'s records (runs, attempts, saved states) in the caller's transaction."""
    ids = {s.run_id for s in turn.started} | {e.run_id for e in turn.ended}
    ids |= set(turn.withdrawn) | set(turn.confirmed)
    ids |= set(turn.cancelled_retries) | {r.run_id for r in turn.retried}
    ids |= {c.run_id for c in turn.created}
    rows = _Rows(conn, ids)
    gone = [_withdrawn(rows, run_id) for run_id in turn.withdrawn]
    for run_id in turn.confirmed:
        _confirmed(rows, run_id, turn.at)
    for s in turn.started:
        _started(rows, s)
    for e in turn.ended:
        _ended(rows, e)
    for run_id in turn.cancelled_retries:
        _cancel_retry(rows, run_id, turn)
    for c in turn.created:
        _created(rows, c)
    for r in turn.retried:
        _retried(rows, r)
    for chunk in _chunks(gone):
        conn.execute(_DELETE_ATTEMPTS, {"ids": chunk})
        conn.execute(_DELETE_RUNS, {"ids": chunk})
    _write(conn, rows)
    if turn.states:
        states = [
            {"process": p, "state": json_roundtrip(v)} for p, v in sorted(turn.states.items())
        ]
        conn.execute(_SAVE_STATES[conn.dialect.name], states)
    for chunk in _chunks(sorted(set(turn.handled))):
        conn.execute(_MARK_HANDLED, {"ids": chunk, "at": turn.at})


def _withdrawn(rows: _Rows, run_id: str) -> str:
    run = rows.run(run_id)
    if run["status"] != RunStatus.PENDING.value:
        raise IllegalTransition(run_id, run["status"], "withdrawn (only a pending run is)")
    del rows.runs[run_id]
    rows.attempts.pop((run_id, run["attempt"]), None)
    return run_id


def _confirmed(rows: _Rows, run_id: str, at: datetime) -> None:
    """A chained run the planner started at ``at``, after its ancestor's end: it counts as
    queued then (the planner's last start of it), not when it was handed to Dask ahead."""
    run = rows.run(run_id)
    current = rows.current(run, 1, RunStatus.QUEUED)
    check_transition(run_id, RunStatus(run["status"]), RunStatus.QUEUED)
    rows.set_attempt(current, status=RunStatus.QUEUED.value, queued=at)
    rows.set_run(run, status=RunStatus.QUEUED.value)


def _started(rows: _Rows, s: AttemptStart) -> None:
    run = rows.run(s.run_id)
    current = rows.current(run, s.attempt, RunStatus.RUNNING)
    check_transition(s.run_id, RunStatus(current["status"]), RunStatus.RUNNING)
    check_transition(s.run_id, RunStatus(run["status"]), RunStatus.RUNNING)
    rows.set_attempt(current, status=RunStatus.RUNNING.value, start=s.start, worker=s.worker)
    rows.set_run(run, status=RunStatus.RUNNING.value)


def _ended(rows: _Rows, e: AttemptEnd) -> None:
    if not e.status.terminal:
        raise ValueError(f"an attempt ends in a terminal status, not {e.status.value!r}")
    run = rows.run(e.run_id)
    current = rows.current(run, e.attempt, e.status)
    check_transition(e.run_id, RunStatus(current["status"]), e.status)
    check_transition(e.run_id, RunStatus(run["status"]), e.status)
    if e.retry_at is not None:
        check_transition(e.run_id, e.status, RunStatus.RETRYING)
    began = e.start if e.start is not None else current["start"]
    error = e.error
    rows.set_attempt(
        current,
        status=e.status.value,
        start=began,
        end=e.end,
        duration_s=None if began is None else (e.end - began).total_seconds(),
        worker=e.worker if e.worker is not None else current["worker"],
        error_type=None if error is None else error.type,
        error_message=None if error is None else error.message,
        error_traceback=None if error is None else error.traceback,
        result=e.result,
        result_json=e.result_json,
        log=e.log,  # None keeps what the planner wrote while it ran (``write_partial_logs``)
    )
    if e.retry_at is not None:
        rows.set_run(run, status=RunStatus.RETRYING.value, retry_at=e.retry_at)
    else:
        rows.set_run(run, status=e.status.value, ended=e.end)


def _cancel_retry(rows: _Rows, run_id: str, turn: Turn) -> None:
    run = rows.run(run_id)
    check_transition(run_id, RunStatus(run["status"]), RunStatus.CANCELLED)
    if run["status"] != RunStatus.RETRYING.value:
        raise IllegalTransition(run_id, run["status"], "cancelled before its next attempt")
    rows.set_run(run, status=RunStatus.CANCELLED.value, retry_at=None, ended=turn.at)


def _created(rows: _Rows, c: NewRun) -> None:
    existing = rows.runs.get(c.run_id)
    if existing is not None:
        raise IllegalTransition(c.run_id, existing["status"], RunStatus.QUEUED.value)
    status = RunStatus.PENDING if c.pending else RunStatus.QUEUED
    run = {
        "run_id": c.run_id,
        "process": c.process,
        "seq": run_seq(c.run_id, c.process),
        "scheduled": c.scheduled,
        "status": status.value,
        "attempt": 1,
        "params": json_roundtrip(dict(c.params)),
        "request_id": c.request_id,
        "created": c.queued,
        "retry_at": None,
        "ended": None,
    }
    rows.runs[c.run_id] = run
    rows.new_runs.append(c.run_id)
    rows.add_attempt(run, 1, c.queued, status)


def _retried(rows: _Rows, r: NextAttempt) -> None:
    run = rows.run(r.run_id)
    check_transition(r.run_id, RunStatus(run["status"]), RunStatus.QUEUED)
    if r.attempt != run["attempt"] + 1:
        raise IllegalTransition(
            r.run_id, f"retrying after attempt {run['attempt']}", f"queued as attempt {r.attempt}"
        )
    rows.set_run(run, status=RunStatus.QUEUED.value, attempt=r.attempt, retry_at=None)
    rows.add_attempt(run, r.attempt, r.queued)


def _write(conn: Connection, rows: _Rows) -> None:
    if rows.new_runs:
        conn.execute(_INSERT_RUNS, [rows.runs[i] for i in rows.new_runs])
    if rows.changed_runs:
        changed = [rows.runs[i] for i in sorted(rows.changed_runs)]
        conn.execute(_UPDATE_RUNS, [_params(r, _RUN_FIELDS) for r in changed])
    if rows.changed_attempts:
        tried = [rows.attempts[k] for k in sorted(rows.changed_attempts)]
        conn.execute(_UPDATE_ATTEMPTS, [_params(a, _ATTEMPT_FIELDS) for a in tried])
    if rows.new_attempts:
        conn.execute(_INSERT_ATTEMPTS, [rows.attempts[k] for k in rows.new_attempts])


def _params(row: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    out = {f"v_{f}": row.get(f) for f in fields}
    out["k_run_id"] = row["run_id"]
    if "attempt" in row and fields is _ATTEMPT_FIELDS:
        out["k_attempt"] = row["attempt"]
    return out


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]
