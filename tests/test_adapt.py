"""An adaptive in-process cluster (``planner run --adapt MIN:MAX``), and the heap frozen after the
cold start.

- The planner's ready demand makes a real adaptive ``LocalCluster`` scale up: slots default to
  the threads of MAX workers, so ready runs queue on the scheduler, which is what Dask's
  ``Adaptive`` scales on; once idle, it scales back down. Dask's pace is shortened through its
  own config (``distributed.adaptive.*``); the test polls the scheduler with deadlines.
- ``--adapt`` values and conflicts are refused in one line, exit 1.
- ``run_planner`` freezes the heap (``gc.freeze``) after the first decision, and unfreezes it
  when the run ends.
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
from pathlib import Path
from typing import Any

import dask
import pytest
from click.testing import CliRunner

from planner.core.events import Step
from planner.interfaces.cli import cli
from planner.live.cluster import Adapt, Connection
from planner.live.loop import LiveDriver
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

JOBS = 20
# Dask's adaptive pace, shortened: decide every 100 ms, retire a worker after 3 idle looks, and
# size the cluster so that the queued work would take 1 s (Dask's default: 5 s)
FAST_ADAPT = {
    "distributed.adaptive.interval": "100ms",
    "distributed.adaptive.wait-count": 3,
    "distributed.adaptive.target-duration": "1s",
}


def _registry(tmp_path: Path, jobs: int, seconds: float) -> Path:
    path = tmp_path / "registry.yaml"
    entry = f"{{run: 'workflows.jobs.demo:sleep', params: {{seconds: {seconds}}}, retries: 0}}"
    path.write_text("processes:\n" + "".join(f"  nap_{i}: {entry}\n" for i in range(jobs)))
    return path


def _store(tmp_path: Path, jobs: int, seconds: float) -> SqlStore:
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([_registry(tmp_path, jobs, seconds)]), now=dt.datetime.now(dt.UTC))
    return store


@pytest.mark.integration
def test_ready_demand_scales_an_adaptive_cluster_up_and_idle_scales_it_down(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path, JOBS, 1.0)
    ready: dict[str, Any] = {}
    up = threading.Event()
    outcome: dict[str, Any] = {}

    def on_ready(driver: LiveDriver, conn: Connection) -> None:
        ready.update(driver=driver, client=conn.client, slots=driver.core.slots)
        ready["workers"] = len(conn.client.scheduler_info(n_workers=-1)["workers"])
        up.set()

    def plan() -> None:
        try:
            outcome["summary"] = run_planner(
                store,
                adapt=Adapt(minimum=1, maximum=4),
                dashboard_address="127.0.0.1:0",
                on_ready=on_ready,
            )
        except BaseException as exc:  # shown by the main thread
            outcome["error"] = exc
        finally:
            up.set()

    def workers() -> dict[str, Any]:
        info: dict[str, Any] = ready["client"].scheduler_info(n_workers=-1)["workers"]
        return info

    with dask.config.set(FAST_ADAPT):
        planner = threading.Thread(target=plan, name="adaptive-planner", daemon=True)
        planner.start()
        try:
            assert up.wait(120), "the planner did not start"
            assert "error" not in outcome, outcome.get("error")
            driver: LiveDriver = ready["driver"]
            # one worker of one thread, yet four slots: the threads of the maximum
            assert ready["workers"] == 1
            assert ready["slots"] == 4
            seen: set[str] = set()
            peak = 0

            def grown() -> bool:
                nonlocal peak
                now = workers()
                seen.update(now)
                peak = max(peak, len(now))
                assert peak <= 4, f"{peak} workers, above the maximum of 4"
                return peak >= 3

            wait_for(grown, timeout=120, what="the cluster to grow towards 4 workers")

            def all_done() -> bool:
                grown()
                return driver.summary.statuses["succeeded"] >= JOBS

            wait_for(all_done, timeout=180, what=f"{JOBS} succeeded runs")
            wait_for(lambda: len(workers()) == 1, timeout=60, what="the idle cluster to shrink")
            # the cluster's changing size never changed the slots
            assert driver.core.slots == 4
            allowed = ready["client"].run_on_scheduler(
                lambda dask_scheduler: dask_scheduler.allowed_failures
            )
        finally:
            if "driver" in ready:
                ready["driver"].stop()
            planner.join(120)
    store.close()
    assert not planner.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["summary"].statuses == {"succeeded": JOBS}
    # the workers Dask added are the in-process cluster's: TLS on loopback, no reruns by Dask
    assert len(seen) >= 3 and all(a.startswith("tls://127.0.0.1:") for a in seen)
    assert allowed == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4", "is not MIN:MAX"),
        ("a:b", "is not MIN:MAX"),
        ("1.5:4", "is not MIN:MAX"),
        ("4:1", "need 0 <= MIN <= MAX"),
        ("-1:2", "need 0 <= MIN <= MAX"),
        ("0:0", "MAX >= 1"),
    ],
)
def test_bad_adapt_values_are_refused_in_one_line(tmp_path: Path, value: str, message: str) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    result = CliRunner().invoke(cli, ["--db", url, "run", "--adapt", value], prog_name="planner")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "Error" in line]
    assert len(errors) == 1 and "--adapt" in errors[0] and message in errors[0], result.output
    assert not (tmp_path / "planner.db").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("extra", "message"), [(["--scheduler", "tcp://x:8786"], "--slots"), (["--workers", "2"], "")]
)
def test_adapt_is_for_the_in_process_cluster_alone(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    args = ["--db", url, "run", "--adapt", "1:4", *extra]
    result = CliRunner().invoke(cli, args, prog_name="planner")
    assert result.exit_code == 1, result.output
    assert "--adapt sizes the in-process cluster" in result.output and message in result.output


@pytest.mark.integration
def test_planner_run_adapt_starts_from_no_worker(tmp_path: Path) -> None:
    """``MIN`` 0: the cluster starts empty; queued demand brings a worker, which runs it all."""
    url = f"sqlite:///{tmp_path}/planner.db"
    registry = _registry(tmp_path, 3, 0.0)
    args = ["--db", url, "run", str(registry), "--adapt", "0:2", "--until-idle"]
    args += ["--dashboard-address", "127.0.0.1:0", "--page-port", "0"]
    with dask.config.set(FAST_ADAPT):
        result = CliRunner().invoke(cli, args, prog_name="planner")
    assert result.exit_code == 0, result.output
    store = SqlStore(url)
    try:
        statuses = sorted((a.process, a.status.value) for a in store.history())
    finally:
        store.close()
    assert statuses == [(f"nap_{i}", "succeeded") for i in range(3)]


def test_adapt_bounds() -> None:
    assert Adapt.parse(" 0:3 ") == Adapt(minimum=0, maximum=3)
    assert Adapt.parse("2:2") == Adapt(minimum=2, maximum=2)
    with pytest.raises(ValueError, match="need 0 <= MIN <= MAX"):
        Adapt(minimum=3, maximum=2)


@pytest.mark.integration
def test_the_runner_freezes_the_heap_after_the_first_decision(tmp_path: Path) -> None:
    store = _store(tmp_path, 1, 0.0)
    before = gc.get_freeze_count()
    frozen: list[int] = []

    def on_ready(driver: LiveDriver, conn: Connection) -> None:
        frozen.append(gc.get_freeze_count())  # not yet: nothing decided

        def after_step(_driver: LiveDriver, _step: Step) -> None:
            frozen.append(gc.get_freeze_count())

        driver.listeners.append(after_step)

    try:
        summary = run_planner(
            store,
            until_idle=True,
            processes=False,
            n_workers=1,
            dashboard_address="127.0.0.1:0",
            on_ready=on_ready,
        )
    finally:
        store.close()
    assert summary.statuses == {"succeeded": 1}
    assert frozen[0] == before
    assert len(frozen) > 1 and all(count > before for count in frozen[1:])
    assert gc.get_freeze_count() == before  # unfrozen when the run ended
    assert gc.isenabled()
