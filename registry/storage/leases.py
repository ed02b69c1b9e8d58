"""The lease: exactly one planner plans and dispatches for a database, fenced.

The ``lease`` table has one row. A planner *acquires* it when nobody holds it or the holder's
``expires_at`` has passed, incrementing ``fence``; it *renews* it every few seconds, moving
``expires_at`` forward; it *releases* it on a clean stop. Every write transaction of a planner
starts with ``check_fence``, an UPDATE of the lease row that matches only while the row still
names this planner with this fencing number: it locks the row on PostgreSQL (a takeover waits for
the transaction, or the transaction sees the takeover and fails) and runs under SQLite's write
lock, so a planner that lost its lease — paused past its timeout, cut off — can no longer write,
even a transaction it had begun before it knew.

Times are the planners' own clocks, passed in: planners on several hosts need synchronised clocks
(NTP) to within a small part of the lease timeout. ``planners`` keeps one row per planner process
(leader, standby, stopped) for ``planner status``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from registry.errors import LeaseLost
from registry.records import LeaseState, PlannerSeen
from registry.storage.tables import lease, planners

#: stopped planners kept for "last planner seen" (older rows are dropped when a planner starts)
STOPPED_KEPT = 20


def try_acquire(
    conn: Connection, instance: str, *, now: datetime, timeout: timedelta
) -> int | None:
    """Take the lease if it is free or expired (or already ours); the new fencing number."""
    row = _locked_row(conn)
    holder, fence, expires = row.holder, row.fence, row.expires_at
    if holder is not None and holder != instance and expires is not None and expires > now:
        return None
    fence = fence if holder == instance else fence + 1
    conn.execute(
        update(lease)
        .where(lease.c.id == 1)
        .values(
            holder=instance,
            fence=fence,
            acquired_at=now if holder != instance else row.acquired_at,
            renewed_at=now,
            expires_at=now + timeout,
        )
    )
    return int(fence)


def renew(
    conn: Connection, instance: str, fence: int, *, now: datetime, timeout: timedelta
) -> None:
    """Move the lease's expiry forward; ``LeaseLost`` if it is no longer ours."""
    done = conn.execute(
        update(lease)
        .where(lease.c.id == 1, lease.c.holder == instance, lease.c.fence == fence)
        .values(renewed_at=now, expires_at=now + timeout)
    )
    if done.rowcount != 1:
        raise LeaseLost(instance, fence, _holder(conn))


_FENCE = (  # built once: it runs in every planner transaction
    update(lease)
    .where(
        lease.c.id == 1, lease.c.holder == bindparam("instance"), lease.c.fence == bindparam("f")
    )
    .values(fence=lease.c.fence)
)


def check_fence(conn: Connection, instance: str, fence: int) -> None:
    """First statement of every planner write transaction: ``LeaseLost`` unless still ours."""
    done = conn.execute(_FENCE, {"instance": instance, "f": fence})
    if done.rowcount != 1:
        raise LeaseLost(instance, fence, _holder(conn))


def release(conn: Connection, instance: str, fence: int, *, now: datetime) -> None:
    """Give the lease up (a clean stop): a standby may take it at once."""
    conn.execute(
        update(lease)
        .where(lease.c.id == 1, lease.c.holder == instance, lease.c.fence == fence)
        .values(holder=None, expires_at=now)
    )


def seen(conn: Connection, instance: str, *, host: str, pid: int, role: str, now: datetime) -> None:
    """Record that planner ``instance`` is alive in ``role`` (or stopped) at ``now``."""
    values = {"host": host, "pid": pid, "role": role, "seen": now}
    make = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    conn.execute(
        make(planners)
        .values(instance=instance, started=now, **values)
        .on_conflict_do_update(index_elements=["instance"], set_=values)
    )
    if role != "stopped":
        return
    keep = (
        select(planners.c.instance)
        .where(planners.c.role == "stopped")
        .order_by(planners.c.seen.desc())
        .limit(STOPPED_KEPT)
    )
    conn.execute(
        planners.delete().where(planners.c.role == "stopped", planners.c.instance.not_in(keep))
    )


def state(conn: Connection) -> LeaseState:
    """The lease and every planner seen, for ``planner status``."""
    row = conn.execute(select(lease).where(lease.c.id == 1)).first()
    seen_rows = conn.execute(select(planners).order_by(planners.c.seen.desc())).all()
    planners_seen = tuple(
        PlannerSeen(
            instance=r.instance,
            host=r.host,
            pid=r.pid,
            role=r.role,
            started=r.started,
            seen=r.seen,
        )
        for r in seen_rows
    )
    if row is None:
        return LeaseState(planners=planners_seen)
    return LeaseState(
        holder=row.holder,
        fence=int(row.fence),
        acquired_at=row.acquired_at,
        renewed_at=row.renewed_at,
        expires_at=row.expires_at,
        planners=planners_seen,
    )


def _locked_row(conn: Connection) -> Row[Any]:
    make = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    conn.execute(make(lease).values(id=1, fence=0).on_conflict_do_nothing(index_elements=["id"]))
    query = select(lease).where(lease.c.id == 1)
    if conn.dialect.name != "sqlite":  # SQLite: the write transaction already excludes others
        query = query.with_for_update()
    return conn.execute(query).one()


def _holder(conn: Connection) -> str | None:
    holder = conn.execute(select(lease.c.holder).where(lease.c.id == 1)).scalar_one_or_none()
    return None if holder is None else str(holder)
