"""Retention: deleting old records without forgetting what readiness needs.

Three kinds of records age out, each with its own cutoff (the registry's ``retention``, or
``planner purge --older-than``):

- ``runs``: ended runs with their attempts, and handled requests, older than the cutoff;
- ``logs``: the captured log of attempts that ended before the cutoff (the attempt stays);
- ``decisions``: decision-log rows older than the cutoff.

What the planning core reads from history (``queries.load_histories``) is never purged, however
old — per process:

- its latest run (by creation and by sequence number): the last fire time, the last start (for
  ``refresh_window`` and for its descendants' ancestor freshness), and the next run number;
- its latest ended run (a single process whose last run failed waits for ``reset``);
- its latest successful run (its descendants' ancestors rule), and the ``DURATIONS_KEPT`` most
  recent successes, whose durations estimate the next ones (ranking, reservations);
- every successful run of a process that has ``max_runs`` (the successes are counted);
- any run that has not ended.

Work is done in batches of at most ``batch`` rows per kind and call, so each transaction stays
short: the running planner calls ``purge_batch`` off its loop until a call deletes nothing.
``purgeable`` counts the same records without deleting anything (``--dry-run``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select, tuple_, update

from registry.lifecycle import TERMINAL, RunStatus
from registry.model import RegistryDef
from registry.storage.tables import attempts, decisions, requests, runs

__all__ = [
    "DURATIONS_KEPT",
    "Cutoffs",
    "Purged",
    "counted",
    "cutoffs",
    "protected",
    "purge_batch",
    "purgeable",
]

#: successful runs kept per process for duration estimates (as ``load_histories`` reads them)
DURATIONS_KEPT = 20
_TERMINAL = tuple(s.value for s in TERMINAL)
_SUCCEEDED = RunStatus.SUCCEEDED.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Cutoffs:
    """Records older than these times may go; ``None`` keeps that kind for ever."""

    runs: datetime | None = None
    logs: datetime | None = None
    decisions: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Purged:
    """How many records a purge removed (or, dry, would remove)."""

    runs: int = 0
    attempts: int = 0
    requests: int = 0
    logs: int = 0
    decisions: int = 0

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


def cutoffs(registry: RegistryDef, now: datetime, older_than: timedelta | None = None) -> Cutoffs:
    """The cutoffs at ``now``: ``older_than`` for every kind, else the registry's ``retention``."""
    if older_than is not None:
        return Cutoffs(runs=now - older_than, logs=now - older_than, decisions=now - older_than)
    kept = registry.retention
    return Cutoffs(
        runs=None if kept.runs is None else now - kept.runs,
        logs=None if kept.logs is None else now - kept.logs,
        decisions=None if kept.decisions is None else now - kept.decisions,
    )


def counted(registry: RegistryDef) -> frozenset[str]:
    """The processes whose successes count (``max_runs``): none of their successes may go."""
    return frozenset(p.name for p in registry.processes.values() if p.max_runs is not None)


def _protected(conn: Connection) -> set[str]:
    """The run ids readiness still reads (see the module docstring), a few per process."""
    keep: set[str] = set()
    orders = (
        (None, (runs.c.created.desc(), runs.c.seq.desc(), runs.c.run_id.desc()), 1),
        (None, (runs.c.seq.desc(),), 1),
        (runs.c.status.in_(_TERMINAL), (runs.c.ended.desc(), runs.c.created.desc()), 1),
        (runs.c.status == _SUCCEEDED, (runs.c.ended.desc(),), DURATIONS_KEPT),
    )
    for where, order, kept in orders:
        ranked = select(
            runs.c.run_id,
            func.row_number().over(partition_by=runs.c.process, order_by=order).label("rn"),
        )
        if where is not None:
            ranked = ranked.where(where)
        sub = ranked.subquery()
        keep.update(r.run_id for r in conn.execute(select(sub.c.run_id).where(sub.c.rn <= kept)))
    return keep


def _old_runs(
    conn: Connection,
    before: datetime,
    counted: Collection[str],
    protected: Collection[str],
    limit: int | None = None,
) -> Iterator[str]:
    """Ended runs older than ``before`` that may go, oldest first (``limit``: of the first
    ``limit`` old runs, protected ones included)."""
    query = (
        select(runs.c.run_id, runs.c.process, runs.c.status)
        .where(runs.c.status.in_(_TERMINAL), runs.c.ended.is_not(None), runs.c.ended < before)
        .order_by(runs.c.ended, runs.c.run_id)
    )
    if limit is not None:
        query = query.limit(limit)
    for row in conn.execute(query):
        if row.run_id in protected or (row.status == _SUCCEEDED and row.process in counted):
            continue
        yield row.run_id


