"""A condition that hangs past its timeout counts as false, with a timeout as its detail; it is
not asked again until the stuck call returns, and the planner keeps planning meanwhile.

The driver and the condition watcher are wired as ``planner run`` wires them
(``planner.live.runner``), with a short timeout, on a real in-process cluster and SQLite.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from planner.core.events import ConditionAnswered
from planner.live.conditions import ConditionWatcher
from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import RequestKind
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ASKED: Counter[str] = Counter()
ENTERED = threading.Event()
RELEASE = threading.Event()


def hangs() -> bool:
    """A condition stuck (on a lost mount, a query waiting for a lock) until the test lets it
    return; once let go, it answers true at once."""
    ASKED["hangs"] += 1
    ENTERED.set()
    RELEASE.wait(120)
    return True


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    ASKED.clear()
    ENTERED.clear()
    RELEASE.clear()
    yield
    RELEASE.set()  # no stuck thread outlives the test


def _answer(driver: LiveDriver, name: str) -> ConditionAnswered:
    """The core's answer of ``name``'s condition, once it holds one."""

    def held() -> ConditionAnswered | None:
        with driver.lock:
            return driver.core.states[name].condition

    found = wait_for(held, timeout=60, what=f"an answer of {name}'s condition")
    assert found is not None
    return found


def test_a_hanging_condition_times_out_as_false_and_the_planner_keeps_running(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(
        f"""
processes:
  stuck:
    run: workflows.jobs.demo:noop
    condition: {__name__}:hangs
    condition_interval: 0.2s
  other:
    run: workflows.jobs.demo:noop
    hold: true
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'planner.db'}")
    store.apply(load_files([path]), now=utcnow())
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)

        def post(event: ConditionAnswered) -> None:  # as ``planner run`` posts answers
            driver.dispatcher.inbox.put(event)
            driver.dispatcher.wake.set()

        watcher = ConditionWatcher(post, utcnow, cwd=driver.cwd, timeout_s=0.3).start()
        driver.listeners.append(watcher.on_step)
        thread = threading.Thread(target=driver.run, kwargs={"until_idle": True}, daemon=True)
        thread.start()
        try:
            assert ENTERED.wait(60), "the condition was never asked"
            timed_out = _answer(driver, "stuck")
            assert (timed_out.value, timed_out.detail) == (False, "timed out after 0.3s")
            with driver.lock:
                (reason,) = driver.core.states["stuck"].reasons
            assert reason.code.value == "condition"
            assert reason.detail.startswith("timed out after 0.3s (asked ")
            # the planner goes on: a request from another shell is acted on meanwhile
            store.update_process("other", {"hold": False})
            store.add_request(RequestKind.TRIGGER, at=utcnow(), process="other")
            wait_for(
                lambda: [a.status for a in store.history("other")] == [RunStatus.SUCCEEDED],
                timeout=60,
                what="the other process to run while the condition hangs",
            )
            # many intervals passed: a stuck ask is not asked again (asks would pile up)
            assert ASKED["hangs"] == 1 and store.history("stuck") == []
            assert thread.is_alive()  # --until-idle: a condition still to answer keeps it up
            RELEASE.set()  # the stuck call returns; the next ask answers true
            thread.join(60)
            assert not thread.is_alive()
        finally:
            RELEASE.set()
            driver.stop()
            thread.join(60)
            watcher.close()
            driver.shutdown(cancel=True)
    # asked again once released (more than once if the loop took longer than the 0.2 s a true
    # answer stays fresh here, on a loaded machine)
    assert ASKED["hangs"] >= 2
    assert [a.status for a in store.history("stuck")] == [RunStatus.SUCCEEDED]
    store.close()
