"""The live driver on a real in-process LocalCluster with a real SQLite (and PostgreSQL) store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from sqlalchemy import text

from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import RequestKind
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


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


def _store(tmp_path: Path, yaml_text: str, url: str | None = None) -> SqlStore:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml_text)
    store = SqlStore(url or f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    return store


def _driver(store: SqlStore, client: Client, **kw: object) -> LiveDriver:
    return LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05, **kw)  # type: ignore[arg-type]


def _run_in_thread(driver: LiveDriver, **kw: object) -> threading.Thread:
    thread = threading.Thread(target=driver.run, kwargs=kw, daemon=True)
    thread.start()
    return thread


def test_ancestors_run_in_order(tmp_path: Path, client: Client, store_url: str) -> None:
    store = _store(
        tmp_path,
        """
slots: 3
processes:
  a: {run: workflows.jobs.demo:sleep, params: {seconds: 0.05}}
  b: {run: workflows.jobs.demo:sleep, params: {seconds: 0.1}}
  c: {run: workflows.jobs.demo:noop, ancestors: [a, b]}
  d: {run: workflows.jobs.demo:noop, ancestors: [c]}
""",
        store_url,
    )
    summary = _driver(store, client).run(until_idle=True)
    assert summary.statuses == {"succeeded": 4}
    runs = {r.process: r for r in store.history()}
    assert runs["c"].start is not None and runs["a"].end is not None and runs["b"].end is not None
    assert runs["c"].start >= max(runs["a"].end, runs["b"].end)
    assert runs["d"].start is not None and runs["c"].end is not None
    assert runs["d"].start >= runs["c"].end
    assert all(r.worker for r in runs.values())


def test_retries_with_delay_then_success(tmp_path: Path, client: Client, store_url: str) -> None:
    store = _store(
        tmp_path,
        """
processes:
  shaky:
    run: tests.live_jobs:flaky
    params: {name: shaky, failures: 2}
    retries: 3
    retry_delay: 0.2s
    retry_backoff: 2
""",
        store_url,
    )
    _driver(store, client).run(until_idle=True)
    attempts = sorted(store.history("shaky"), key=lambda r: r.attempt)
    assert [a.status for a in attempts] == [RunStatus.FAILED, RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert attempts[0].error is not None and attempts[0].error.type == "RuntimeError"
    assert "fails on purpose" in attempts[0].error.message
    # the delays: 0.2 s after the first failure, 0.4 s after the second
    assert attempts[0].end is not None and attempts[1].start is not None
    assert attempts[1].start - attempts[0].end >= timedelta(seconds=0.2)
    assert attempts[1].end is not None and attempts[2].start is not None
    assert attempts[2].start - attempts[1].end >= timedelta(seconds=0.4)
    assert {a.run_id for a in attempts} == {"shaky-1"}


def test_retries_exhausted_single_waits_for_reset(tmp_path: Path, client: Client) -> None:
    store = _store(
        tmp_path,
        """
processes:
  broken: {run: workflows.jobs.demo:fail, retries: 1, retry_delay: 0}
""",
    )
    driver = _driver(store, client)
    driver.run(until_idle=True)
    statuses = [a.status for a in store.history("broken")]
    assert statuses == [RunStatus.FAILED, RunStatus.FAILED]
    decision = next(d for d in driver.core.plan(utcnow()) if d.process == "broken")
    assert [r.code.value for r in decision.reasons] == ["failed"]


def test_command_timeout_kills_the_process(tmp_path: Path, client: Client) -> None:
    store = _store(
        tmp_path,
        """
processes:
  hang: {command: "sleep 60", timeout: 1s}
""",
    )
    _driver(store, client).run(until_idle=True)
    (attempt,) = store.history("hang")
    assert attempt.status is RunStatus.TIMED_OUT
    assert attempt.duration_s is not None and attempt.duration_s < 30


def test_cancel_a_running_run(tmp_path: Path, client: Client) -> None:
    marker = tmp_path / "started"
    store = _store(
        tmp_path,
        f"""
