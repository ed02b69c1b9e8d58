"""``planner run`` end to end: stand by for the lease, connect to Dask, drive, stop cleanly.

``run_planner`` is the whole life of one planner process:

1. **Stand by** (``planner.live.leadership``) until this process holds the database's lease. A
   standby connects to no cluster and starts nothing.
2. **Connect** to the remote scheduler, or start the in-process ``LocalCluster``. Meanwhile a
   thread renews the lease (``Leadership.renew_meanwhile``): a slow cluster start must not let
   the next standby take over from a planner that has not planned yet. The moment the cluster
   is up it is logged and ``on_connected`` is called — before the driver loads the registry,
   results, histories and states and builds its core, so a start's cost can be told apart from
   the cluster's.
3. **Drive**: ``LiveDriver.run`` until idle, until ``--for`` has passed, or until stopped. SIGTERM
   and a first Ctrl-C ask for a clean stop (a second Ctrl-C interrupts at once).
4. **Stop cleanly** (``LiveDriver.shutdown``): with an in-process cluster, runs still in flight
   are cancelled on their workers and recorded ``cancelled``, so no run is left ``queued`` or
   ``running`` with nobody to own it; with a remote scheduler they keep running and the next
   planner re-attaches them. Then the lease is released, so a standby takes over at once.

While it drives, a ``Housekeeper`` thread purges records past the registry's ``retention``, and a
``ConditionWatcher`` asks the conditions the core wants asked (``planner.live.conditions``).

Slots on an adaptive cluster: the core's slots are ``--slots``, else the registry's ``slots:``,
else the cluster's threads. An adaptive in-process cluster (``--adapt``) reports the threads it
can grow to (``_ReachableCapacity``), so the default is MAX workers' worth and the ready runs
queue on the scheduler, which is what Dask scales up on; workers joining or leaving change the
resources the core sees, not the slots.

The heap after the cold start: loading the registry and the first decision create most of the
objects the planner keeps for its whole life (a state per process, the graph). The collector is
off while the driver is built, and once the first decision is recorded the heap is collected and
frozen (``gc.freeze``), so later collections do not walk that state again; it is unfrozen when the
run ends.

A planner whose lease was taken over (``LeaseLost``: it was paused or cut off past the timeout)
records nothing more — its writes are fenced — cancels its in-process work, and ends with the
error; the planner that took over has already marked that work lost and retries it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import FrameType

from planner.core.events import ConditionAnswered, Step
from planner.live.cluster import Adapt, Connection, connect
from planner.live.conditions import ConditionWatcher
from planner.live.dispatch import Dispatcher
from planner.live.housekeeping import Housekeeper
from planner.live.leadership import DEFAULT_TIMEOUT, Leadership
from planner.live.loop import LiveDriver, utcnow
from planner.live.outage import DEFAULT_LIMIT
from planner.live.recording import Summary
from registry.errors import LeaseLost
from registry.storage.store import Store

log = logging.getLogger(__name__)


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
    adapt: Adapt | None = None,
    on_connected: Callable[[Connection], None] | None = None,
) -> Summary:
    """Stand by, then plan and execute on Dask until told to stop; returns what was done.

    ``on_connected(connection)`` runs as soon as the cluster is up, before the driver is built.
    ``on_ready(driver, connection)`` runs once the driver exists (to print addresses, serve the
    page, show a live display); it may return a function called when the run ends. ``say``
    receives the standby's messages (whom it waits for) and warnings about the cluster;
    ``allow_reruns`` accepts a remote scheduler that re-runs attempts (``planner.live.cluster``);
    ``adapt`` makes the in-process cluster adaptive between its bounds (in workers)."""
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
        # starting the cluster may take longer than the lease's timeout: keep the lease meanwhile
        renewer = leadership.renew_meanwhile()
        try:
            with (
                connect(
                    scheduler,
                    processes=processes,
                    n_workers=n_workers,
                    dashboard_address=dashboard_address,
                    allow_reruns=allow_reruns,
                    say=say,
                    adapt=adapt,
                ) as conn,
                _frozen_after_cold_start() as freeze,
            ):
                log.info("cluster up: %s", cluster_text(conn))
                if on_connected is not None:
                    on_connected(conn)
                dispatcher = _dispatcher(conn)
                with _collector_off():
                    driver = LiveDriver(
                        store,
                        dispatcher,
                        slots=slots,
                        cwd=cwd,
                        leadership=leadership,
                        db_outage_limit=db_outage_limit,
                    )
                driver.listeners.append(freeze)
                if stop.is_set():
                    driver.stop()
                cleanup = on_ready(driver, conn) if on_ready is not None else None
                until = utcnow() + duration if duration is not None else None
                core = driver.core
                keeper = Housekeeper(store, lambda: core.registry, utcnow).start()
                watcher = ConditionWatcher(_poster(driver), utcnow, cwd=driver.cwd).start()
                driver.listeners.append(watcher.on_step)
                try:
                    renewer.stop()  # from here on the loop renews it, every turn that polls
                    summary = driver.run(until_idle=until_idle, until=until)
                except LeaseLost:
                    lost = True
                    raise
                finally:
                    if not lost:  # and while it stops: cancelling, recording, closing the cluster
                        renewer = leadership.renew_meanwhile()
                    watcher.close()
                    keeper.close()
                    driver.shutdown(cancel=not conn.remote, record=not lost)
                    if cleanup is not None:
                        cleanup()
        except LeaseLost:
            lost = True
            raise
        finally:
            with contextlib.suppress(LeaseLost):
                renewer.stop()
            if not lost:
                leadership.release(utcnow())
    if interrupted or stop.is_set():
        summary.stopped_by = "signal"
    return summary


def cluster_text(conn: Connection) -> str:
    """``tcp://127.0.0.1:40123 (in-process, 4 threads)``: the scheduler and what it offers."""
    address = conn.client.scheduler.address if conn.client.scheduler is not None else "?"
    kind = "remote" if conn.remote else "in-process"
    threads = sum(conn.client.nthreads().values())
    return f"{address} ({kind}, {threads} thread{'s' if threads != 1 else ''})"


