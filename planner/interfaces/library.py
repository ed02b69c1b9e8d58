"""The Python API: define and apply processes from code, trigger them, read their history.

For those who would rather not write YAML::

    from planner import Database, Process, Registry

    registry = Registry(timezone="Europe/Madrid", slots=4, pools={"warehouse": 2})
    registry.add(
        Process("extract", run="workflows.jobs.etl:extract", cron="0 3 * * *", priority=100),
        Process("report", run="workflows.jobs.etl:report", ancestors=["extract"]),
    )
    registry.apply("sqlite:///planner.db")      # validated like a YAML file, applied atomically

    with Database("sqlite:///planner.db") as db:
        db.trigger("report", params={"day": "2026-12-01"})
        for attempt in db.history("report", limit=10):
            print(attempt.run_id, attempt.status)

A ``Process`` takes the keys of a YAML process as keyword arguments; values may be what YAML
would hold (``"15m"``, ``"03:00"``) or their Python types (``timedelta``, ``time``,
``datetime``). ``Registry.validate`` and ``Registry.apply`` run the very rules ``planner
validate``/``apply`` run — every problem reported at once, naming the source line where the
``Process`` was built — and ``apply`` changes the database in one transaction or not at all.
As with ``planner apply``, the database's registry becomes exactly these processes.

``Database`` wraps the operations of the command line (``planner.interfaces.operations``):
each returns an ``Outcome`` with the message ``planner`` would print, and raises the errors of
``registry.errors`` (``ProcessNotFound``, ``RunNotFound``, ``Conflict``, ``InvalidRequest``, …).
Times are read as the command line reads them: ``trigger(at=...)`` takes an aware datetime, a
naive one or ISO-8601 text, a naive time being in the registry's timezone.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from planner.core.schedule import zone
from planner.interfaces import operations
from registry.definitions.loader import load_documents
from registry.definitions.yaml_source import Where
from registry.errors import InvalidRequest
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.records import ApplyResult, AttemptRecord, RunRecord
from registry.storage.statistics import ProcessStats
from registry.storage.store import Store, open_store

__all__ = ["Database", "Process", "Registry"]


def _plain(value: Any) -> Any:
    """A Python value as YAML would have given it to the loader."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _caller() -> tuple[str, int]:
    """The file and line of the code that called into this module."""
    # walk the frames themselves: ``inspect.stack()`` reads source lines for every frame, a
    # cost paid per ``Process`` (thousands of them when a registry is built in a loop)
    here = os.path.abspath(__file__)
    frame = inspect.currentframe()
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) != here:
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return "<python>", 0  # pragma: no cover - there is always a caller


class Process:
    """One process: its name and the YAML keys of its definition as keyword arguments."""

    def __init__(self, name: str, **fields: Any) -> None:
        self.name = name
        self.fields = {key: _plain(value) for key, value in fields.items()}
        self.file, self.line = _caller()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"Process({self.name!r}{', ' if fields else ''}{fields})"


class Registry:
    """Settings and processes built in code; validated and applied like YAML files."""

    def __init__(self, *processes: Process, **settings: Any) -> None:
        self.settings = {key: _plain(value) for key, value in settings.items()}
        self.file, self.line = _caller()
        self.processes: list[Process] = []
        self.add(*processes)

    def add(self, *processes: Process) -> Registry:
        self.processes.extend(processes)
        return self

    def validate(self) -> RegistryDef:
        """The validated registry; ``DefinitionError`` lists every problem, each naming the
        file and line where the ``Process`` (or the ``Registry``) was built. Each process is
        read as a document of its own, so a name given twice is a duplicate naming both."""
        documents: list[tuple[Where, Any]] = [
            (Where(self.file, lines={(): self.line}, fallback=self.line), dict(self.settings))
        ]
        for p in self.processes:
            where = Where(p.file, lines={("processes", p.name): p.line}, fallback=p.line)
            documents.append((where, {"processes": {p.name: dict(p.fields)}}))
        return load_documents(documents)

    def apply(self, url: str | None = None) -> ApplyResult:
        """Validate, then make the database's registry exactly this one, atomically (``url``:
        else ``PLANNER_DB``, else ``planner.db``); what was added, changed and removed."""
        registry = self.validate()
        store = open_store(url)
        try:
            return store.apply(registry, now=datetime.now(UTC))
        finally:
            store.close()


class Database:
    """A planner's database: the command line's operations and reads, from Python."""

    def __init__(self, url: str | None = None) -> None:
        self.store: Store = open_store(url, create=False)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    # -- operations -----------------------------------------------------------------------------

    def trigger(
        self,
        process: str,
        *,
        params: Mapping[str, Any] | None = None,
        force: bool = False,
        at: datetime | str | None = None,
    ) -> operations.Outcome:
        """Request an extra run of ``process`` now, or from ``at`` on: a datetime or ISO-8601
        text (``"2026-12-01T06:00"``), naive ones in the registry's timezone as with ``planner
        trigger --at``; ``InvalidRequest`` for anything else."""
        when = None if at is None else self._time(at)
        return operations.trigger(
            self.store, process, params=params or {}, force=force, now=_now(), at=when
        )

    def _time(self, value: datetime | str) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise InvalidRequest(
                    f"at: {value!r} is not an ISO-8601 time like 2026-03-02T06:00"
                ) from None
        if not isinstance(value, datetime):
            raise InvalidRequest(
                f"at: a datetime or ISO-8601 text, not {type(value).__name__} {value!r}"
            )
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone(self.registry().timezone))
        return value.astimezone(UTC)

    def cancel(self, run_id: str) -> operations.Outcome:
        return operations.cancel(self.store, run_id, now=_now())

    def retry(self, run_id: str) -> operations.Outcome:
        return operations.retry(self.store, run_id, now=_now())

    def hold(self, process: str) -> operations.Outcome:
        return operations.hold(self.store, process)

    def release(self, process: str) -> operations.Outcome:
        return operations.release(self.store, process)

    def reset(self, process: str) -> operations.Outcome:
        return operations.reset(self.store, process, now=_now())

    def set(self, process: str, **changes: Any) -> ProcessDef:
        """Change fields of ``process`` (validated like YAML); its new definition."""
        plain = {key: _plain(value) for key, value in changes.items()}
        return operations.set_fields(self.store, process, plain, as_text=False)

    # -- reads ----------------------------------------------------------------------------------

    def registry(self) -> RegistryDef:
        return self.store.load_registry()[0]

    def history(
        self,
        process: str | None = None,
        *,
        since: datetime | None = None,
        status: RunStatus | str | None = None,
        limit: int | None = 50,
    ) -> list[AttemptRecord]:
        """Attempts, newest first; with ``status``, the runs in that status (their final one,
        once ended) by their latest attempt, as ``planner history --status`` lists them:
        ``"failed"`` is every run that ended without succeeding, the dead letters for
        ``retry``."""
        if status is None:
            return self.store.history(process, since=since, limit=limit)
        wanted = RunStatus(status)
        statuses = operations.DEAD_LETTERS if wanted is RunStatus.FAILED else {wanted}
        return self.store.runs_in_status(statuses, process, since=since, limit=limit)

    def run(self, run_id: str) -> RunRecord:
        return self.store.run(run_id)

    def stats(
        self, process: str | None = None, *, since: datetime | None = None
    ) -> list[ProcessStats]:
        """Per-process figures over the runs created since ``since`` (default: 7 days)."""
        start = since if since is not None else _now() - timedelta(days=7)
        return self.store.stats(since=start, process=process)


def _now() -> datetime:
    return datetime.now(UTC)
