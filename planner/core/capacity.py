"""Capacity: may a candidate take a slot now — global slots, its pool, worker resources, and the
reservations it must not break?

Pure functions over the core's accounting (the use counters of the runs in flight) so that the
live allocation (``Planner.handle``) and the dry run (``Planner.plan``) apply the same checks; the
dry run passes copies of the counters and consumes them as it goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo

from planner.core.events import CAPACITY_CODES, Code, Reason
from planner.core.readiness import TIME_GATES
from planner.core.reservation import HORIZON, Hold, blocking_hold
from planner.core.state import ProcState, Readiness
from registry.model import RegistryDef


def take(
    pool: str | None,
    resources: Mapping[str, float],
    pool_use: Counter[str],
    resource_use: Counter[str],
) -> None:
    """Count a run's pool place and resources as used."""
    if pool is not None:
        pool_use[pool] += 1
    resource_use.update(resources)


def fits(
    wanted: Mapping[str, float],
    use: Counter[str],
    workers: Sequence[Mapping[str, float]] | None,
) -> bool:
    """Some worker offers every resource wanted, and enough of each is free cluster-wide.

    ``workers`` None means the cluster's resources are unknown (not yet polled): assume they fit."""
    if workers is None:
        return True
    if not any(all(w.get(k, 0.0) >= v for k, v in wanted.items()) for w in workers):
        return False
    totals: Counter[str] = Counter()
    for w in workers:
        totals.update(w)
    return all(totals[k] - use[k] >= v for k, v in wanted.items())


def need_blocker(
    pool: str | None,
    resources: Mapping[str, float],
    *,
    registry: RegistryDef,
    pool_use: Counter[str],
    resource_use: Counter[str],
    workers: Sequence[Mapping[str, float]] | None,
) -> Reason | None:
    """Why nothing that needs ``pool`` and ``resources`` can start now (full pool, no worker
    with the resources free), or None. The same for every candidate with these needs."""
    if pool is not None:
        size = registry.pools.get(pool, 0)
        if pool_use[pool] >= size:
            return Reason(Code.POOL, f"pool {pool!r}: {pool_use[pool]} of {size} in use")
    if resources and not fits(resources, resource_use, workers):
        wanted = ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()))
        return Reason(Code.RESOURCES, f"no worker has {wanted} free")
    return None


def blocker(
    ps: ProcState,
    now: datetime,
    *,
    free: int,
    slots: int,
    registry: RegistryDef,
    tz: tzinfo,
    pool_use: Counter[str],
    resource_use: Counter[str],
    workers: Sequence[Mapping[str, float]] | None,
    holds: list[Hold],
    busy: list[datetime | None],
) -> Reason | None:
    """The capacity reason that keeps candidate ``ps`` from starting now, or None."""
    d = ps.definition
    if free <= 0:
        return Reason(Code.SLOTS, f"all {slots} slots busy")
    if d.pool is not None or d.resources:
        reason = need_blocker(
            d.pool,
            d.resources,
            registry=registry,
            pool_use=pool_use,
            resource_use=resource_use,
            workers=workers,
        )
        if reason is not None:
            return reason
    if holds:
        hold = blocking_hold(
            ps.name,
            ps.estimated_end(now, now),
            now=now,
            slots=slots,
            busy_until=busy,
            holds=holds,
        )
        if hold is not None:
            at = hold.at.astimezone(tz).isoformat(timespec="seconds")
            return Reason(Code.RESERVED, f"slot kept for {hold.process} at {at}")
    return None


def reservation_holds(
    now: datetime,
    reserved: set[str],
    states: Mapping[str, ProcState],
    evaluations: Mapping[str, Readiness] | None,
) -> list[Hold]:
    """Reservations of ``reserve: true`` processes within the horizon, by start time.

    ``evaluations`` (the dry run's) override each process's last evaluation."""
    holds: list[Hold] = []
    for name in reserved:
        ps = states[name]
        r = evaluations[name] if evaluations is not None else ps.readiness
        if r is None or r.opens_at is None:
            continue
        codes = {x.code for x in r.reasons} - CAPACITY_CODES
        if codes and not codes <= TIME_GATES | {Code.ANCESTORS}:
            continue
        if r.opens_at <= now and Code.ANCESTORS in codes:
            continue  # not needed now; it will be when its ancestors succeed
        at = max(r.opens_at, now)
        if at - now > HORIZON:
            continue
        until = ps.estimated_end(at, at) if ps.estimate is not None else None
        holds.append(Hold(process=name, at=at, until=until))
    holds.sort(key=lambda h: (h.at, h.process))
    return holds


def busy_until(
    now: datetime,
    run_index: Mapping[str, str],
    states: Mapping[str, ProcState],
    orphans: Mapping[str, ProcState],
) -> list[datetime | None]:
    """The estimated end of every run in flight (None: unknown)."""
    busy: list[datetime | None] = []
    for run_id, name in run_index.items():
        ps = states.get(name) or orphans[name]
        flight = ps.flights.get(run_id)
        if flight is not None:
            busy.append(ps.estimated_end(flight.started, now))
    return busy