def _poster(driver: LiveDriver) -> Callable[[ConditionAnswered], None]:
    """How another thread hands the loop an event: into the inbox, and wake it."""

    def post(event: ConditionAnswered) -> None:
        driver.dispatcher.inbox.put(event)
        driver.dispatcher.wake.set()

    return post


class _ReachableCapacity(Dispatcher):
    """A dispatcher whose cluster adapts: it offers the threads it can grow to (at least)."""

    def __init__(self, conn: Connection, reachable_threads: int) -> None:
        super().__init__(conn.client, remote=conn.remote)
        self.reachable_threads = reachable_threads

    def threads_and_resources(self) -> tuple[int, tuple[dict[str, float], ...]]:
        threads, resources = super().threads_and_resources()
        return max(threads, self.reachable_threads), resources


def _dispatcher(conn: Connection) -> Dispatcher:
    if conn.reachable_threads is None:
        return Dispatcher(conn.client, remote=conn.remote)
    return _ReachableCapacity(conn, conn.reachable_threads)


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    """The cyclic collector paused while the block builds long-lived state (restored after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _frozen_after_cold_start() -> Iterator[Callable[[LiveDriver, Step], None]]:
    """A driver listener that, at the first step, collects and freezes the heap (see the module
    doc); the heap is unfrozen when the block ends, if it was frozen."""
    frozen = False

    def freeze(_driver: LiveDriver, _step: Step) -> None:
        nonlocal frozen
        if not frozen:
            frozen = True
            gc.collect()
            gc.freeze()

    try:
        yield freeze
    finally:
        if frozen:
            gc.unfreeze()


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
