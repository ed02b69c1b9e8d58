"""Reservation: keep a slot free for ``reserve: true`` processes at their next known start.

A lower-ranked candidate may take a slot now only if, by the duration estimates, enough slots are
still free at every reserved start that falls inside its estimated run. A candidate of unknown
duration counts as running through every reserved start of the next 24 h. The check never idles a
slot that no reservation needs: that is what makes it backfilling rather than blocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

HORIZON = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Hold:
    """A slot kept for ``process`` from ``at`` until ``until`` (None: unknown end)."""

    process: str
    at: datetime
    until: datetime | None


def blocking_hold(
    candidate: str,
    candidate_end: datetime | None,
    *,
    now: datetime,
    slots: int,
    busy_until: Sequence[datetime | None],
    holds: Sequence[Hold],
) -> Hold | None:
    """The reservation that starting ``candidate`` now would break, if any.

    ``busy_until`` lists the estimated ends of the runs in flight (None: unknown); ``holds`` must
    be sorted by ``at`` and lie within the horizon."""
    end = candidate_end if candidate_end is not None else now + HORIZON
    others = [h for h in holds if h.process != candidate]
    for hold in others:
        if hold.at >= end:
            break
        at = max(hold.at, now)
        busy = 1 + sum(1 for e in busy_until if e is None or e > at)
        demand = sum(1 for o in others if o.at <= at and (o.until is None or o.until > at))
        if slots - busy < demand:
            return hold
    return None
