"""Turns that gather ends: while Dask holds many of the planner's runs that no thread has begun
(slots well above the cluster's threads), refilling the freed slots at once gains nothing, so
the live loop waits up to ``GATHER_S`` for more ends and records them in one turn. With as many
slots as threads, each end is a turn of its own at once. On a real in-process cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from planner.live import loop
from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver
from registry.model import ProcessDef, RegistryDef
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

JOBS = 400


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _ends_per_turn(tmp_path: Path, client: Client, slots: int) -> list[int]:
    """Run JOBS independent no-op processes; the number of ends each written turn recorded."""
    processes = {
        f"j{i:04d}": ProcessDef(name=f"j{i:04d}", run="workflows.jobs.demo:noop")
        for i in range(JOBS)
    }
    store = SqlStore(f"sqlite:///{tmp_path / 'turns.db'}")
    try:
        store.apply(RegistryDef(slots=slots, processes=processes), now=datetime.now(UTC))
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=1.0)
        turns: list[int] = []
        driver.listeners.append(lambda _driver, step: turns.append(len(step.settled)))
        summary = driver.run(until_idle=True)
        assert summary.statuses == {"succeeded": JOBS}
        assert len(store.history(limit=None)) == JOBS  # every end recorded, once
    finally:
        store.close()
    return [n for n in turns if n]


def test_with_a_deep_queue_in_dask_a_turn_records_many_ends(tmp_path: Path, client: Client) -> None:
    ends = _ends_per_turn(tmp_path, client, slots=64)  # one thread: 63 runs wait in Dask
    assert sum(ends) == JOBS
    # taken one by one, as they come, the turns record one or two ends each
    assert len(ends) <= JOBS / 2, f"{len(ends)} turns for {JOBS} ends"


def test_with_as_many_slots_as_threads_nothing_waits_to_be_gathered(
    tmp_path: Path, client: Client
) -> None:
    ends = _ends_per_turn(tmp_path, client, slots=1)  # the next run waits for this turn
    assert ends == [1] * JOBS


def test_a_stop_while_ends_gather_records_every_end_gathered(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver stopped while it gathers ends still records them: an end taken from Dask and
    never recorded would leave its run queued or running, and the next planner would take it
    for lost and run it again."""
    monkeypatch.setattr(loop, "GATHER_S", 60.0)  # a gather that only the stop ends
    processes = {
        f"j{i:04d}": ProcessDef(name=f"j{i:04d}", run="workflows.jobs.demo:noop")
        for i in range(JOBS)
    }
    store = SqlStore(f"sqlite:///{tmp_path / 'stop.db'}")
    try:
        store.apply(RegistryDef(slots=64, processes=processes), now=datetime.now(UTC))
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=60.0)
        thread = threading.Thread(target=driver.run, kwargs={"until_idle": True}, daemon=True)
        thread.start()
        wait_for(lambda: driver._gathering is not None, 60, "the loop to gather ends")
        wait_for(lambda: driver.dispatcher.inbox.empty(), 60, "an end taken and gathered")
        driver.stop()
        thread.join(60)
        assert not thread.is_alive()
        attempts = store.history(limit=None)
        assert any(a.status.terminal for a in attempts)  # the gathered ends, recorded
        in_flight = set(driver.dispatcher.futures)
        lost = [
            (a.run_id, a.attempt)
            for a in attempts
            if not a.status.terminal and (a.run_id, a.attempt) not in in_flight
        ]
        assert lost == []  # every run not recorded as ended is still in Dask's hands
    finally:
        store.close()
