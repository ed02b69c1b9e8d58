"""Jobs for the live tests. With an in-process cluster they run in this very process, so tests
synchronise with them through ``threading.Event``s instead of sleeping."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

STARTED: defaultdict[str, threading.Event] = defaultdict(threading.Event)
RELEASE: defaultdict[str, threading.Event] = defaultdict(threading.Event)
CALLS: defaultdict[str, int] = defaultdict(int)


def gate(name: str, timeout: float = 60.0) -> str:
    """Signal that ``name`` started, then wait until the test releases it."""
    CALLS[name] += 1
    STARTED[name].set()
    RELEASE[name].wait(timeout)
    return name


def flaky(name: str, failures: int = 1, ctx: Any = None) -> int:
    """Fail the first ``failures`` attempts, then succeed."""
    CALLS[name] += 1
    if ctx is not None and ctx.attempt <= failures:
        raise RuntimeError(f"{name}: attempt {ctx.attempt} fails on purpose")
    return CALLS[name]


def reset() -> None:
    STARTED.clear()
    RELEASE.clear()
    CALLS.clear()


def mark_and_sleep(marker: str, seconds: float = 60.0, ctx: Any = None) -> str:
    """On the first attempt, write the worker's address to ``marker`` and hang; later, succeed."""
    import time
    from pathlib import Path

    from distributed import get_worker

    if ctx is None or ctx.attempt == 1:
        Path(marker).write_text(get_worker().address)
        time.sleep(seconds)  # the test kills this worker meanwhile
    return "survived"


def wait_for_file(marker: str, release: str, timeout: float = 120.0) -> str:
    """Write ``marker``, then wait (polling, inside the job) until ``release`` exists.

    For tests whose planner runs in another process, where events cannot be shared."""
    import time
    from pathlib import Path

    Path(marker).write_text("started")
    deadline = time.monotonic() + timeout
    while not Path(release).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} never appeared")
        time.sleep(0.02)
    return "released"


def until_cancelled(marker: str, ctx: Any, timeout: float = 60.0) -> str:
    """Write ``marker``, then return as soon as the attempt is cancelled (``ctx.cancelled``)."""
    from pathlib import Path

    Path(marker).write_text("started")
    return "stopped" if ctx.cancelled.wait(timeout) else "never cancelled"


def linger(marker: str, release: str, ctx: Any, timeout: float = 60.0) -> str:
    """Write ``marker``; once ``ctx.cancelled`` is set write ``<marker>.cancelled`` and carry on
    regardless until ``release`` exists — a callable that does not honour a cancel or timeout."""
    import time
    from pathlib import Path

    Path(marker).write_text("started")
    ctx.cancelled.wait(timeout)
    Path(marker + ".cancelled").write_text("seen")
    deadline = time.monotonic() + timeout
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "finally"


def raise_huge(size: int) -> None:
    """Raise an exception whose message is ``size`` characters long."""
    raise RuntimeError("x" * size)


def attempt_gate(markers: str, release: str, ctx: Any, timeout: float = 120.0) -> str:
    """Write ``<markers>/attempt-<n>``, then wait until ``release`` exists or the attempt is
    cancelled — polling inside the job, for planners that run in another process."""
    from pathlib import Path

    Path(markers, f"attempt-{ctx.attempt}").write_text("started")
    waited = 0.0
    while not Path(release).exists() and waited < timeout:
        if ctx.cancelled.wait(0.05):
            return "cancelled"
        waited += 0.05
    return "released"
