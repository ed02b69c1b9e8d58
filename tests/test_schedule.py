"""Fire times: cron in a timezone across daylight-saving changes, ``every`` grids, times of day.

Europe/Madrid in 2026: clocks jump from 02:00 CET to 03:00 CEST on 29 March (at 01:00 UTC) and
fall back from 03:00 CEST to 02:00 CET on 25 October (at 01:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.core.schedule import Schedule, local_time_today, next_local_midnight, zone

MADRID = zone("Europe/Madrid")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(t: datetime) -> str:
    return t.astimezone(MADRID).isoformat()


def cron(expr: str, anchor: datetime, tz: str = "Europe/Madrid") -> Schedule:
    return Schedule(anchor=anchor, tz=zone(tz), cron=expr, every=None)


def fires(schedule: Schedule, n: int) -> list[datetime]:
    out: list[datetime] = []
    t = None
    for _ in range(n):
        t = schedule.first_after(t)
        out.append(t)
    return out


# -- cron across daylight-saving changes ---------------------------------------------------------


def test_daily_cron_keeps_its_wall_time_across_spring_forward() -> None:
    s = cron("0 3 * * *", utc(2026, 3, 27, 12))
    assert [local(f) for f in fires(s, 3)] == [
        "2026-03-28T03:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T03:00:00+02:00",
    ]
    # the day is 23 hours long, so 03:00 comes 23 hours after the previous 03:00
    assert fires(s, 2)[1] - fires(s, 2)[0] == timedelta(hours=23)


def test_fire_inside_the_spring_forward_gap_fires_when_the_clocks_jump() -> None:
    s = cron("30 2 * * *", utc(2026, 3, 27, 12))
    assert [local(f) for f in fires(s, 3)] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that day
        "2026-03-30T02:30:00+02:00",
    ]


def test_fires_in_the_gap_collapse_into_one_at_the_jump() -> None:
    s = cron("*/30 * * * *", utc(2026, 3, 28, 23, 45))  # 00:45 CET
    assert [local(f) for f in fires(s, 5)] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00, 02:30 and 03:00 are one instant
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_daily_cron_in_the_repeated_hour_fires_once_on_fall_back() -> None:
    s = cron("30 2 * * *", utc(2026, 10, 23, 12))
    assert [local(f) for f in fires(s, 3)] == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # the first 02:30 only
        "2026-10-26T02:30:00+01:00",
    ]


@pytest.mark.parametrize("expr", ["0 2 * * *", "30 2 * * *", "0 * * * *", "*/30 * * * *"])
def test_first_after_is_strictly_after_even_in_the_repeated_hour(expr: str) -> None:
    # croniter's own timezone handling returns the same fire again from the second 02:00
    s = cron(expr, utc(2026, 10, 20))
    t = utc(2026, 10, 24, 22)
    while t < utc(2026, 10, 25, 4):
        nxt = s.first_after(t)
        assert nxt > t
        latest = s.latest_at_or_before(t)
        assert latest is not None and latest <= t
        assert s.first_after(latest) == nxt  # no fire between the two
        t += timedelta(minutes=5)


def test_hourly_cron_shows_each_wall_time_once_on_fall_back() -> None:
    s = cron("0 * * * *", utc(2026, 10, 24, 22))  # 00:00 CEST
    assert [local(f) for f in fires(s, 4)] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        # the second 02:00 (CET) is not a new wall time: no fire
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]


def test_latest_at_or_before_on_dst_days() -> None:
    spring = cron("30 2 * * *", utc(2026, 3, 27))
    assert spring.latest_at_or_before(utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 28, 1, 30)
    assert spring.latest_at_or_before(utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 1)  # the jump
    fall = cron("30 2 * * *", utc(2026, 10, 23))
    # 01:45 UTC is 02:45 CET, in the repeated hour: the (only) 02:30 fire was at 00:30 UTC
    assert fall.latest_at_or_before(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)
    assert fall.first_after(utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 26, 1, 30)


def test_cron_grid_starts_strictly_after_the_anchor() -> None:
    anchor = utc(2026, 3, 2, 3)  # on a fire of "0 3 * * *" in UTC
    s = cron("0 3 * * *", anchor, tz="UTC")
    assert s.first_after(None) == utc(2026, 3, 3, 3)  # a new cron process waits for its next fire
    assert s.first_after(utc(2026, 1, 1)) == utc(2026, 3, 3, 3)
    assert s.latest_at_or_before(anchor) is None
    assert s.latest_at_or_before(utc(2026, 3, 3, 2, 59)) is None
    assert s.latest_at_or_before(utc(2026, 3, 3, 3)) == utc(2026, 3, 3, 3)
    assert s.latest_at_or_before(utc(2026, 3, 5, 12)) == utc(2026, 3, 5, 3)


# -- every ---------------------------------------------------------------------------------------


def test_every_fires_at_the_anchor_then_on_its_grid() -> None:
    anchor = utc(2026, 3, 2, 0, 7)
    s = Schedule(anchor=anchor, tz=MADRID, cron=None, every=timedelta(minutes=15))
    assert s.first_after(None) == anchor
    assert s.first_after(utc(2026, 3, 1)) == anchor
    assert s.first_after(anchor) == anchor + timedelta(minutes=15)
    assert s.first_after(utc(2026, 3, 2, 1)) == utc(2026, 3, 2, 1, 7)
    assert s.first_after(utc(2026, 3, 2, 1, 7)) == utc(2026, 3, 2, 1, 22)  # strictly after
    assert s.latest_at_or_before(utc(2026, 3, 2, 0, 6)) is None
    assert s.latest_at_or_before(anchor) == anchor
    assert s.latest_at_or_before(utc(2026, 3, 2, 1, 21)) == utc(2026, 3, 2, 1, 7)
    assert s.latest_at_or_before(utc(2026, 3, 2, 1, 22)) == utc(2026, 3, 2, 1, 22)


def test_every_is_a_fixed_interval_across_dst() -> None:
    # a fixed interval, not a wall time: 24 h after 03:00 CET is 04:00 CEST
    s = Schedule(anchor=utc(2026, 3, 28, 2), tz=MADRID, cron=None, every=timedelta(days=1))
    assert [local(f) for f in fires(s, 2)] == [
        "2026-03-28T03:00:00+01:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_schedule_needs_exactly_one_of_cron_and_every() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(anchor=utc(2026, 1, 1), tz=MADRID, cron=None, every=None)
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(anchor=utc(2026, 1, 1), tz=MADRID, cron="* * * * *", every=timedelta(1))


# -- times of day --------------------------------------------------------------------------------


def test_local_time_today_follows_the_registry_timezone() -> None:
    assert local_time_today(utc(2026, 3, 2, 12), time(3), MADRID) == utc(2026, 3, 2, 2)
    assert local_time_today(utc(2026, 7, 2, 12), time(3), MADRID) == utc(2026, 7, 2, 1)
    # 23:30 UTC on 2 March is already 3 March in Madrid
    assert local_time_today(utc(2026, 3, 2, 23, 30), time(3), MADRID) == utc(2026, 3, 3, 2)


def test_local_time_today_in_dst_changes() -> None:
    # 02:30 does not exist on 29 March: it resolves after the gap
    assert local(local_time_today(utc(2026, 3, 29, 12), time(2, 30), MADRID)) == (
        "2026-03-29T03:30:00+02:00"
    )
    # 02:30 happens twice on 25 October: the first one
    assert local_time_today(utc(2026, 10, 25, 12), time(2, 30), MADRID) == utc(2026, 10, 25, 0, 30)


def test_next_local_midnight() -> None:
    assert next_local_midnight(utc(2026, 3, 2, 12), MADRID) == utc(2026, 3, 2, 23)
    assert next_local_midnight(utc(2026, 3, 28, 12), MADRID) == utc(2026, 3, 28, 23)
    assert next_local_midnight(utc(2026, 3, 29, 12), MADRID) == utc(2026, 3, 29, 22)


# -- properties ----------------------------------------------------------------------------------

ZONES = ["Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "UTC"]
EXPRESSIONS = ["0 * * * *", "*/20 * * * *", "30 2 * * *", "0 2 * * *", "15 1,2,3 * * 1-5"]
# around the 2026 changes of the zones above (Lord Howe moves by 30 minutes, in April/October)
AROUND = st.sampled_from(
    [
        utc(2026, 3, 8, 6),
        utc(2026, 3, 28, 22),
        utc(2026, 4, 4, 14),
        utc(2026, 10, 3, 14),
        utc(2026, 10, 24, 22),
        utc(2026, 11, 1, 4),
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    expr=st.sampled_from(EXPRESSIONS),
    base=AROUND,
    offset=st.integers(min_value=-6 * 3600, max_value=6 * 3600),
)
def test_cron_fires_are_increasing_and_consistent(
    tz: str, expr: str, base: datetime, offset: int
) -> None:
    s = cron(expr, base - timedelta(days=8), tz=tz)
    t = base + timedelta(seconds=offset)
    nxt = s.first_after(t)
    assert nxt > t
    latest = s.latest_at_or_before(t)
    assert latest is not None and latest <= t
    assert s.first_after(latest) == nxt
    assert s.latest_at_or_before(nxt) == nxt
    assert s.latest_at_or_before(nxt - timedelta(seconds=1)) == latest
    # each wall-clock time fires at most once
    chain = fires(cron(expr, t, tz=tz), 30)
    walls = [f.astimezone(zone(tz)).replace(tzinfo=None) for f in chain]
    assert len(set(walls)) == len(walls)
    assert chain == sorted(chain)
