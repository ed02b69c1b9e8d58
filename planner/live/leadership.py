"""Leadership: one planner plans and dispatches for a database; the others stand by.

``Leadership`` is the live driver's side of ``registry.storage.leases``:

- ``wait(stop)``: a standby. It tries to take the lease every ``poll`` seconds, says once whom it
  waits for (and again when the holder changes), and records itself as a standby so that
  ``planner status`` lists it. It returns True as soon as the lease is ours — at once if nobody
  holds it, else within ``timeout`` + ``poll`` of the holder's last renewal — or False when told
  to stop. A database that cannot be reached while waiting is retried, never fatal.
- ``renew_if_due(now)``: the loop calls it every turn that polls; every ``timeout / 3`` it moves
  the lease's expiry forward. From the moment the lease is ours the store fences every write
  with its number, so once another planner has taken over (this one was paused or cut off past
  ``timeout``) the next write raises ``LeaseLost`` and this planner stops: it can no longer
  record anything, so it must not start anything either.
- ``renew_meanwhile()``: between taking over and the loop's first turn (starting a cluster can
  take longer than the timeout) a thread renews the lease, so the next standby does not take it
  from a planner that has not planned anything yet; ``stop()`` ends it, raising ``LeaseLost`` if
  the lease was lost all the same.
- ``release(now)``: a clean stop gives the lease up, so a standby takes over at once, and
  records this planner as stopped (``planner status``: "last planner seen …"). With the database
  away (a planner giving up past ``--db-outage-limit``) that is skipped with a warning: the lease
  then expires, and a standby takes over after its timeout.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from planner.live.outage import describe, is_outage
from registry.errors import LeaseLost
from registry.records import LeaseState
from registry.storage.store import Store

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(seconds=15)


def describe_holder(state: LeaseState) -> str:
    """``host:pid (since …, renewed …)`` of the lease holder, for messages."""
    seen = state.planner(state.holder)
    who = f"{seen.host}:{seen.pid}" if seen is not None else str(state.holder)
    parts = []
    if state.acquired_at is not None:
        parts.append(f"since {state.acquired_at.isoformat(timespec='seconds')}")
    if state.renewed_at is not None:
        parts.append(f"renewed {state.renewed_at.isoformat(timespec='seconds')}")
    return f"{who} ({', '.join(parts)})" if parts else who


class Leadership:
    """This planner process's claim on a database's lease."""

    def __init__(
        self,
        store: Store,
        *,
        timeout: timedelta = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime],
        say: Callable[[str], None] | None = None,
    ) -> None:
        if timeout <= timedelta(0):
            raise ValueError(f"lease timeout must be positive, not {timeout}")
        self.store = store
        self.timeout = timeout
        self.clock = clock
        self.say = say or log.warning
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.instance = f"{self.host}:{self.pid}:{secrets.token_hex(3)}"
        self.fence: int | None = None
        self.poll = min(1.0, timeout.total_seconds() / 5)
        self._renew_every = timeout.total_seconds() / 3
        self._next_renewal = 0.0
        self._renewing = threading.Lock()

    @property
    def leading(self) -> bool:
        return self.fence is not None

    def wait(self, stop: threading.Event) -> bool:
        """Stand by until the lease is ours (True) or ``stop`` is set (False)."""
        announced: str | None = None
        while not stop.is_set():
            now = self.clock()
            try:
                fence = self.store.acquire_lease(self.instance, now=now, timeout=self.timeout)
                if fence is not None:
                    self.fence = fence
                    self._next_renewal = time.monotonic() + self._renew_every
                    self._seen("leader", now)
                    if announced is not None:
                        self.say(f"took over the lease (fencing number {fence})")
                    return True
                state = self.store.lease_state()
                self._seen("standby", now)
            except Exception as exc:  # the database is away: a standby just keeps waiting
                log.warning("standby: cannot reach the database (%s); retrying", exc)
                stop.wait(self.poll)
                continue
            if state.holder != announced:
                announced = state.holder
                self.say(
                    f"standby: waiting for the lease held by {describe_holder(state)}; "
                    f"taking over within {self.timeout.total_seconds():g}s of its last renewal"
                )
            stop.wait(self.poll)
        return False

    def renew_if_due(self, now: datetime) -> None:
        """Renew the lease when a third of its timeout has passed; ``LeaseLost`` if taken."""
        if self.fence is None or time.monotonic() < self._next_renewal:
            return
        self._renew(now)

    def renew_meanwhile(self, every: float | None = None) -> Renewer:
        """Renew the lease from a thread until ``stop()`` (every ``timeout / 3`` by default)."""
        return Renewer(self, self._renew_every if every is None else every)

    def _renew(self, now: datetime) -> None:
        with self._renewing:
            self.store.renew_lease(now=now, timeout=self.timeout)
            self._next_renewal = time.monotonic() + self._renew_every
            self._seen("leader", now)

    def release(self, now: datetime) -> None:
        """A clean stop: give the lease up and record this planner as stopped."""
        try:
            if self.fence is not None:
                self.store.release_lease(now=now)
            self._seen("stopped", now)
        except LeaseLost:
            pass  # someone else holds it already: nothing of ours to give up
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("could not release the lease (%s); it expires on its own", describe(exc))
        finally:
            self.fence = None

    def _seen(self, role: str, now: datetime) -> None:
        self.store.planner_seen(self.instance, host=self.host, pid=self.pid, role=role, now=now)


class Renewer:
    """A thread renewing a held lease while the planner gets ready to run its loop."""

    def __init__(self, leadership: Leadership, every: float) -> None:
        self.leadership = leadership
        self.every = every
        self.lost: LeaseLost | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="planner-lease", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        while not self._done.wait(self.every):
            try:
                self.leadership._renew(self.leadership.clock())
            except LeaseLost as exc:
                self.lost = exc
                return
            except Exception as exc:  # the loop's own renewal handles an outage; keep trying
                log.warning("could not renew the lease (%s); retrying", describe(exc))

    def stop(self) -> None:
        """End the renewals; ``LeaseLost`` if another planner took the lease meanwhile."""
        self._done.set()
        self._thread.join()
        if self.lost is not None:
            lost, self.lost = self.lost, None
            raise lost
