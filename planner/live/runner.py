"""``planner run`` end to end: stand by for the lease, connect to Dask, drive, stop cleanly.

``run_planner`` is the whole life of one planner process:

1. **Stand by** (``planner.live.leadership``) until this process holds the database's lease. A
   standby connects to no cluster and starts nothing.
2. **Connect** to the remote scheduler, or start the in-process ``LocalCluster``.
3. **Drive**: ``LiveDriver.run`` until idle, until ``--for`` has passed, or until stopped. SIGTERM
   and a first Ctrl-C ask for a clean stop (a second Ctrl-C interrupts at once).
4. **Stop cleanly** (``LiveDriver.shutdown``): with an in-process cluster, runs still in flight
   are cancelled on their workers and recorded ``cancelled``, so no run is left ``queued`` or
   ``running`` with nobody to own it; with a remote scheduler they keep running and the next
   planner re-attaches them. Then the lease is released, so a standby takes over at once.

A planner whose lease was taken over (``LeaseLost``: it was paused or cut off past the timeout)
records nothing more — its writes are fenced — cancels its in-process work, and ends with the
error; the planner that took over has already marked that work lost and retries it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import FrameType

from planner.live.cluster import Connection, connect
from planner.live.dispatch import Dispatcher
from planner.live.leadership import DEFAULT_TIMEOUT, Leadership
from planner.live.loop import LiveDriver, Summary, utcnow
from planner.live.outage import DEFAULT_LIMIT
from registry.errors import LeaseLost
from registry.storage.store import Store


def run_planner(
    store: Store,
    *,
    scheduler: str | None = None,
    slots: int | None = None,
    until_idle: bool = False,
    duration: timedelta | None = None,
    processes: bool = True,
    n_workers: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    on_ready: Callable[[LiveDriver, Connection], Callable[[], None] | None] | None = None,
    cwd: str | None = None,
    lease_timeout: timedelta = DEFAULT_TIMEOUT,
    db_outage_limit: timedelta = DEFAULT_LIMIT,
    say: Callable[[str], None] | None = None,
    allow_reruns: bool = False,
) -> Summary:
    """Stand by, then plan and execute on Dask until told to stop; returns what was done.

    ``on_ready(driver, connection)`` runs once the driver exists (to print addresses, serve the
    page, show a live display); it may return a function called when the run ends. ``say``
    receives the standby's messages (whom it waits for) and warnings about the cluster;
    ``allow_reruns`` accepts a remote scheduler that re-runs attempts (``planner.live.cluster``)."""
    stop = threading.Event()
    driver: LiveDriver | None = None
    interrupted = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        if signum == signal.SIGINT:
            if interrupted:  # a second Ctrl-C: stop waiting for the clean stop
                raise KeyboardInterrupt
            interrupted = True
        stop.set()
        if driver is not None:
            driver.stop()

    leadership = Leadership(store, timeout=lease_timeout, clock=utcnow, say=say)
    with _stop_signals(request_stop):
        if not leadership.wait(stop):
            leadership.release(utcnow())
            return Summary(stopped_by="signal")
        lost = False
        try:
            with connect(
                scheduler,
                processes=processes,
                n_workers=n_workers,
                dashboard_address=dashboard_address,
                allow_reruns=allow_reruns,
                say=say,
            ) as conn:
                dispatcher = Dispatcher(conn.client, remote=conn.remote)
                driver = LiveDriver(
                    store,
                    dispatcher,
                    slots=slots,
                    cwd=cwd,
                    leadership=leadership,
                    db_outage_limit=db_outage_limit,
                )
                if stop.is_set():
                    driver.stop()
                cleanup = on_ready(driver, conn) if on_ready is not None else None
                until = utcnow() + duration if duration is not None else None
                try:
                    summary = driver.run(until_idle=until_idle, until=until)
                except LeaseLost:
                    lost = True
                    raise
                finally:
                    driver.shutdown(cancel=not conn.remote, record=not lost)
                    if cleanup is not None:
                        cleanup()
        finally:
            if not lost:
                leadership.release(utcnow())
    if interrupted or stop.is_set():
        summary.stopped_by = "signal"
    return summary


@contextlib.contextmanager
def _stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGTERM and SIGINT ask for a clean stop while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