processes:
  long: {{run: tests.live_jobs:until_cancelled, params: {{marker: "{marker}"}}}}
""",
    )
    driver = _driver(store, client)
    thread = _run_in_thread(driver, until_idle=True)
    wait_for(marker.exists, 30, "the job to start")
    store.add_request(RequestKind.CANCEL, at=utcnow(), run_id="long-1")
    thread.join(30)  # the job returns once it sees ctx.cancelled
    assert not thread.is_alive()
    (attempt,) = store.history("long")
    assert attempt.status is RunStatus.CANCELLED
    assert store.active_runs() == []


def test_trigger_and_hold_while_running(tmp_path: Path, client: Client) -> None:
    store = _store(
        tmp_path,
        """
processes:
  blocker: {run: tests.live_jobs:gate, params: {name: blocker}}
  once: {run: workflows.jobs.demo:noop}
""",
    )
    driver = _driver(store, client)
    thread = _run_in_thread(driver, until_idle=True)
    assert live_jobs.STARTED["blocker"].wait(30)
    # as if from another shell: trigger `once` again (it already ran) and hold `blocker`
    store.add_request(RequestKind.TRIGGER, at=utcnow(), process="once", params={})
    store.update_process("blocker", {"hold": True})
    live_jobs.RELEASE["blocker"].set()
    thread.join(30)
    assert not thread.is_alive()
    assert [a.status for a in store.history("once")] == [RunStatus.SUCCEEDED] * 2
    assert driver.core.registry.processes["blocker"].hold


def test_worker_killed_mid_job_is_a_failed_attempt_then_retried(tmp_path: Path) -> None:
    import contextlib
    import os

    import dask
    from distributed.comm.core import CommClosedError

    from planner.live.cluster import PLANNER_DASK_CONFIG

    marker = tmp_path / "worker.txt"
    store = _store(
        tmp_path,
        f"""
processes:
  victim:
    run: tests.live_jobs:mark_and_sleep
    params: {{marker: "{marker}"}}
    retries: 1
    retry_delay: 0
""",
    )
    with (
        dask.config.set(PLANNER_DASK_CONFIG),
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        driver = _driver(store, c)
        thread = _run_in_thread(driver, until_idle=True)
        address = wait_for(lambda: marker.exists() and marker.read_text(), what="the job to start")
        with contextlib.suppress(CommClosedError):  # the worker dies before it can answer
            c.run(os._exit, 1, workers=[address])
        thread.join(60)
        assert not thread.is_alive()
    attempts = sorted(store.history("victim"), key=lambda r: r.attempt)
    assert [a.status for a in attempts] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    assert attempts[0].error is not None
    assert attempts[0].error.type in ("KilledWorker", "FutureCancelledError", "CancelledError")


def test_a_trigger_is_durable_across_planner_restarts(tmp_path: Path, client: Client) -> None:
    """A trigger that waits (for its ancestor) survives a planner stop: the next planner still
    has it, ``status`` shows it, and the run that finally starts carries its params and id."""
    store = _store(
        tmp_path,
        """
processes:
  a: {run: workflows.jobs.demo:noop, hold: true}
  p: {run: workflows.jobs.demo:sleep, ancestors: [a]}
""",
    )
    params = {"seconds": 0.01}
    request = store.add_request(RequestKind.TRIGGER, at=utcnow(), process="p", params=params)
    first = _driver(store, client)
    first.run(until_idle=True)
    assert [r.id for r in store.pending_requests()] == [request]  # still pending, not dropped
    assert "triggered (#" in str(first.core.states["p"].reasons)

    store.update_process("a", {"hold": False})
    second = _driver(store, client)  # a new planner: the trigger is still there
    second.run(until_idle=True)
    runs = {a.process: a for a in store.history()}
    assert runs["p"].status is RunStatus.SUCCEEDED
    assert store.pending_requests() == []
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT params, request_id FROM runs WHERE process = 'p'")).one()
    assert row.request_id == request
    assert (json.loads(row.params) if isinstance(row.params, str) else row.params) == params
