"""Chained dispatch on a real in-process cluster: successors handed to Dask ahead start when their
ancestor succeeds, and withdrawn ones never run and leave no record (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import random
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from planner.simulation.simulate import simulate
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import NewRun, Turn
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=4, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(autouse=True)
def _fresh_jobs() -> None:
    live_jobs.reset()


def _store(tmp_path: Path, text: str, url: str, values: dict[str, str] | None = None) -> SqlStore:
    for name, value in (values or {}).items():
        text = text.replace(name, value)
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    store = SqlStore(url)
    store.apply(load_files([path]), now=utcnow())
    return store


def _driver(store: SqlStore, client: Client) -> LiveDriver:
    return LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)


def _run_in_thread(driver: LiveDriver) -> threading.Thread:
    thread = threading.Thread(target=driver.run, kwargs={"until_idle": True}, daemon=True)
    thread.start()
    return thread


def test_a_chain_runs_each_link_ahead_in_order(
    tmp_path: Path, client: Client, store_url: str
) -> None:
    links = "\n".join(
        f"  s{i}: {{run: workflows.jobs.demo:noop{f', ancestors: [s{i - 1}]' if i else ''}}}"
        for i in range(6)
    )
    store = _store(tmp_path, f"processes:\n{links}\n", store_url)
    summary = _driver(store, client).run(until_idle=True)
    assert summary.statuses == {"succeeded": 6}
    assert summary.started == 6 and summary.ahead == 5  # every successor was handed over ahead
    runs = sorted(store.history(), key=lambda r: r.process)
    assert [r.run_id for r in runs] == [f"s{i}-1" for i in range(6)]
    for before, after in itertools.pairwise(runs):
        assert before.end is not None and after.start is not None and after.start >= before.end
        assert after.worker  # its start was recorded
    assert store.pending_runs() == [] and store.active_runs() == []


def test_a_failed_ancestor_withdraws_its_successor(
    tmp_path: Path, client: Client, store_url: str
) -> None:
    store = _store(
        tmp_path,
        """
processes:
  a: {run: workflows.jobs.demo:fail}
  b: {run: tests.live_jobs:flaky, params: {name: b, failures: 0}, ancestors: [a]}
""",
        store_url,
    )
    summary = _driver(store, client).run(until_idle=True)
    assert summary.statuses == {"failed": 1} and summary.started == 1
    assert live_jobs.CALLS["b"] == 0  # never ran
    assert [r.process for r in store.history()] == ["a"]  # no attempt of b, not even pending
    assert store.pending_runs() == []


def test_a_hold_withdraws_a_chained_run_before_it_starts(
    tmp_path: Path, client: Client, store_url: str
) -> None:
    store = _store(
        tmp_path,
        """
processes:
  a: {run: tests.live_jobs:gate, params: {name: a}}
  b: {run: tests.live_jobs:flaky, params: {name: b, failures: 0}, ancestors: [a]}
""",
        store_url,
    )
    driver = _driver(store, client)
    thread = _run_in_thread(driver)
    assert live_jobs.STARTED["a"].wait(30)
    wait_for(lambda: driver.core.chains() == [("b-1", "a-1")], 10, "b to be chained behind a")
    assert store.pending_runs() == [("b-1", 1)]  # recorded before it was handed to Dask
    store.update_process("b", {"hold": True})
    wait_for(lambda: driver.core.chains() == [], 10, "the chain to be withdrawn")
    wait_for(lambda: store.pending_runs() == [], 10, "its record to go")
    live_jobs.RELEASE["a"].set()
    thread.join(30)
    assert not thread.is_alive()
    assert live_jobs.CALLS["b"] == 0
    assert [(r.process, r.status) for r in store.history()] == [("a", RunStatus.SUCCEEDED)]


def test_a_restarted_planner_withdraws_what_an_earlier_one_chained(
    tmp_path: Path, client: Client, store_url: str
) -> None:
    store = _store(
        tmp_path,
        """
processes:
  ra: {run: workflows.jobs.demo:noop}
  rb: {run: workflows.jobs.demo:noop, ancestors: [ra]}
  rw: {run: workflows.jobs.demo:noop}
""",
        store_url,
    )
    now = utcnow() - timedelta(seconds=5)
    # (names of their own: the cluster is shared by this module's tests, keys included)
    # what a planner killed while ra-1 ran leaves: ra-1 queued, rb-1 pending behind it, and
    # rw-1 pending for the next slot to free
    store.record_turn(
        Turn(
            at=now,
            created=[
                NewRun(run_id="ra-1", process="ra", scheduled=now, queued=now),
                NewRun(run_id="rb-1", process="rb", scheduled=now, queued=now, pending=True),
                NewRun(run_id="rw-1", process="rw", scheduled=now, queued=now, pending=True),
            ],
        )
    )
    summary = _driver(store, client).run(until_idle=True)
    assert store.pending_runs() == []
    statuses = {(r.run_id, r.attempt): r.status for r in store.history()}
    # ra-1 was lost with its cluster and retried by policy (here: none); the pending runs died
    # with that cluster before they began: deleted, they leave no attempt and do not count,
    # so rw (a single process) runs — once it was recorded cancelled and never ran again
    assert statuses == {("ra-1", 1): RunStatus.FAILED, ("rw-1", 1): RunStatus.SUCCEEDED}
    assert summary.statuses == {"failed": 1, "succeeded": 1}  # rb waits for ra's success


def test_a_clean_stop_withdraws_chained_runs_and_records_the_rest(
    tmp_path: Path, client: Client, store_url: str
) -> None:
    store = _store(
        tmp_path,
        """
