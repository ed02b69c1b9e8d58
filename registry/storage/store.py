"""The store: the one interface through which drivers and commands read and write durable state.

``Store`` is a Protocol; ``registry.storage.sqlstore.SqlStore`` implements it on SQLAlchemy (SQLite
or PostgreSQL). ``open_store(url)`` picks the URL from the argument, ``PLANNER_DB`` or the default
SQLite file ``planner.db`` in the working directory.

Rules every implementation keeps (``tests/test_store_contract.py`` checks them):

- ``apply`` is atomic: all processes and settings change in one transaction, or nothing does.
- Every write commits before the method returns (a crash after it loses nothing).
- The registry revision increases on every change of the registry tables, including direct SQL
  edits of the process table (database triggers bump it), so a running planner can notice them.
- Run status changes follow ``registry.lifecycle.TRANSITIONS``; an illegal one raises
  ``IllegalTransition`` and writes nothing.
- Times are timezone-aware UTC datetimes in and out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

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
    RunRecord,
    Turn,
)
from registry.storage.retention import Cutoffs, Purged
from registry.storage.run_writes import Retry
from registry.storage.statistics import ProcessStats

DEFAULT_URL = "sqlite:///planner.db"


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: explicit argument, else ``PLANNER_DB``, else ``planner.db``.

    An explicit empty URL stays empty (opening it is an error, not a silent ``planner.db``); an
    empty ``PLANNER_DB`` counts as unset, as shells have it."""
    if url is not None:
        return url
    return os.environ.get("PLANNER_DB") or DEFAULT_URL


