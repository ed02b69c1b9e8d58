"""Durations as the registry writes them: ``90``, ``90s``, ``15m``, ``6h``, ``1d``, ``1h30m``.

A bare number is seconds. Units are ``d``, ``h``, ``m``, ``s``, each at most once and in that
order, each with an optional decimal fraction (``1.5h``); blanks between parts are allowed
(``1h 30m``). Durations are never negative. Parsing is exact to the microsecond (the resolution of
``timedelta``): decimal text is read with ``Decimal``, so ``format_duration`` and
``parse_duration`` round-trip every non-negative ``timedelta``.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = ["DURATION_PATTERN", "format_duration", "parse_duration"]

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
#: The accepted text forms, usable both by ``re`` and as a JSON Schema (ECMA-262) ``pattern``.
DURATION_PATTERN = (
    rf"^\s*(?:{_NUMBER}|(?=[0-9.])(?:{_NUMBER}\s*d\s*)?(?:{_NUMBER}\s*h\s*)?"
    rf"(?:{_NUMBER}\s*m\s*)?(?:{_NUMBER}\s*s)?)\s*$"
)

_PARSER = re.compile(
    rf"""\s*(?:
        (?P<bare>{_NUMBER})
      | (?:(?P<d>{_NUMBER})\s*d\s*)?
        (?:(?P<h>{_NUMBER})\s*h\s*)?
        (?:(?P<m>{_NUMBER})\s*m\s*)?
        (?:(?P<s>{_NUMBER})\s*s)?
    )\s*""",
    re.VERBOSE,
)
_MICROSECONDS = {"bare": 1_000_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_MICROSECONDS["d"] = 24 * _MICROSECONDS["h"]
_HINT = "use seconds (90) or a number with a unit: 90s, 15m, 6h, 1d, 1h30m"


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """The ``timedelta`` that ``value`` denotes; ``ValueError`` naming the value if invalid."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"duration {value!r} is negative")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration {value!r}: {_HINT}")
    if not isinstance(value, str):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise ValueError(f"duration {value!r} is too large") from None
    return _parse_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> timedelta:
    """``parse_duration`` of a text (remembered: a registry repeats a few durations thousands of
    times; invalid ones raise each time, which ``lru_cache`` does not remember)."""
    match = _PARSER.fullmatch(value)
    parts = {k: v for k, v in match.groupdict().items() if v is not None} if match else {}
    if not parts:
        raise ValueError(f"invalid duration {value!r}: {_HINT}")
    try:
        if all(text.isdigit() for text in parts.values()):  # whole numbers: exact as integers
            micros = sum(int(text) * _MICROSECONDS[unit] for unit, text in parts.items())
        else:
            fractional = sum(
                (Decimal(text) * _MICROSECONDS[unit] for unit, text in parts.items()), Decimal(0)
            )
            micros = int(fractional.to_integral_value())
        return timedelta(microseconds=micros)
    except (OverflowError, InvalidOperation):
        raise ValueError(f"duration {value!r} is too large") from None


def format_duration(value: timedelta) -> str:
    """The shortest canonical text for ``value``: ``1d2h``, ``1h30m``, ``90.5s`` → ``1m30.5s``."""
    if value < timedelta(0):
        raise ValueError(f"duration {value!r} is negative")
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    days, micros = divmod(micros, _MICROSECONDS["d"])
    hours, micros = divmod(micros, _MICROSECONDS["h"])
    minutes, micros = divmod(micros, _MICROSECONDS["m"])
    seconds, micros = divmod(micros, _MICROSECONDS["s"])
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    if micros:
        text += f"{seconds}.{micros:06d}".rstrip("0") + "s"
    elif seconds or not text:
        text += f"{seconds}s"
    return text
