"""Database outages: the live loop rides out a database that goes away, up to a limit.

A server restart, a network drop or a SQLite write lock held by another process makes store
calls fail. The loop does not stop for that: it keeps the step it could not record (and every
completion that arrives meanwhile) in memory, starts nothing — a run is submitted only after its
record has committed — and retries with exponential backoff (``first_delay`` doubling up to
``max_delay``). When a write succeeds again it carries on where it was. Only after ``limit``
without a successful store call does it give up with ``DatabaseUnavailable``, leaving work on a
remote cluster running for the next planner to re-attach.

``is_outage(exc)`` tells an outage (the database cannot be reached or is locked) from a bug (an
integrity error, bad SQL): only the former is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from registry.errors import PlannerError

log = logging.getLogger(__name__)

DEFAULT_LIMIT = timedelta(minutes=5)


class DatabaseUnavailable(PlannerError, RuntimeError):
    """The database stayed unreachable past ``--db-outage-limit``."""


def is_outage(exc: BaseException) -> bool:
    """A failure of the database's availability (retry), not of what was asked of it."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Outage:
    """Backoff and limit for one outage at a time; ``since`` is None while the database is up."""

    def __init__(
        self,
        limit: timedelta = DEFAULT_LIMIT,
        *,
        first_delay: float = 0.05,
        max_delay: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit.total_seconds()
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.monotonic = monotonic
        self.since: float | None = None
        self.delay = first_delay
        self.retry_at = 0.0
        self.failures = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def due(self) -> bool:
        """Time to try the database again."""
        return self.since is None or self.monotonic() >= self.retry_at

    def wait_s(self) -> float:
        """Seconds until the next retry (0 when the database is up)."""
        return 0.0 if self.since is None else max(self.retry_at - self.monotonic(), 0.0)

    def failed(self, exc: BaseException) -> None:
        """A store call failed with an outage: schedule the next try, or give up past the limit."""
        now = self.monotonic()
        if self.since is None:
            self.since, self.delay, self.failures = now, self.first_delay, 0
            log.warning(
                "database unreachable (%s); retrying, starting nothing meanwhile", describe(exc)
            )
        self.failures += 1
        if now - self.since >= self.limit:
            raise DatabaseUnavailable(
                f"the database has been unreachable for {now - self.since:.0f}s, past the "
                f"--db-outage-limit of {self.limit:g}s (last error: {describe(exc)}); giving up. "
                "Work on a remote cluster keeps running for the next planner."
            ) from exc
        self.retry_at = now + self.delay
        self.delay = min(self.delay * 2, self.max_delay)

    def recovered(self) -> None:
        if self.since is not None:
            log.warning(
                "database back after %.1fs (%d failed attempts); carrying on",
                self.monotonic() - self.since,
                self.failures,
            )
        self.since = None
        self.delay = self.first_delay


def describe(exc: BaseException) -> str:
    """The first line of a database error, for one-line messages."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
