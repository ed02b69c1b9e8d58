"""Fire times of recurrent processes and times of day — pure functions of their arguments.

All datetimes in and out are timezone-aware. Cron expressions are evaluated in the registry's
timezone: croniter walks the local wall clock (naive datetimes) and each wall time is then placed on
the time line, so every wall-clock fire time fires exactly once — a 02:30 fire on a spring-forward
day, when 02:30 does not exist, fires when the clocks jump (03:00); on a fall-back day a 02:30 fire
fires at the first 02:30 only. (croniter's own timezone handling is not used: across a fall-back it
returns fires twice and even fires that are not after the time asked for.) ``every`` fires lie on
the grid ``anchor + k * interval`` (k ≥ 0): a new ``every`` process fires at once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

_ONE_SECOND = timedelta(seconds=1)
_ZERO = timedelta(0)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class Schedule:
    """The fire grid of one recurrent process (cron or every), anchored at ``anchor``."""

    __slots__ = ("anchor", "cron", "every", "tz")

    def __init__(
        self, *, anchor: datetime, tz: ZoneInfo, cron: str | None, every: timedelta | None
    ) -> None:
        if (cron is None) == (every is None):
            raise ValueError("a schedule needs exactly one of cron and every")
        self.anchor = anchor
        self.tz = tz
        self.cron = cron
        self.every = every

    def first_after(self, t: datetime | None) -> datetime:
        """The first fire strictly after ``t`` (``None``: the first fire of the grid)."""
        if self.every is not None:
            if t is None or t < self.anchor:
                return self.anchor
            k = (t - self.anchor) // self.every + 1
            return self.anchor + k * self.every
        start = self.anchor if t is None or t < self.anchor else t
        assert self.cron is not None
        it = croniter(self.cron, _wall(start, self.tz))
        while True:  # several wall times may land on one instant (a DST gap) or before ``start``
            fire = _place(it.get_next(datetime), self.tz)
            if fire > start:
                return fire

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last fire at or before ``t`` (``None`` if the grid has not started by then)."""
        if self.every is not None:
            if t < self.anchor:
                return None
            return self.anchor + ((t - self.anchor) // self.every) * self.every
        assert self.cron is not None
        local = t.astimezone(self.tz)
        # In the repeated hour of a fall-back day the wall clock has already shown later times
        # (up to ``repeat`` later) than it shows now; fires at those walls are in the past too.
        repeat = (local.replace(fold=0).utcoffset() or _ZERO) - (local.utcoffset() or _ZERO)
        it = croniter(self.cron, _wall(t, self.tz) + max(repeat, _ZERO) + _ONE_SECOND)
        fire = _place(it.get_prev(datetime), self.tz)
        while fire > t:
            fire = _place(it.get_prev(datetime), self.tz)
        return fire if fire > self.anchor else None


def _wall(t: datetime, tz: ZoneInfo) -> datetime:
    """``t``'s local wall-clock time in ``tz``, naive."""
    return t.astimezone(tz).replace(tzinfo=None)


def _place(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant (aware UTC) at which the wall clock of ``tz`` first shows ``wall``.

    An ambiguous wall time (a fall-back day) is its first occurrence; a wall time that does not
    exist (inside a spring-forward gap) is the instant the clocks jump over it."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    # In a gap: fold=1 reads it with the offset after the jump (an instant before the jump) and
    # fold=0 with the offset before it (an instant after the jump). Bisect to the jump itself.
    lo = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first.timestamp())
    after = first.astimezone(tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def local_time_today(t: datetime, at: time, tz: ZoneInfo) -> datetime:
    """``at`` on ``t``'s local date, as an aware UTC datetime (DST gaps resolve forward)."""
    local_day: date = t.astimezone(tz).date()
    naive = datetime.combine(local_day, at)
    aware = naive.replace(tzinfo=tz)
    # A wall time inside a DST gap does not exist; zoneinfo maps it with the earlier offset,
    # which lands after the gap once normalised through UTC — the behaviour users expect.
    return aware.astimezone(UTC)


def next_local_midnight(t: datetime, tz: ZoneInfo) -> datetime:
    local_day = t.astimezone(tz).date() + timedelta(days=1)
    return datetime.combine(local_day, time(0), tzinfo=tz).astimezone(UTC)


def fires_between(
    *,
    cron: str | None,
    every: timedelta | None,
    tz: ZoneInfo,
    anchor: datetime,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[datetime]:
    """The fire times ``start <= t <= end`` of a cron or every schedule, oldest first (for a
    backfill). An ``every`` grid extends before its ``anchor`` (``anchor - k * interval``), so
    a backfill reaches back before the process was applied. ``ValueError`` past ``limit``."""
    fires: list[datetime] = []
    if every is not None:
        k = -((anchor - start) // every)  # the first grid point at or after ``start``
        t = anchor + k * every
        while t <= end:
            fires.append(t)
            if len(fires) > limit:
                raise ValueError(f"more than {limit} fires in the range")
            t += every
        return fires
    schedule = Schedule(anchor=start - _ONE_SECOND, tz=tz, cron=cron, every=None)
    t = schedule.first_after(start - _ONE_SECOND)
    while t <= end:
        fires.append(t)
        if len(fires) > limit:
            raise ValueError(f"more than {limit} fires in the range")
        t = schedule.first_after(t)
    return fires
