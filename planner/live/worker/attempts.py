"""The worker process's book of the attempts it runs, and how the planner cancels one.

``execute`` opens an ``Attempt`` for the time an attempt runs (``running``). It holds the
``cancelled`` event a callable sees as ``ctx.cancelled``, and, once a command started, the
command's process group and marker (see ``planner.live.worker.guardian``), which it hands to the
worker's guardian.

Cancelling: the planner calls ``cancel_attempt(key)`` on every worker with ``Client.run``, which
runs it on the worker's event loop at once, whether or not its threads are busy. It sets
``cancelled``, records why, and kills a command's processes (in a thread of its own: the kill
waits out a grace period). ``execute`` then reports the attempt as ``cancelled`` when its work
has really ended — a command once its processes are dead, a callable once it returns — so the
attempt, and the planner's slot, stay busy until then. A key not running here is remembered
(``EARLY_CANCELS_KEPT``) so an attempt that starts after its cancel ends at once. Nothing of this
talks to the scheduler while no cancel happens: an attempt costs a dictionary entry and an event.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from planner.live.worker.guardian import Guardian, kill_attempt

__all__ = ["Attempt", "cancel_all_attempts", "cancel_attempt", "running"]

EARLY_CANCELS_KEPT = 10_000  # cancels of attempts not (yet) running here, newest kept

_lock = threading.Lock()
# markers: random per worker process, counted within it (no entropy read per attempt)
_MARKER_TAG = secrets.token_hex(6)
_markers = itertools.count()
_running: dict[str, Attempt] = {}
_early: OrderedDict[str, str] = OrderedDict()  # key -> reason
_guardian = Guardian()


@dataclass(eq=False, slots=True)
class Attempt:
    """One attempt running in this worker process."""

    key: str
    kill_grace_s: float
    #: unique value of ``PLANNER_ATTEMPT_KEY`` in the environment of the attempt's processes
    marker: str
    #: set on cancel and when a callable's timeout passes; a callable sees it as ``ctx.cancelled``
    cancelled: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None  # set by cancel_attempt only
    pgid: int | None = None  # a command's process group, once started
    since: float = 0.0  # epoch seconds just before the command started

    def attach(self, pgid: int, since: float) -> None:
        """The command started as leader of group ``pgid``: guard it, kill it if cancelled."""
        with _lock:
            self.pgid, self.since = pgid, since
            cancelled = self.cancel_reason is not None
        _guardian.track(self.marker, pgid, self.kill_grace_s, since)
        if cancelled:
            self._kill()

    def _kill(self) -> None:
        if self.pgid is not None:
            threading.Thread(
                target=kill_attempt,
                args=(self.pgid, self.marker, self.kill_grace_s, self.since),
                name=f"planner-cancel-{self.key}",
                daemon=True,
            ).start()


@contextmanager
def running(key: str, *, run_id: str, attempt: int, kill_grace_s: float) -> Iterator[Attempt]:
    """Book ``key`` as running for the ``with`` block (a cancel that came first applies)."""
    entry = Attempt(
        key=key,
        kill_grace_s=kill_grace_s,
        marker=f"{run_id}/{attempt}/{_MARKER_TAG}-{next(_markers)}",
    )
    with _lock:
        _running[key] = entry
        reason = _early.pop(key, None)
        if reason is not None:
            entry.cancel_reason = reason
            entry.cancelled.set()
    try:
        yield entry
    finally:
        with _lock:
            if _running.get(key) is entry:
                del _running[key]
        if entry.pgid is not None:
            _guardian.untrack(entry.marker)


def cancel_attempt(key: str, reason: str = "cancelled by an operator") -> bool:
    """Cancel attempt ``key`` if it runs in this process (else remember it); True if it runs."""
    with _lock:
        entry = _running.get(key)
        if entry is None:
            _early[key] = reason
            while len(_early) > EARLY_CANCELS_KEPT:
                _early.popitem(last=False)
            return False
        first = entry.cancel_reason is None
        if first:
            entry.cancel_reason = reason
        entry.cancelled.set()
    if first:
        entry._kill()
    return True


def cancel_all_attempts(reason: str = "the planner stopped") -> int:
    """Cancel every attempt running in this process; how many there were."""
    with _lock:
        keys = list(_running)
    return sum(cancel_attempt(key, reason) for key in keys)