processes:
  sa: {run: tests.live_jobs:until_cancelled, params: {marker: "MARKER"}}
  sb: {run: tests.live_jobs:flaky, params: {name: sb, failures: 0}, ancestors: [sa]}
""",
        store_url,
        {"MARKER": str(tmp_path / "sa.started")},
    )
    driver = _driver(store, client)
    thread = threading.Thread(target=driver.run, daemon=True)
    thread.start()
    wait_for((tmp_path / "sa.started").exists, 30, "sa to start")
    wait_for(lambda: driver.core.chains() == [("sb-1", "sa-1")], 10, "sb to be chained")
    driver.stop()
    thread.join(30)
    driver.shutdown(cancel=True, grace=5)
    assert store.pending_runs() == [] and store.active_runs() == []
    assert [(r.process, r.status) for r in store.history()] == [("sa", RunStatus.CANCELLED)]
    assert live_jobs.CALLS["sb"] == 0


def _live_and_simulated(root: Path, client: Client, seed: int, size: int) -> int:
    """A random DAG of ``size`` no-op processes on one slot, run live (chaining on) until idle
    and simulated: asserts they start the same processes in the same order; returns how many
    live starts were chained."""
    rng = random.Random(seed)
    lines = ["slots: 1", "processes:"]
    names = [f"q{seed % 1000}_{i:02d}" for i in range(size)]
    for i, name in enumerate(names):
        ancestors = rng.sample(names[:i], k=min(i, rng.randint(0, 2)))
        lines += [
            f"  {name}:",
            "    run: workflows.jobs.demo:noop",
            f"    priority: {rng.randint(0, 2)}",
            f"    expected_duration: {rng.randint(1, 90)}s",
        ]
        if ancestors:
            lines.append(f"    ancestors: [{', '.join(ancestors)}]")
    store = _store(root, "\n".join(lines) + "\n", f"sqlite:///{root}/planner.db")
    summary = _driver(store, client).run(until_idle=True)
    live = [r.process for r in sorted(store.history(), key=lambda r: r.start or r.queued)]
    registry, _ = store.load_registry()
    store.close()
    sim = simulate(registry, start=utcnow(), until=utcnow() + timedelta(days=1))
    assert live == [r.process for r in sim.runs]
    assert summary.statuses == {"succeeded": len(names)}
    return summary.ahead


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_one_slot_the_live_order_is_the_simulated_order(
    tmp_path: Path, client: Client, seed: int
) -> None:
    """With one slot every decision is made at a completion, one at a time, so the order of
    starts depends on the rules alone: the live loop (chaining on) must start what simulate
    starts, in the same order — chained starts included."""
    assert _live_and_simulated(tmp_path, client, seed, 14) > 0  # not vacuous: some chained


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(min_value=3, max_value=2**31), size=st.integers(min_value=2, max_value=16))
def test_on_one_slot_live_and_simulated_decisions_agree_on_random_dags(
    client: Client, seed: int, size: int
) -> None:
    """The same, as a property: random DAGs, priorities and expected durations."""
    with tempfile.TemporaryDirectory() as root:
        _live_and_simulated(Path(root), client, seed, size)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.mark.parametrize("seed", [100, 101, 102])
def test_on_one_thread_the_next_run_waits_in_dask_and_the_order_is_still_simulated(
    tmp_path: Path, client: Client, one_thread: Client, seed: int
) -> None:
    """One thread for one slot: Dask cannot run more at once than the slot, so the run that
    takes the slot next is handed to Dask ahead, even where it is no successor of the run in
    flight (``planner.core.slot_ahead``); the order of starts is still simulate's, and nothing
    runs twice (each process succeeded once, one attempt each)."""
    (tmp_path / "four").mkdir()
    with_4_threads = _live_and_simulated(tmp_path / "four", client, seed, 14)
    ahead = _live_and_simulated(tmp_path, one_thread, seed, 14)
    assert ahead > with_4_threads  # not vacuous: runs handed over for the slot, not only chains


def test_a_planner_rebuilt_from_the_records_does_not_rerun_a_chained_descendant(
    tmp_path: Path, client: Client, store_url: str
) -> None:
    """A descendant handed to Dask ahead is recorded before its ancestor ends. The core rebuilt
    from the database (a restarted planner, ``plan`` in another shell) must see the ancestor's
    success as older than the descendant's start, as the planner that ran them did: once the
    descendant's refresh window has passed it waits for a new success of its ancestor, and
    does not run again on the old one."""
    from planner.interfaces.dry_run import dry_run_core

    store = _store(
        tmp_path,
        "processes:\n"
        "  root: {run: workflows.jobs.demo:noop}\n"
        "  child: {run: workflows.jobs.demo:noop, ancestors: [root], refresh_window: 1s}\n",
        store_url,
    )
    summary = _driver(store, client).run(until_idle=True)
    assert summary.statuses == {"succeeded": 2} and summary.ahead == 1  # child went ahead
    registry, applied = store.load_registry()
    later = utcnow() + timedelta(minutes=5)  # well past child's refresh window
    decisions = dry_run_core(store, registry, applied, later, None).plan(later)
    (child,) = [d for d in decisions if d.process == "child"]
    assert child.decision == "wait"
    assert [r.code.value for r in child.reasons] == ["ancestors"]