def _old_logs(conn: Connection, before: datetime, limit: int | None) -> list[tuple[str, int]]:
    query = (
        select(attempts.c.run_id, attempts.c.attempt)
        .where(attempts.c.log.is_not(None), attempts.c.end.is_not(None), attempts.c.end < before)
        .order_by(attempts.c.end)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(r.run_id, int(r.attempt)) for r in conn.execute(query)]


def _old_decisions(conn: Connection, before: datetime, limit: int | None) -> list[int]:
    query = select(decisions.c.id).where(decisions.c.at < before).order_by(decisions.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [int(r.id) for r in conn.execute(query)]


def _old_requests(conn: Connection, before: datetime, limit: int | None) -> list[int]:
    query = (
        select(requests.c.id)
        .where(requests.c.handled.is_not(None), requests.c.handled < before)
        .order_by(requests.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [int(r.id) for r in conn.execute(query)]


def purgeable(conn: Connection, cutoffs: Cutoffs, *, counted: Collection[str] = ()) -> Purged:
    """What ``purge_batch`` would remove in all, deleting nothing. ``counted``: the processes
    whose successes are counted (``max_runs``)."""
    found = Purged()
    if cutoffs.runs is not None:
        ids = list(_old_runs(conn, cutoffs.runs, counted, _protected(conn)))
        n_attempts = 0
        for chunk in _chunks(ids, 500):
            n_attempts += int(
                conn.execute(
                    select(func.count()).select_from(attempts).where(attempts.c.run_id.in_(chunk))
                ).scalar_one()
            )
        found += Purged(
            runs=len(ids),
            attempts=n_attempts,
            requests=len(_old_requests(conn, cutoffs.runs, None)),
        )
    if cutoffs.logs is not None:
        found += Purged(logs=len(_old_logs(conn, cutoffs.logs, None)))
    if cutoffs.decisions is not None:
        found += Purged(decisions=len(_old_decisions(conn, cutoffs.decisions, None)))
    return found


def protected(conn: Connection) -> frozenset[str]:
    """The runs readiness reads (see the module docstring): computed once per purge, since a
    run that becomes the latest meanwhile is not old."""
    return frozenset(_protected(conn))


def purge_batch(
    conn: Connection,
    cutoffs: Cutoffs,
    *,
    counted: Collection[str] = (),
    batch: int = 500,
    kept: Collection[str] | None = None,
) -> Purged:
    """Remove at most ``batch`` records of each kind; what was removed. Call again (in a new
    transaction) until it removes nothing. ``kept``: ``protected(conn)``, if already known."""
    done = Purged()
    if cutoffs.runs is not None:
        ids: list[str] = []
        keep = _protected(conn) if kept is None else kept
        # the oldest ``batch`` that may go are among the oldest ``batch + kept`` old runs (a
        # counted process's successes aside: those are skipped, not fetched less)
        fetched = None if counted else batch + len(keep)
        for run_id in _old_runs(conn, cutoffs.runs, counted, keep, fetched):
            ids.append(run_id)
            if len(ids) >= batch:
                break
        gone_attempts = 0
        if ids:
            gone_attempts = conn.execute(
                delete(attempts).where(attempts.c.run_id.in_(ids))
            ).rowcount
            conn.execute(delete(runs).where(runs.c.run_id.in_(ids)))
        old_requests = _old_requests(conn, cutoffs.runs, batch)
        if old_requests:
            conn.execute(delete(requests).where(requests.c.id.in_(old_requests)))
        done += Purged(runs=len(ids), attempts=gone_attempts, requests=len(old_requests))
    if cutoffs.logs is not None:
        keys = _old_logs(conn, cutoffs.logs, batch)
        cleared = 0
        if keys:
            key = tuple_(attempts.c.run_id, attempts.c.attempt)
            cleared = conn.execute(update(attempts).where(key.in_(keys)).values(log=None)).rowcount
        done += Purged(logs=cleared)
    if cutoffs.decisions is not None:
        old = _old_decisions(conn, cutoffs.decisions, batch)
        removed = 0
        if old:
            removed = conn.execute(delete(decisions).where(decisions.c.id.in_(old))).rowcount
        done += Purged(decisions=removed)
    return done


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
