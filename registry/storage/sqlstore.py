"""``SqlStore``: the ``Store`` contract on SQLAlchemy Core (SQLite, PostgreSQL).

Theory of operation. Every public method is one transaction that commits before it returns, so a
planner that crashes afterwards loses nothing. Writes open with ``_write()``:

- SQLite (several processes share one file: a running planner and CLI commands) runs in WAL mode,
  so readers never block the writer; each write transaction starts with ``BEGIN IMMEDIATE`` so it
  takes the write lock up front (waiting up to the busy timeout) instead of failing with
  ``SQLITE_BUSY`` when a read inside it would have to upgrade after another process committed.
- PostgreSQL runs at READ COMMITTED; writers lock the rows they check (``SELECT ... FOR UPDATE``):
  the run for status changes, the registry revision row for registry changes, so two writers
  never both pass the same lifecycle check.

Reads use ``_read()``: one snapshot (SQLite's deferred transaction, PostgreSQL's REPEATABLE
READ), so ``load_histories`` sees a consistent picture across its queries. The read-side queries
live in ``registry.storage.queries``.

Run ids are ``f"{process}-{seq}"`` (the core makes them); the store keeps ``seq`` in its own
column so ``runs_created`` is an indexed MAX(). Status checks use ``registry.lifecycle``; an illegal
change raises ``IllegalTransition`` before anything is written.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.sql.dml import Insert

from registry.errors import IllegalTransition, ProcessNotFound, RunNotFound
from registry.lifecycle import RunStatus, check_transition
from registry.model import ProcessDef, RegistryDef
from registry.records import (
    ActiveRun,
    ApplyResult,
    AttemptRecord,
    ErrorInfo,
    LoggedDecision,
    ProcessHistory,
    Request,
    RequestKind,
)
from registry.storage import queries as q
from registry.storage.codec import process_to_document, settings_to_document
from registry.storage.tables import (
    attempts,
    metadata,
    process_state,
    processes,
    registry_revision,
    requests,
    runs,
    settings,
)

#: seconds a SQLite writer waits for another process's write lock before giving up
SQLITE_BUSY_TIMEOUT_S = 30.0
#: key of the PostgreSQL advisory lock taken while creating tables (any fixed number will do)
_PG_CREATE_LOCK = 0x706C616E6E6572  # "planner"


class SqlStore:
    """The store on a SQLAlchemy URL (``sqlite:///planner.db``, ``postgresql+psycopg://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _make_engine(url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._local = threading.local()  # the connection of the batch open on this thread
        self._create_tables()

    @property
    def engine(self) -> Engine:
        """The underlying engine (for operators' tooling and tests that edit tables directly)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create_tables(self) -> None:
        # Two processes opening a new database at once (a planner and a CLI command) must not
        # both try to create the tables: check-and-create runs under the write lock (SQLite's
        # DDL is transactional) or a transaction-scoped advisory lock (PostgreSQL).
        with self._write() as conn:
            if not self._sqlite:
                conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
            metadata.create_all(conn)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside into one transaction, committed when the block ends.

        The live loop wraps each turn's records in a batch (one commit instead of one per run)
        and acts on them — submits to Dask — only after the block has committed."""
        if getattr(self._local, "conn", None) is not None:
            yield  # already inside a batch on this thread
            return
        with self._write() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._engine.connect() as conn:
            conn.execution_options(planner_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:  # see this batch's own uncommitted writes
            yield current
            return
        with self._engine.connect() as conn:
            if not self._sqlite:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _upsert(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> Insert:
        make = sqlite_insert if self._sqlite else pg_insert
        return (
            make(table)
            .values(**key, **values)
            .on_conflict_do_update(index_elements=list(key), set_=dict(values))
        )

    # -- registry -----------------------------------------------------------------------------

    def apply(self, registry: RegistryDef, *, now: datetime) -> ApplyResult:
        new_settings = _json_roundtrip(settings_to_document(registry))
        added: list[str] = []
        changed: list[str] = []
        with self._write() as conn:
            _lock_registry(conn)
            rows = {r.name: r for r in conn.execute(select(processes))}
            removed = sorted(set(rows) - set(registry.processes))
            if removed:
                conn.execute(delete(processes).where(processes.c.name.in_(removed)))
            for name in sorted(registry.processes):
                definition = registry.processes[name]
                doc = _json_roundtrip(process_to_document(definition))
                row = rows.get(name)
                if row is None:
                    conn.execute(
                        insert(processes).values(
                            name=name,
                            document=doc,
                            first_applied=now,
                            updated_at=now,
                            **_promoted(definition),
                        )
                    )
                    added.append(name)
                    continue
                if _sans_source(q.effective_document(row)) != _sans_source(doc):
                    changed.append(name)
                if row.document != doc or q.row_promoted(row) != _promoted(definition):
                    conn.execute(
                        update(processes)
                        .where(processes.c.name == name)
                        .values(document=doc, updated_at=now, **_promoted(definition))
                    )
            old_settings = conn.execute(
                select(settings.c.document).where(settings.c.id == 1)
            ).scalar_one_or_none()
            if old_settings != new_settings:
                conn.execute(self._upsert(settings, {"id": 1}, {"document": new_settings}))
        return ApplyResult(added=tuple(added), changed=tuple(changed), removed=tuple(removed))

    def load_registry(self) -> tuple[RegistryDef, dict[str, datetime]]:
        with self._read() as conn:
            return q.load_registry(conn)

    def registry_revision(self) -> int:
        with self._read() as conn:
            value = conn.execute(
                select(registry_revision.c.revision).where(registry_revision.c.id == 1)
            ).scalar_one()
        return int(value)

    def update_process(self, name: str, changes: Mapping[str, Any]) -> ProcessDef:
        from registry.definitions.loader import (
            revise,  # the loader imports YAML machinery; load it lazily
        )

        with self._write() as conn:
            _lock_registry(conn)
            registry, _ = q.load_registry(conn)
            if name not in registry.processes:
                raise ProcessNotFound(name)
            definition = revise(registry, name, changes).processes[name]
            doc = _json_roundtrip(process_to_document(definition))
            row = conn.execute(select(processes).where(processes.c.name == name)).one()
            if row.document != doc or q.row_promoted(row) != _promoted(definition):
                conn.execute(
                    update(processes)
                    .where(processes.c.name == name)
                    .values(document=doc, updated_at=datetime.now(UTC), **_promoted(definition))
                )
        return definition

    # -- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        run_id: str,
        process: str,
        scheduled: datetime,
        queued: datetime,
        params: Mapping[str, Any],
        request_id: int | None = None,
    ) -> None:
        with self._write() as conn:
            existing = conn.execute(
                select(runs.c.status).where(runs.c.run_id == run_id)
            ).scalar_one_or_none()
            if existing is not None:
                raise IllegalTransition(run_id, existing, RunStatus.QUEUED.value)
            conn.execute(
                insert(runs).values(
                    run_id=run_id,
                    process=process,
                    seq=_run_seq(run_id, process),
                    scheduled=scheduled,
                    status=RunStatus.QUEUED.value,
                    attempt=1,
                    params=_json_roundtrip(dict(params)),
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

    def retry_run(self, run_id: str, *, attempt: int, queued: datetime) -> None:
        with self._write() as conn:
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

    def attempt_started(self, run_id: str, attempt: int, *, start: datetime, worker: str) -> None:
        with self._write() as conn:
            run = _lock_run(conn, run_id)
            current = _current_attempt(conn, run, attempt, RunStatus.RUNNING)
            check_transition(run_id, RunStatus(current.status), RunStatus.RUNNING)
            check_transition(run_id, RunStatus(run.status), RunStatus.RUNNING)
            conn.execute(
                update(attempts)
                .where(attempts.c.run_id == run_id, attempts.c.attempt == attempt)
                .values(status=RunStatus.RUNNING.value, start=start, worker=worker)
            )
            conn.execute(
                update(runs).where(runs.c.run_id == run_id).values(status=RunStatus.RUNNING.value)
            )

    def finish_attempt(
        self,
        run_id: str,
        attempt: int,
        *,
        status: RunStatus,
        end: datetime,
        start: datetime | None = None,
        worker: str | None = None,
        error: ErrorInfo | None = None,
        result: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        if not status.terminal:
            raise ValueError(f"an attempt ends in a terminal status, not {status.value!r}")
        with self._write() as conn:
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

    def cancel_retry(self, run_id: str, *, at: datetime) -> None:
        with self._write() as conn:
            run = _lock_run(conn, run_id)
            check_transition(run_id, RunStatus(run.status), RunStatus.CANCELLED)
            if run.status != RunStatus.RETRYING.value:  # queued/running runs end via their attempt
                raise IllegalTransition(run_id, run.status, "cancelled before its next attempt")
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=RunStatus.CANCELLED.value, retry_at=None, ended=at)
            )

    def active_runs(self) -> list[ActiveRun]:
        with self._read() as conn:
            return q.active_runs(conn)

    def run_process(self, run_id: str) -> str:
        with self._read() as conn:
            process = conn.execute(
                select(runs.c.process).where(runs.c.run_id == run_id)
            ).scalar_one_or_none()
        if process is None:
            raise RunNotFound(run_id)
        return str(process)

    def history(
        self, process: str | None = None, *, since: datetime | None = None, limit: int | None = None
    ) -> list[AttemptRecord]:
        with self._read() as conn:
            return q.history(conn, process, since, limit)

    def load_histories(self, *, durations_kept: int = 20) -> dict[str, ProcessHistory]:
        with self._read() as conn:
            return q.load_histories(conn, durations_kept)

    # -- per-process saved state and resets ---------------------------------------------------

    def load_state(self, process: str) -> Any:
        with self._read() as conn:
            return conn.execute(
                select(process_state.c.state).where(process_state.c.process == process)
            ).scalar_one_or_none()

    def save_state(self, process: str, state: Any) -> None:
        value = _json_roundtrip(state)
        with self._write() as conn:
            conn.execute(self._upsert(process_state, {"process": process}, {"state": value}))

    def reset(self, process: str, *, at: datetime) -> None:
        with self._write() as conn:
            conn.execute(self._upsert(process_state, {"process": process}, {"reset_at": at}))

    # -- operator requests --------------------------------------------------------------------

    def add_request(
        self,
        kind: RequestKind,
        *,
        at: datetime,
        process: str | None = None,
        run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> int:
        values = {
            "kind": RequestKind(kind).value,
            "process": process,
            "run_id": run_id,
            "params": _json_roundtrip(dict(params or {})),
            "force": force,
            "created": at,
        }
        with self._write() as conn:
            key = conn.execute(insert(requests).values(**values)).inserted_primary_key
        assert key is not None
        return int(key[0])

    def pending_requests(self) -> list[Request]:
        with self._read() as conn:
            return q.pending_requests(conn)

    def mark_handled(self, request_ids: Sequence[int], *, at: datetime) -> None:
        if not request_ids:
            return
        with self._write() as conn:
            conn.execute(
                update(requests)
                .where(requests.c.id.in_(list(request_ids)), requests.c.handled.is_(None))
                .values(handled=at)
            )

    # -- decision log -------------------------------------------------------------------------

    def log_decisions(self, decisions: Sequence[LoggedDecision]) -> None:
        if not decisions:
            return
        rows = q.decision_rows(decisions)
        with self._write() as conn:
            conn.execute(insert(q.decisions), rows)

    def decisions(self, process: str | None = None, *, limit: int = 50) -> list[LoggedDecision]:
        with self._read() as conn:
            return q.logged_decisions(conn, process, limit)


# -- engine -------------------------------------------------------------------------------------


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # psycopg 3 is the driver we ship and test
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module, which would otherwise start deferred
    # transactions on its own; ``_sqlite_begin`` emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a committed transaction
        # survives a crash of the planner process (the OS has it); only a power loss can take
        # the last commits. That is the durability the planner promises, at a fraction of the cost.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("planner_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# -- helpers ------------------------------------------------------------------------------------


def _json_roundtrip(value: Any) -> Any:
    """The value as it will come back from a JSON column (lists for tuples, str keys...)."""
    return json.loads(json.dumps(value))


def _promoted(definition: ProcessDef) -> dict[str, Any]:
    return {key: getattr(definition, key) for key in q.PROMOTED}


def _sans_source(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "source"}


def _run_seq(run_id: str, process: str) -> int | None:
    suffix = run_id.removeprefix(f"{process}-")
    if suffix != run_id and suffix.isascii() and suffix.isdigit():
        return int(suffix)
    return None


def _lock_registry(conn: Connection) -> None:
    """Serialise registry writers (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    conn.execute(
        select(registry_revision.c.revision).where(registry_revision.c.id == 1).with_for_update()
    )


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
