"""``SqlStore``: the ``Store`` contract on SQLAlchemy Core (SQLite, PostgreSQL).

Theory of operation. Every public method is one transaction that commits before it returns, so a
planner that crashes afterwards loses nothing. Writes open with ``_write()``:

- SQLite (several processes share one file: a running planner and CLI commands) runs in WAL mode,
  so readers never block the writer; each write transaction starts with ``BEGIN IMMEDIATE`` so it
  takes the write lock up front (``registry.storage.engine``).
- PostgreSQL runs at READ COMMITTED; writers lock the rows they check (``SELECT ... FOR UPDATE``):
  the run for status changes, the registry revision row for registry changes, so two writers
  never both pass the same lifecycle check.

Reads use ``_read()`` (both in ``registry.storage.sql_base``): one snapshot (SQLite's deferred
transaction, PostgreSQL's REPEATABLE READ), so ``load_histories`` sees a consistent picture
across its queries. The read-side queries
live in ``registry.storage.queries``, the run and attempt writes in ``registry.storage.run_writes``.

Loading the registry validates its rows only when they changed since a writer last validated
them: ``apply`` and ``update_processes`` keep the result, bound to the registry revision they
leave, in their transaction (``registry.storage.snapshot``); ``load_registry`` takes it while the
revision is still that one.

Opening a store checks the database's schema revision (``registry.storage.schema_version``): an
empty database is created at the current revision, one at another revision is refused with
``SchemaMismatch``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from registry.definitions.diff import Change, diff
from registry.errors import DefinitionError, Problem, ProcessNotFound, RunNotFound
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import (
    ActiveRun,
    ApplyResult,
    AttemptRecord,
    ErrorInfo,
    LeaseState,
    ProcessHistory,
    RunRecord,
    Turn,
)
from registry.storage import digest as registry_digest
from registry.storage import leases, run_writes, snapshot, turn_writes
from registry.storage import queries as q
from registry.storage.codec import json_roundtrip, process_to_document, settings_to_document
from registry.storage.engine import write_transaction
from registry.storage.sql_records import OperatorRecords
from registry.storage.tables import (
    processes,
    registry_revision,
    runs,
    settings,
)

log = logging.getLogger(__name__)


class SqlStore(OperatorRecords):
    """The store on a SQLAlchemy URL (``sqlite:///planner.db``, ``postgresql+psycopg://...``).

    Opening and transactions are ``SqlBase``'s (``registry.storage.sql_base``); saved states,
    requests, the decision log, statistics and retention ``OperatorRecords``'
    (``registry.storage.sql_records``); the registry, runs and the lease are here."""

    # -- registry -----------------------------------------------------------------------------

    def apply(
        self, registry: RegistryDef, *, now: datetime, digest: str | None = None
    ) -> ApplyResult:
        new_settings = json_roundtrip(settings_to_document(registry))
        added: list[str] = []
        changed: list[str] = []
        new_rows: list[dict[str, Any]] = []  # inserted at once (executemany), not row by row
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
                    new_rows.append(
                        dict(
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
            if new_rows:
                conn.execute(insert(processes), new_rows)
            stored, unreadable = q.stored_settings(conn)
            settings_changed: tuple[Change, ...] = ()
            if stored != new_settings:
                conn.execute(self._upsert(settings, {"id": 1}, {"document": new_settings}))
                if stored != {} or unreadable is not None:  # {}: none yet, the first apply
                    settings_changed = _settings_changes(unreadable or stored, registry)
            if digest is not None:
                registry_digest.record(conn, digest, now=now)
            _keep_snapshot(conn)
        return ApplyResult(
            added=tuple(added),
            changed=tuple(changed),
            removed=tuple(removed),
            settings=settings_changed,
        )

    def load_registry(self, *, refresh: bool = False) -> snapshot.Loaded:
        """The snapshot if the registry has not changed since a writer stored it, else the rows
        validated in full; with ``refresh`` (the live planner's reload), rows validated in full are
        then kept as the snapshot, in a short write transaction of their own (fenced)."""
        with self._read() as conn:
            revision, loaded = snapshot.read(conn)
            validated = loaded is None
            if loaded is None:
                loaded = q.load_registry(conn)
        if refresh and validated:
            with self._write() as conn:
                snapshot.write(conn, loaded, revision=revision)
        self._report(loaded[0])
        return loaded

    def _report(self, registry: RegistryDef) -> None:
        """Log each invalid row and broken setting once per store, not at every load."""
        seen = self._reported
        current = {*registry.problems, *registry.invalid.values()}
        for problem in sorted(current - seen):
            log.warning("registry in the database: %s", problem)
        self._reported = current

    def unchanged_since_apply(self, digest: str) -> bool:
        with self._read() as conn:
            return registry_digest.unchanged(conn, digest)

    def registry_revision(self) -> int:
        with self._read() as conn:
            value = conn.execute(
                select(registry_revision.c.revision).where(registry_revision.c.id == 1)
            ).scalar_one()
        return int(value)

    def update_process(
        self, name: str, changes: Mapping[str, Any], *, as_text: bool = True
    ) -> ProcessDef:
        return self.update_processes([name], changes, as_text=as_text)[0]

    def update_processes(
        self, names: Sequence[str], changes: Mapping[str, Any], *, as_text: bool = True
    ) -> list[ProcessDef]:
        from registry.definitions.loader import (
            revise,  # the loader imports YAML machinery; load it lazily
        )

        definitions = []
        with self._write() as conn:
            _lock_registry(conn)
            before, loaded = snapshot.read(conn)
            if loaded is None:
                loaded = q.load_registry(conn)
            registry = loaded[0]
            for name in names:
                if name in registry.invalid:
                    raise DefinitionError([_invalid_row(name, registry.invalid[name])])
                if name not in registry.processes:
                    raise ProcessNotFound(name)
                registry = revise(registry, name, changes, as_text=as_text)
                definitions.append(registry.processes[name])
            rows = {row.name: row for row in q.stored_processes(conn, list(names))}
            for definition in definitions:
                doc = json_roundtrip(process_to_document(definition))
                if _differs(rows[definition.name], doc, definition):
                    conn.execute(
                        update(processes)
                        .where(processes.c.name == definition.name)
                        .values(document=doc, updated_at=datetime.now(UTC), **_promoted(definition))
                    )
            _keep_snapshot(conn, before, loaded)
        return definitions

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

    def write_partial_logs(self, logs: Mapping[tuple[str, int], str]) -> None:
        with self._write() as conn:
            run_writes.write_partial_logs(conn, logs)

    def pending_runs(self) -> list[tuple[str, int]]:
        query = select(runs.c.run_id, runs.c.attempt).where(
            runs.c.status == RunStatus.PENDING.value
        )
        with self._read() as conn:
            return [(row.run_id, int(row.attempt)) for row in conn.execute(query)]

    def record_turn(self, turn: Turn) -> None:
        with self._write() as conn:
            turn_writes.record_turn(conn, turn)

    def active_runs(self) -> list[ActiveRun]:
        with self._read() as conn:
            return q.active_runs(conn)

    def run(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
        if row is None:
            raise RunNotFound(run_id)
        return RunRecord(
            run_id=row.run_id,
            process=row.process,
            status=RunStatus(row.status),
            attempt=int(row.attempt),
            scheduled=row.scheduled,
            params=dict(row.params or {}),
            created=row.created,
            ended=row.ended,
            request_id=None if row.request_id is None else int(row.request_id),
        )

    def run_process(self, run_id: str) -> str:
        with self._read() as conn:
            process = conn.execute(
                select(runs.c.process).where(runs.c.run_id == run_id)
            ).scalar_one_or_none()
        if process is None:
            raise RunNotFound(run_id)
        return str(process)

    def history(
        self,
        process: str | None = None,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        status: RunStatus | None = None,
    ) -> list[AttemptRecord]:
        with self._read() as conn:
            return q.history(conn, process, since, limit, status)

    def attempt_log(self, run_id: str, attempt: int | None = None) -> AttemptRecord:
        with self._read() as conn:
            found = q.attempt_log(conn, run_id, attempt)
        if found is None:
            if attempt is None:
                raise RunNotFound(run_id)
            self.run(run_id)  # RunNotFound for an unknown run
            raise RunNotFound(f"{run_id} attempt {attempt}")
        return found

    def last_results(self, processes: Sequence[str]) -> dict[str, Any]:
        if not processes:
            return {}
        with self._read() as conn:
            return q.last_results(conn, processes)

    def load_histories(self, *, durations_kept: int = 20) -> dict[str, ProcessHistory]:
        with self._read() as conn:
            return q.load_histories(conn, durations_kept)

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


def _settings_changes(stored: Any, registry: RegistryDef) -> tuple[Change, ...]:
    """The settings ``registry`` changes from the ``stored`` document (or why it is unreadable),
    as ``planner apply --dry-run`` compares them (a broken stored setting reads as its
    default)."""
    from registry.definitions.stored import validate_stored  # pydantic: only when they change

    before = validate_stored(stored, {})
    return diff(before, replace(registry, processes={}, invalid={})).settings


def _invalid_row(name: str, message: str) -> Problem:
    return Problem(
        file="the database",
        line=None,
        process=None,
        message=f"{message}; correct its row, or `planner apply` a file that defines it",
    )


def _sans_source(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "source"}


def _keep_snapshot(
    conn: Connection, before: int | None = None, loaded: snapshot.Loaded | None = None
) -> None:
    """After a write of the registry, in its transaction: keep what the rows now give as the
    snapshot, validating them again unless they are still the ones ``loaded`` at ``before``."""
    revision = snapshot.current_revision(conn)  # after the writes: the triggers have counted them
    if snapshot.fresh(conn, revision):
        return
    if loaded is None or revision != before:
        loaded = q.load_registry(conn)
    snapshot.write(conn, loaded, revision=revision)


def _lock_registry(conn: Connection) -> None:
    """Serialise registry writers (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    conn.execute(
        select(registry_revision.c.revision).where(registry_revision.c.id == 1).with_for_update()
    )
