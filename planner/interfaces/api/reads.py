"""The API's reads: status, processes, runs (the ``history`` document), one run, its logs, stats.

Each answer is the command line's JSON document for the same question (``planner status``,
``explain``, ``history``, ``stats`` with ``--format json``), built by the same functions from the
same store calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Query

from planner.interfaces.api.context import ApiContext
from planner.interfaces.api.errors import ApiError, error_responses
from planner.interfaces.api.models import (
    ISO_TIME,
    HistoryDoc,
    LogsDoc,
    ProcessDoc,
    ProcessList,
    RunDoc,
    StatsDoc,
    StatusDoc,
)
from planner.interfaces.dry_run import dry_run_core
from planner.interfaces.operations import DEAD_LETTERS
from planner.interfaces.terminal.documents import (
    attempt_json,
    explanation_json,
    history_json,
    iso,
    planners_json,
    status_json,
    triggers_json,
)
from planner.interfaces.terminal.figures import stats_json
from planner.interfaces.terminal.style import FAILED
from registry.definitions.durations import parse_duration
from registry.errors import ProcessNotFound, RunNotFound
from registry.lifecycle import RunStatus
from registry.model import RegistryDef
from registry.records import AttemptRecord, RunRecord
from registry.storage.codec import process_to_document

__all__ = ["read_routes"]

#: ``planner status`` lists failed attempts of the last day; so does ``/status``
STATUS_WINDOW = timedelta(days=1)
#: ``planner stats`` looks at the last 7 days without ``--since``; so does ``/stats``
STATS_WINDOW = timedelta(days=7)
#: ``/stats`` since ever: from before any run there can be
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: most attempts one ``/runs`` answer lists
MAX_LIMIT = 10_000

_SINCE = (
    "a duration back from now (90, 90s, 15m, 6h, 1d: one unit) or an ISO-8601 date or time"
    " (naive: the registry's timezone)"
)
#: what ``since`` takes, as the OpenAPI document says it; anything else is 400
SINCE_PATTERN = rf"^(?:[0-9]{{1,6}}(?:\.[0-9]{{1,6}})?[dhms]?|{ISO_TIME})$"


def zone_of(registry: RegistryDef) -> tzinfo:
    from planner.core.schedule import zone

    return zone(registry.timezone)


def _since(text: str | None, tz: tzinfo, now: datetime) -> datetime | None:
    """``since`` as a time; ``None`` when it reaches back past any time there is."""
    if text is None:
        return None
    try:
        if text[0] in "012" and "-" in text:
            at = datetime.fromisoformat(text)
            return at if at.tzinfo is not None else at.replace(tzinfo=tz)
        return now - parse_duration(text)
    except OverflowError:  # further back than datetime can go: since ever
        return None
    except ValueError:  # the pattern keeps such text out; as a safeguard
        raise ApiError(400, f"since: {text!r} is not {_SINCE}") from None


def _require(registry: RegistryDef, name: str) -> None:
    if name not in registry.processes and name not in registry.invalid:
        raise ProcessNotFound(name)


def _summary(registry: RegistryDef, name: str) -> dict[str, Any]:
    definition = registry.processes.get(name)
    return {
        "process": name,
        "valid": definition is not None,
        "problem": registry.invalid.get(name),
        "definition": None if definition is None else process_to_document(definition),
    }


def _run_attempts(ctx: ApiContext, run_id: str) -> tuple[RunRecord, list[AttemptRecord]]:
    """The run and its attempts, oldest first, with their logs."""
    if "\x00" in run_id:  # no run id holds one; PostgreSQL would refuse it in a query
        raise RunNotFound(run_id)
    run = ctx.store.run(run_id)
    return run, [ctx.store.attempt_log(run_id, n) for n in range(1, run.attempt + 1)]


def _filtered(
    ctx: ApiContext,
    process: str | None,
    since: datetime | None,
    status: RunStatus | None,
    limit: int,
) -> tuple[list[AttemptRecord], bool]:
    """Up to ``limit`` attempts newest first, and whether there were more. With ``status``, as
    ``planner history --status``: the runs in that status, each by its latest attempt
    (``failed``: the dead letters — failed, timed out or cancelled)."""
    if status is None:
        attempts = ctx.store.history(process, since=since, limit=limit + 1)
    else:
        wanted = DEAD_LETTERS if status is RunStatus.FAILED else {status}
        attempts = ctx.store.runs_in_status(wanted, process, since=since, limit=limit + 1)
    return attempts[:limit], len(attempts) > limit


def read_routes(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["reads"])

    @router.get("/status", response_model=StatusDoc, responses=error_responses(400))
    def status() -> dict[str, Any]:
        """Registry summary, runs in flight, the last day's failures, planners and triggers."""
        store = ctx.store
        registry, _ = store.load_registry()
        tz = zone_of(registry)
        now = ctx.clock()
        failures = [
            a for a in store.history(since=now - STATUS_WINDOW, limit=500) if a.status in FAILED
        ][:20]
        planners = planners_json(store.lease_state(), now, tz)
        planners["triggers"] = triggers_json(store.pending_requests(), tz)
        return status_json(registry, store.active_runs(), failures, tz, planners=planners)

    @router.get("/processes", response_model=ProcessList)
    def processes() -> dict[str, Any]:
        """Every process of the registry, by name; invalid rows say why."""
        registry, _ = ctx.store.load_registry()
        names = sorted({*registry.processes, *registry.invalid})
        return {"processes": [_summary(registry, name) for name in names]}

    @router.get("/processes/{name}", response_model=ProcessDoc, responses=error_responses(404))
    def process(name: str) -> dict[str, Any]:
        """A process's settings, its saved state and why it is or is not running now."""
        store = ctx.store
        registry, applied = store.load_registry()
        _require(registry, name)
        tz = zone_of(registry)
        now = ctx.clock()
        explanation = dry_run_core(store, registry, applied, now, None).explain(name, now)
        doc = _summary(registry, name)
        doc["state"] = store.load_state(name)
        doc["explanation"] = explanation_json(
            explanation, store.decisions(name, limit=10), store.history(name, limit=5), tz
        )
        return doc

    @router.get("/runs", response_model=HistoryDoc, responses=error_responses(400, 404))
    def runs(
        process: Annotated[str | None, Query(description="only this process's runs")] = None,
        status: Annotated[
            RunStatus | None,
            Query(
                description="only runs in this status, by their latest attempt (failed: also "
                "timed out and cancelled, the dead letters)"
            ),
        ] = None,
        since: Annotated[
            str | None, Query(description=f"only since: {_SINCE}", pattern=SINCE_PATTERN)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    ) -> dict[str, Any]:
        """Past attempts, newest first, one entry per attempt: ``planner history``'s document."""
        registry, _ = ctx.store.load_registry()
        tz = zone_of(registry)
        start = _since(since, tz, ctx.clock())
        if process is not None and "\x00" in process:
            raise ProcessNotFound(process)
        attempts, more = _filtered(ctx, process, start, status, limit)
        if process is not None and not attempts:
            _require(registry, process)  # a removed process with history still shows it
        doc = history_json(attempts, tz, more=more)
        return doc

    @router.get("/runs/{run_id}", response_model=RunDoc, responses=error_responses(404))
    def run(run_id: str) -> dict[str, Any]:
        """One run: its status and every attempt, oldest first."""
        registry, _ = ctx.store.load_registry()
        tz = zone_of(registry)
        run, attempts = _run_attempts(ctx, run_id)
        return {
            "run_id": run_id,
            "process": run.process,
            "status": run.status.value,
            "scheduled": iso(run.scheduled, tz),
            "params": dict(run.params),
            "attempts": [attempt_json(a, tz) for a in attempts],
        }

    @router.get("/runs/{run_id}/logs", response_model=LogsDoc, responses=error_responses(400, 404))
    def logs(
        run_id: str,
        attempt: Annotated[int | None, Query(ge=1, description="only this attempt")] = None,
    ) -> dict[str, Any]:
        """The captured log of each attempt of the run (or of one): its Python logging
        records, stdout and stderr, bounded on the worker; while it runs, what was written so
        far."""
        run, attempts = _run_attempts(ctx, run_id)
        chosen = [a for a in attempts if attempt is None or a.attempt == attempt]
        if attempt is not None and not chosen:
            raise RunNotFound(f"{run_id} attempt {attempt}")
        return {
            "run_id": run_id,
            "process": run.process,
            "attempts": [
                {"attempt": a.attempt, "status": a.status.value, "log": a.log} for a in chosen
            ],
        }

    @router.get("/stats", response_model=StatsDoc, responses=error_responses(400, 404))
    def stats(
        process: Annotated[str | None, Query(description="only this process")] = None,
        since: Annotated[
            str | None, Query(description=f"{_SINCE}; default: 7 days", pattern=SINCE_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        """Per process: runs, outcomes, success rate, duration p50/p90, lateness p90."""
        store = ctx.store
        registry, _ = store.load_registry()
        tz = zone_of(registry)
        now = ctx.clock()
        start = now - STATS_WINDOW if since is None else _since(since, tz, now)
        if start is None:  # since ever
            start = EPOCH
        if process is not None and "\x00" in process:
            raise ProcessNotFound(process)
        figures = store.stats(since=start, process=process)
        if process is not None and not figures:
            _require(registry, process)
        return stats_json(figures, start, tz)

    return router
