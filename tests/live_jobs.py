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


def marker_exists(ctx: Any) -> bool:
    """A condition: true once the file ``ctx.params["marker"]`` exists; counts each ask."""
    from pathlib import Path

    CALLS[f"asked:{ctx.process}"] += 1
    STARTED[f"asked:{ctx.process}"].set()
    return Path(ctx.params["marker"]).exists()


def broken_condition() -> bool:
    """A condition that raises."""
    raise OSError("the source is unreachable")


def touch(marker: str) -> str:
    """A job: note that it ran, with the marker it was given."""
    CALLS[f"ran:{marker}"] += 1
    return marker


def fails_until(marker: str) -> str:
    """Fail until the file ``marker`` exists (a dead letter that a fix lets through)."""
    from pathlib import Path

    if not Path(marker).exists():
        raise ConnectionError(f"{marker} is not there yet")
    return marker


def on_error_says(error: Any, attempt: int) -> str:
    """An ``on_error`` hook: the verdict is the error message's last word (retry/fail/cancel)."""
    CALLS[f"on_error:{attempt}"] += 1
    return str(error.message).rsplit(" ", 1)[-1]


def on_error_raises() -> str:
    raise RuntimeError("the hook itself is broken")


def raise_named(kind: str, verdict: str = "retry") -> None:
    """A job raising ``kind`` (ConnectionError, ValueError, TimeoutError…) ending in ``verdict``."""
    import builtins

    raise getattr(builtins, kind)(f"failing on purpose, {verdict}")


def chatty(name: str, lines: int = 3, ctx: Any = None) -> dict[str, Any]:
    """A job that prints, logs and writes to stderr; returns a JSON result."""
    import logging
    import sys

    log = logging.getLogger("tests.chatty")
    for n in range(lines):
        print(f"{name} stdout line {n}")
        log.info("%s logging line %d", name, n)
    print(f"{name} on stderr", file=sys.stderr)
    return {"rows": lines, "name": name}


def chatty_until(name: str, release: str, ctx: Any = None) -> str:
    """Print a line, then wait until the test releases it (for ``logs --follow``)."""
    print(f"{name} is running", flush=True)
    STARTED[name].set()
    RELEASE[release].wait(60)
    print(f"{name} is done", flush=True)
    return name


def spew(chars: int) -> None:
    """Print ``chars`` characters: more than a log keeps."""
    block = "x" * 999 + "\n"
    for _ in range(chars // 1000):
        print(block, end="")
    print("the very end")


def produce(rows: int) -> dict[str, Any]:
    """An ancestor: its result is what its descendants get in ``ctx.ancestors``."""
    return {"rows": rows, "table": "orders"}


def consume(ctx: Any) -> dict[str, Any]:
    """A descendant: returns what it was given of its ancestors."""
    return {"seen": dict(ctx.ancestors)}
