from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.definitions.durations import DURATION_PATTERN, format_duration, parse_duration

# the largest duration format_duration can write and timedelta can hold again
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=999_999_999))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (" 2d3h4m5s ", timedelta(days=2, hours=3, minutes=4, seconds=5)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        (".5s", timedelta(milliseconds=500)),
        ("0.000001s", timedelta(microseconds=1)),
        ("0", timedelta(0)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse_accepts_the_documented_forms(
    text: str | float | timedelta, expected: timedelta
) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "s", "5x", "1m1h", "1h1h", "-5", "-5s", "1e3", "h1", "1 h 2", "one hour"],
)
def test_parse_rejects_malformed_text_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), True, None, [1]])
def test_parse_rejects_negative_infinite_and_non_numbers(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)  # type: ignore[arg-type]


def test_parse_rejects_durations_too_large_for_timedelta() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("9999999999d")
    with pytest.raises(ValueError, match="too large"):
        parse_duration(1e20)


def test_parse_rejects_negative_timedelta() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(microseconds=1), "0.000001s"),
        (timedelta(hours=6), "6h"),
    ],
)
def test_format_is_short_and_canonical(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


def test_format_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(durations)
def test_format_then_parse_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@given(durations)
def test_formatted_text_matches_the_schema_pattern(value: timedelta) -> None:
    assert re.match(DURATION_PATTERN, format_duration(value))


@given(st.integers(min_value=0, max_value=10**12))
def test_bare_numbers_are_seconds(seconds: int) -> None:
    assert parse_duration(str(seconds)) == parse_duration(seconds) == timedelta(seconds=seconds)


@given(
    st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000)
)
def test_compound_is_the_sum_of_its_parts(d: int, h: int, m: int, s: int) -> None:
    expected = timedelta(days=d, hours=h, minutes=m, seconds=s)
    assert parse_duration(f"{d}d{h}h{m}m{s}s") == expected
    assert parse_duration(f"{d}d {h}h {m}m {s}s") == expected


@given(st.text(alphabet="0123456789.dhms -e", max_size=12))
def test_pattern_and_parser_agree(text: str) -> None:
    try:
        parse_duration(text)
    except ValueError as exc:
        assert not re.match(DURATION_PATTERN, text) or "too large" in str(exc)
    else:
        assert re.match(DURATION_PATTERN, text)
