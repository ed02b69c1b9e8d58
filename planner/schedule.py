"""Fire times of recurrent processes and times of day — pure functions of their arguments.

All datetimes in and out are timezone-aware. Cron expressions are evaluated in the registry's
timezone with croniter, which handles daylight-saving changes (a 02:30 fire on a spring-forward day
moves to 03:00; on a fall-back day it fires once). ``every`` fires lie on the grid
``anchor + k * interval`` (k ≥ 0): a new ``every`` process fires at once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

_ONE_SECOND = timedelta(seconds=1)


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
        it = croniter(self.cron, start.astimezone(self.tz))
        return it.get_next(datetime).astimezone(UTC)

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last fire at or before ``t`` (``None`` if the grid has not started by then)."""
        if self.every is not None:
            if t < self.anchor:
                return None
            return self.anchor + ((t - self.anchor) // self.every) * self.every
        assert self.cron is not None
        it = croniter(self.cron, (t + _ONE_SECOND).astimezone(self.tz))
        fire = it.get_prev(datetime).astimezone(UTC)
        while fire > t:
            fire = it.get_prev(datetime).astimezone(UTC)
        return fire if fire > self.anchor else None


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
