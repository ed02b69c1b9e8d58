"""Per-process run statistics (``planner stats``, ``GET /api/v1/stats``, the page).

For each process with runs created at or after ``since``:

- ``runs``: those runs, whatever their status (in flight ones included);
- ``succeeded`` / ``failed`` / ``timed_out`` / ``cancelled``: those that ended so;
- ``success_rate``: succeeded over the runs that ended (``None`` while none has);
- ``duration_p50_s`` / ``duration_p90_s``: of the successful attempts of those runs, on the
  worker (start to end);
- ``lateness_p90_s``: how long after it was due each run's first attempt began on a worker
  (never negative: a run started early by a trigger counts 0). A run is due at its scheduled
  time, or, if it carries a request, when that request was made (or was due, for ``trigger
  --at``) if that is later: a backfill's or a retry's run keeps an old fire as its
  ``scheduled`` (``ctx.scheduled``), but nobody waited for it before it was asked for. A run
  whose request was purged is left out of lateness (when it was asked is no longer known).

Counts come from one grouped query; the percentiles read two numbers per run, so a window of
a million runs costs a few seconds, not memory beyond those numbers. Percentiles are
nearest-rank (the value at rank ⌈p·n⌉ of the sorted sample), so each is a real observation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from registry.lifecycle import RunStatus
from registry.storage.tables import attempts, requests, runs

__all__ = ["ProcessStats", "percentile", "process_stats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStats:
    """The figures of one process over a window (the SPEC's ``stats`` entry)."""

    process: str
    runs: int
    succeeded: int
    failed: int
    timed_out: int
    cancelled: int
    duration_p50_s: float | None
    duration_p90_s: float | None
    lateness_p90_s: float | None

    @property
    def success_rate(self) -> float | None:
        ended = self.succeeded + self.failed + self.timed_out + self.cancelled
        return None if ended == 0 else self.succeeded / ended

    def document(self) -> dict[str, Any]:
        """The JSON entry, keys in the SPEC's order."""
        rate = self.success_rate
        return {
            "process": self.process,
            "runs": self.runs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "timed_out": self.timed_out,
            "cancelled": self.cancelled,
            "success_rate": None if rate is None else round(rate, 4),
            "duration_p50_s": _rounded(self.duration_p50_s),
            "duration_p90_s": _rounded(self.duration_p90_s),
            "lateness_p90_s": _rounded(self.lateness_p90_s),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of ``values`` (0 < p ≤ 1); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


def process_stats(
    conn: Connection, *, since: datetime, process: str | None = None
) -> list[ProcessStats]:
    """The statistics of every process (or of ``process``) over runs created since ``since``,
    sorted by process name."""
    window = runs.c.created >= since
    if process is not None:
        window = and_(window, runs.c.process == process)

    counts: dict[str, dict[str, int]] = {}
    grouped = (
        select(runs.c.process, runs.c.status, func.count().label("n"))
        .where(window)
        .group_by(runs.c.process, runs.c.status)
    )
    for row in conn.execute(grouped):
        counts.setdefault(row.process, {})[row.status] = int(row.n)

    durations: dict[str, list[float]] = {}
    successful = (
        select(attempts.c.process, attempts.c.duration_s, attempts.c.start, attempts.c.end)
        .join(runs, runs.c.run_id == attempts.c.run_id)
        .where(window, attempts.c.status == RunStatus.SUCCEEDED.value)
    )
    for row in conn.execute(successful):
        seconds = row.duration_s
        if seconds is None and row.start is not None and row.end is not None:
            seconds = (row.end - row.start).total_seconds()
        if seconds is not None:
            durations.setdefault(row.process, []).append(float(seconds))

    lateness: dict[str, list[float]] = {}
    first = (
        select(
            runs.c.process,
            runs.c.scheduled,
            runs.c.request_id,
            requests.c.created.label("asked"),
            requests.c.due,
            attempts.c.start,
        )
        .join(attempts, and_(attempts.c.run_id == runs.c.run_id, attempts.c.attempt == 1))
        .outerjoin(requests, requests.c.id == runs.c.request_id)
        .where(window, attempts.c.start.is_not(None))
    )
    for row in conn.execute(first):
        due = row.scheduled
        if row.request_id is not None:
            if row.asked is None:  # purged: a backfill's old fire would count as lateness
                continue
            due = max(due, row.due or row.asked)
        late = (row.start - due).total_seconds()
        lateness.setdefault(row.process, []).append(max(0.0, late))

    figures = []
    for name in sorted(counts):
        by_status = counts[name]
        figures.append(
            ProcessStats(
                process=name,
                runs=sum(by_status.values()),
                succeeded=by_status.get(RunStatus.SUCCEEDED.value, 0),
                failed=by_status.get(RunStatus.FAILED.value, 0),
                timed_out=by_status.get(RunStatus.TIMED_OUT.value, 0),
                cancelled=by_status.get(RunStatus.CANCELLED.value, 0),
                duration_p50_s=percentile(durations.get(name, ()), 0.5),
                duration_p90_s=percentile(durations.get(name, ()), 0.9),
                lateness_p90_s=percentile(lateness.get(name, ()), 0.9),
            )
        )
    return figures
