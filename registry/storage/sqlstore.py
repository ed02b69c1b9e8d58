"""``SqlStore``: the ``Store`` contract on SQLAlchemy Core (SQLite, PostgreSQL).

Theory of operation. Every public method is one transaction that commits before it returns, so a
planner that crashes afterwards loses nothing. Writes open with ``_write()``:

- SQLite (several processes share one file: a running planner and CLI commands) runs in WAL mode,
  so readers never block the writer; each write transaction starts with ``BEGIN IMMEDIATE`` so it
  takes the write lock up front (``registry.storage.engine``).
- PostgreSQL runs at READ COMMITTED; writers lock the rows they check (``SELECT ... FOR UPDATE``):
  the run for status changes, the registry revision row for registry changes, so two writers
  never both pass the same lifecycle check.

Reads use ``_read()``: one snapshot (SQLite's deferred transaction, PostgreSQL's REPEATABLE
READ), so ``load_histories`` sees a consistent picture across its queries. The read-side queries
live in ``registry.storage.queries``, the run and attempt writes in ``registry.storage.run_writes``.

Opening a store checks the database's schema revision (``registry.storage.schema_version``): an
empty database is created at the current revision, one at another revision is refused with
``SchemaMismatch``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert

from registry.errors import DefinitionError, NoDatabase, Problem, ProcessNotFound, RunNotFound
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import (
    ActiveRun,
    ApplyResult,
    AttemptRecord,
    ErrorInfo,
    LeaseState,
    LoggedDecision,
    ProcessHistory,
    Request,
    RequestKind,
    Turn,
)
from registry.storage import leases, retention, run_writes, schema_version, statistics, turn_writes
from registry.storage import queries as q
from registry.storage.codec import json_roundtrip, process_to_document, settings_to_document
from registry.storage.engine import make_engine, write_transaction
from registry.storage.retention import Cutoffs, Purged
from registry.storage.statistics import ProcessStats
from registry.storage.tables import (
    process_state,
    processes,
    registry_revision,
    requests,
    runs,
    settings,
)

log = logging.getLogger(__name__)


class SqlStore:
    """The store on a SQLAlchemy URL (``sqlite:///planner.db``, ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """Open the database at ``url``; an empty one is created unless ``create`` is false,
        when a missing one raises ``NoDatabase`` (read-only commands never create one)."""
        self.url = url
        if not create and schema_version.missing_sqlite_file(url):
            raise NoDatabase(url)
        self._engine = make_engine(url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._local = threading.local()  # the connection of the batch open on this thread
        self._reported: set[str] = set()  # registry problems already logged
        self._fence: tuple[str, int] | None = None  # (instance, fencing number) once leading
        try:
            with self._write() as conn:  # under the write lock: one creator, no half upgrade
                schema_version.prepare(conn, create=create)
        except BaseException:
            self._engine.dispose()
            raise

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
        with write_transaction(self._engine) as conn:
            if self._fence is not None:
                leases.check_fence(conn, *self._fence)
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
        new_settings = json_roundtrip(settings_to_document(registry))
        added: list[str] = []
        changed: list[str] = []
        with self._write() as conn:
            _lock_registry(conn)
            rows = {r.name: r for r in q.stored_processes(conn)}  # broken rows too: apply fixes
            removed = sorted(set(rows) - set(registry.processes))
            if removed:
                conn.execute(delete(processes).where(processes.c.name.in_(removed)))
            for name in sorted(registry.processes):
                definition = registry.processes[name]
                doc = json_roundtrip(process_to_document(definition))
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
                if _sans_source(row.effective_document()) != _sans_source(doc):
                    changed.append(name)
                if _differs(row, doc, definition):
                    conn.execute(
                        update(processes)
                        .where(processes.c.name == name)
                        .values(document=doc, updated_at=now, **_promoted(definition))
                    )
            if q.stored_settings(conn)[0] != new_settings:
                conn.execute(self._upsert(settings, {"id": 1}, {"document": new_settings}))
        return ApplyResult(added=tuple(added), changed=tuple(changed), removed=tuple(removed))

    def load_registry(self) -> tuple[RegistryDef, dict[str, datetime]]:
        with self._read() as conn:
            registry, applied = q.load_registry(conn)
        self._report(registry)
        return registry, applied

    def _report(self, registry: RegistryDef) -> None:
        """Log each invalid row and broken setting once per store, not at every load."""
        seen = self._reported
        current = {*registry.problems, *registry.invalid.values()}
        for problem in sorted(current - seen):
            log.warning("registry in the database: %s", problem)
        self._reported = current

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
            if name in registry.invalid:
                raise DefinitionError([_invalid_row(name, registry.invalid[name])])
            if name not in registry.processes:
                raise ProcessNotFound(name)
            definition = revise(registry, name, changes).processes[name]
            doc = json_roundtrip(process_to_document(definition))
            [row] = q.stored_processes(conn, [name])
            if _differs(row, doc, definition):
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
            run_writes.create_run(
                conn,
                run_id=run_id,
                process=process,
                scheduled=scheduled,
                queued=queued,
                params=params,
                request_id=request_id,
            )

    def retry_run(self, run_id: str, *, attempt: int, queued: datetime) -> None:
        with self._write() as conn:
            run_writes.retry_run(conn, run_id, attempt=attempt, queued=queued)

    def attempt_started(self, run_id: str, attempt: int, *, start: datetime, worker: str) -> None:
        with self._write() as conn:
            run_writes.attempt_started(conn, run_id, attempt, start=start, worker=worker)

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
        with self._write() as conn:
            run_writes.finish_attempt(
                conn,
                run_id,
                attempt,
                status=status,
                end=end,
                start=start,
                worker=worker,
                error=error,
                result=result,
                retry_at=retry_at,
            )

    def cancel_retry(self, run_id: str, *, at: datetime) -> None:
        with self._write() as conn:
            run_writes.cancel_retry(conn, run_id, at=at)

    def pending_runs(self) -> list[tuple[str, int]]:
        query = select(runs.c.run_id, runs.c.attempt).where(
            runs.c.status == RunStatus.PENDING.value
        )
        with self._read() as conn:
            return [(row.run_id, int(row.attempt)) for row in conn.execute(query)]

    def record_turn(self, turn: Turn) -> None:
        with self._write() as conn:
            turn_writes.record_turn(conn, turn)
            for process, state in turn.states.items():
                value = json_roundtrip(state)
                conn.execute(self._upsert(process_state, {"process": process}, {"state": value}))

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

    def load_states(self, processes: Sequence[str] | None = None) -> dict[str, Any]:
        if processes is None:
            every = select(process_state.c.process, process_state.c.state)
            with self._read() as conn:
                return {row.process: row.state for row in conn.execute(every)}
        found: dict[str, Any] = dict.fromkeys(processes)
        names = list(found)
        with self._read() as conn:
            for i in range(0, len(names), 500):
                query = select(process_state.c.process, process_state.c.state).where(
                    process_state.c.process.in_(names[i : i + 500])
                )
                found.update({row.process: row.state for row in conn.execute(query)})
        return found

    def save_state(self, process: str, state: Any) -> None:
        value = json_roundtrip(state)
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
            "params": json_roundtrip(dict(params or {})),
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

    # -- statistics and retention ---------------------------------------------------------------

    def stats(self, *, since: datetime, process: str | None = None) -> list[ProcessStats]:
        with self._read() as conn:
            return statistics.process_stats(conn, since=since, process=process)

    def purge(
        self, cutoffs: Cutoffs, *, counted: Collection[str] = (), dry_run: bool = False
    ) -> Purged:
        if dry_run:
            with self._read() as conn:
                return retention.purgeable(conn, cutoffs, counted=counted)
        done = Purged()
        while True:  # one short transaction per batch: the planner's own writes go in between
            with self._write() as conn:
                step = retention.purge_batch(conn, cutoffs, counted=counted)
            done += step
            if step.total == 0:
                return done

    # -- leadership -----------------------------------------------------------------------------

    def acquire_lease(self, instance: str, *, now: datetime, timeout: timedelta) -> int | None:
        """Take the lease if free or expired; the fencing number, or None if another holds it.

        From then on every write of this store checks that fencing number (``LeaseLost``)."""
        with write_transaction(self._engine) as conn:
            fence = leases.try_acquire(conn, instance, now=now, timeout=timeout)
        if fence is not None:
            self._fence = (instance, fence)
        return fence

    def renew_lease(self, *, now: datetime, timeout: timedelta) -> None:
        """Keep the lease (``LeaseLost`` if another planner took it)."""
        assert self._fence is not None, "renew_lease before acquire_lease"
        with write_transaction(self._engine) as conn:
            leases.renew(conn, *self._fence, now=now, timeout=timeout)

    def release_lease(self, *, now: datetime) -> None:
        """Give the lease up; this store's writes are no longer fenced."""
        if self._fence is None:
            return
        with write_transaction(self._engine) as conn:
            leases.release(conn, *self._fence, now=now)
        self._fence = None

    def planner_seen(self, instance: str, *, host: str, pid: int, role: str, now: datetime) -> None:
        """Record a planner process as leader, standby or stopped (not fenced: a standby too)."""
        with write_transaction(self._engine) as conn:
            leases.seen(conn, instance, host=host, pid=pid, role=role, now=now)

    def lease_state(self) -> LeaseState:
        with self._read() as conn:
            return leases.state(conn)


# -- helpers ------------------------------------------------------------------------------------


def _promoted(definition: ProcessDef) -> dict[str, Any]:
    return {key: getattr(definition, key) for key in q.PROMOTED}


def _differs(row: q.StoredProcess, doc: Mapping[str, Any], definition: ProcessDef) -> bool:
    """Whether the row must be written to hold ``doc`` and ``definition``'s promoted columns
    (compared by type too: SQL may have put the text '1' where 1 belongs)."""
    promoted = _promoted(definition)
    return row.document != doc or any(
        type(row.promoted[k]) is not type(v) or row.promoted[k] != v for k, v in promoted.items()
    )


def _invalid_row(name: str, message: str) -> Problem:
    return Problem(
        file="the database",
        line=None,
        process=None,
        message=f"{message}; correct its row, or `planner apply` a file that defines it",
    )


def _sans_source(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "source"}


def _lock_registry(conn: Connection) -> None:
    """Serialise registry writers (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    conn.execute(
        select(registry_revision.c.revision).where(registry_revision.c.id == 1).with_for_update()
    )