class Store(Protocol):
    # -- registry -------------------------------------------------------------------------------
    def apply(
        self, registry: RegistryDef, *, now: datetime, digest: str | None = None
    ) -> ApplyResult:
        """Replace the registry atomically; new processes remember ``now`` as first applied.
        Rows that hold what they would be given are not written; the result names what
        changed, settings included. ``digest``: the
        ``registry.storage.digest.files_digest`` of the files ``registry`` comes from, kept in
        the same transaction for ``unchanged_since_apply``."""
        ...

    def unchanged_since_apply(self, digest: str) -> bool:
        """Whether the files of ``digest`` were the last applied, and the registry tables have
        not changed since (then validating and applying them again would change nothing)."""
        ...

    def load_registry(self, *, refresh: bool = False) -> tuple[RegistryDef, dict[str, datetime]]:
        """The registry and, per process, when it was first applied. Unless the registry changed
        since a writer last validated it, that validation's result (``registry.storage.snapshot``)
        rather than the rows validated again. ``refresh``: rows validated again are kept as that
        snapshot (a write, fenced like the others: for the live planner, never a read-only
        command)."""
        ...

    def registry_revision(self) -> int:
        """A number that grows whenever the registry tables change (cheap to call often)."""
        ...

    def update_processes(
        self, names: Sequence[str], changes: Mapping[str, Any], *, as_text: bool = True
    ) -> list[ProcessDef]:
        """``update_process`` of several processes (a template's) in one transaction: all of
        them change, or none does."""
        ...

    def update_process(
        self, name: str, changes: Mapping[str, Any], *, as_text: bool = True
    ) -> ProcessDef:
        """Change fields of one process (hold, release, ``planner set``); validated like YAML.
        Strings are read as YAML text (``"200"`` is 200) unless ``as_text`` is false.

        Raises ``ProcessNotFound`` or ``DefinitionError``; nothing is written on error."""
        ...

    # -- runs -----------------------------------------------------------------------------------
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
        """Record a new run with its first attempt, both ``queued``."""
        ...

    def retry_run(self, run_id: str, *, attempt: int, queued: datetime) -> None:
        """A run waiting in ``retrying`` gets attempt ``attempt``, ``queued`` now."""
        ...

    def attempt_started(self, run_id: str, attempt: int, *, start: datetime, worker: str) -> None:
        """The job began on a worker: attempt and run go ``running``."""
        ...

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
        """Record the attempt's terminal status; with ``retry_at`` the run goes ``retrying``,
        otherwise the run takes the attempt's status. Finishing an already finished attempt
        raises ``IllegalTransition`` (an attempt ends exactly once)."""
        ...

    def cancel_retry(self, run_id: str, *, at: datetime) -> None:
        """A run in ``retrying`` is cancelled before its next attempt."""
        ...

    def load_states(self, processes: Sequence[str] | None = None) -> dict[str, Any]:
        """The saved states of ``processes`` (None for those without one), in one query; of
        every process that has one if None."""
        ...

    def write_partial_logs(self, logs: Mapping[tuple[str, int], str]) -> None:
        """The logs of attempts still running, as far as they came: ``(run id, attempt)`` →
        the text so far (attempts that ended are left as they are)."""
        ...

    def pending_runs(self) -> list[tuple[str, int]]:
        """(run id, attempt) of the runs recorded ``pending`` (chained, not started)."""
        ...

    def record_turn(self, turn: Turn) -> None:
        """Record one turn of the live loop in one transaction (``registry.records.Turn``):
        all of it, checked like the one-run methods above, or nothing."""
        ...

    def active_runs(self) -> list[ActiveRun]:
        """Runs queued, running or retrying."""
        ...

    def run(self, run_id: str) -> RunRecord:
        """The run ``run_id`` (``RunNotFound`` if there is none)."""
        ...

    def run_process(self, run_id: str) -> str:
        """The process of a run; raises ``RunNotFound``."""
        ...

    def history(
        self,
        process: str | None = None,
        *,
        since: datetime | None = None,
        limit: int | None = None,
        status: RunStatus | None = None,
    ) -> list[AttemptRecord]:
        """Attempts, newest first (by queued time), with their run's params and without their
        logs; optionally of one process, since a time, ended in one status (an attempt's: a
        run's final status is ``runs_in_status``'s)."""
        ...

    def runs_in_status(
        self,
        statuses: Collection[RunStatus],
        process: str | None = None,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AttemptRecord]:
        """The runs whose status is one of ``statuses`` — their final one, once they ended: a
        run that failed once and then succeeded on a retry is ``succeeded`` — each by its
        latest attempt, newest first (by its queued time, ``since`` on), as ``history`` gives
        attempts (``history --status failed``: the dead letters)."""
        ...

    def retries(self, run_ids: Collection[str]) -> list[Retry]:
        """The retries (``planner retry``) asked of ``run_ids``, and those that ``run_ids``
        carry out, oldest first."""
        ...

    def add_retry(self, run_id: str, *, at: datetime) -> int:
        """Ask for the finished run ``run_id`` again: a trigger request of its process with its
        params and scheduled time that remembers ``run_id``; the request's id. In one
        transaction with the check: ``Conflict`` if a retry of it waits, is in flight or
        succeeded (nothing is written); ``RunNotFound``."""
        ...

    def attempt_log(self, run_id: str, attempt: int | None = None) -> AttemptRecord:
        """One attempt (default: the latest) with its captured log; ``RunNotFound``."""
        ...

    def last_results(self, processes: Sequence[str]) -> dict[str, Any]:
        """Of ``processes`` (the ancestors some process reads), each that ever succeeded: the
        JSON result of its latest success."""
        ...

    def load_histories(self, *, durations_kept: int = 20) -> dict[str, ProcessHistory]:
        """Per process, the summary the planning core starts from."""
        ...

    # -- per-process saved state and resets -----------------------------------------------------
    def load_state(self, process: str) -> Any:
        """The JSON value a job saved under ``state`` (None if never)."""
        ...

    def save_state(self, process: str, state: Any) -> None: ...

    def reset(self, process: str, *, at: datetime) -> None:
        """Forget the process's successes and failures for readiness (history is kept)."""
        ...

    # -- operator requests ----------------------------------------------------------------------
    def add_request(
        self,
        kind: RequestKind,
        *,
        at: datetime,
        process: str | None = None,
        run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        force: bool = False,
        due: datetime | None = None,
        scheduled: datetime | None = None,
    ) -> int:
        """Record an operator's request made at ``at``; a trigger may be ``due`` later, and a
        backfill's carries the fire time its run stands for (``scheduled``)."""
        ...

    def add_requests(self, requests: Sequence[Request]) -> list[int]:
        """Several requests in one transaction (a backfill's), ids in order; their ``id``
        fields are ignored."""
        ...

    def pending_requests(self) -> list[Request]:
        """Requests not yet handled, oldest first."""
        ...

    def mark_handled(self, request_ids: Sequence[int], *, at: datetime) -> None: ...

    # -- decision log ---------------------------------------------------------------------------
    def log_decisions(self, decisions: Sequence[LoggedDecision]) -> None: ...

    def decisions(self, process: str | None = None, *, limit: int = 50) -> list[LoggedDecision]:
        """Newest first."""
        ...

    # -- statistics and retention ---------------------------------------------------------------
    def stats(self, *, since: datetime, process: str | None = None) -> list[ProcessStats]:
        """Per process, the figures of the runs created since ``since``, sorted by name."""
        ...

    def purge(
        self,
        cutoffs: Cutoffs,
        *,
        counted: Collection[str] = (),
        dry_run: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> Purged:
        """Remove records older than ``cutoffs``, keeping what readiness reads; ``counted``
        names the processes whose successes count (``max_runs``). In batches, one transaction
        each, until none is left or ``stop()`` says so; ``dry_run`` counts them and deletes
        nothing."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Writes inside share one transaction, committed (all or nothing) when the block ends."""
        ...

    # -- leadership (``registry.storage.leases``) ------------------------------------------------
    def acquire_lease(self, instance: str, *, now: datetime, timeout: timedelta) -> int | None:
        """Take the lease if free or expired; its fencing number, or None if another holds it.
        Afterwards every write of this store is fenced: ``LeaseLost`` once another took over."""
        ...

    def renew_lease(self, *, now: datetime, timeout: timedelta) -> None:
        """Keep the lease; ``LeaseLost`` if another planner took it."""
        ...

    def release_lease(self, *, now: datetime) -> None:
        """Give the lease up (a clean stop)."""
        ...

    def planner_seen(self, instance: str, *, host: str, pid: int, role: str, now: datetime) -> None:
        """Record a planner process as ``leader``, ``standby`` or ``stopped``."""
        ...

    def lease_state(self) -> LeaseState:
        """Who holds the lease, and the planners seen."""
        ...

    def close(self) -> None: ...


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open the store at ``url`` / ``PLANNER_DB`` / ``planner.db``: an empty database is created at
    the current schema revision (``create=False``: ``NoDatabase`` instead); one at another revision
    raises ``SchemaMismatch``; a URL we cannot use, ``UnsupportedDatabase``."""
    from registry.storage.sqlstore import SqlStore

    return SqlStore(resolve_url(url), create=create)
