"""An attempt's work ends with the attempt: cancel, timeout and the death of its planner.

Real parts only: a LocalCluster with worker processes, real ``planner run`` subprocesses stopped
with real signals, real shell commands that leave a process in the group and one ``setsid``
grandchild in a session of its own. Every process of an attempt carries the test's token in its
environment (``PLANNER_PARAM_TOKEN``), so "nothing of the attempt survives" is checked with psutil
independently of how the planner tracks them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dask
import psutil
import pytest
from distributed import Client, LocalCluster

from planner.live import recording
from planner.live.cluster import PLANNER_DASK_CONFIG
from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from planner.live.worker.outcome import MESSAGE_MAX_CHARS, TRACEBACK_MAX_CHARS
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import RequestKind
from registry.storage.sqlstore import SqlStore
from tests.test_restart import REPO, _planner
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        dask.config.set(PLANNER_DASK_CONFIG),
        LocalCluster(
            processes=True, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


# --- the processes of one attempt ---------------------------------------------------------------


def forking_command(tmp: Path) -> str:
    """A shell that records its pid, starts a ``setsid`` grandchild (own session, own group) that
    records its pid, and sleeps — with a ``sleep`` of its own in its process group."""
    return (
        f"echo $$ > {tmp}/leader.pid; "
        f"setsid sh -c 'echo $$ > {tmp}/escaped.pid; exec sleep 30' & "
        "sleep 30"
    )


def command_started(tmp: Path) -> bool:
    return all((tmp / name).exists() and (tmp / name).read_text().strip() for name in PIDFILES)


PIDFILES = ("leader.pid", "escaped.pid")


def processes_of(token: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``token``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.status() != psutil.STATUS_ZOMBIE
                and proc.environ().get("PLANNER_PARAM_TOKEN") == token
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def token() -> Iterator[str]:
    """A token to find the attempt's processes by; whatever survives a test is killed after it."""
    value = uuid.uuid4().hex
    yield value
    for proc in processes_of(value):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def wait_started(tmp: Path, token: str) -> None:
    wait_for(lambda: command_started(tmp), 60, "the command and its grandchild to start")
    # the leader, its sleep and the escaped grandchild
    wait_for(lambda: len(processes_of(token)) >= 3, 10, "the attempt's three processes")


def assert_all_gone(token: str, tmp: Path, what: str) -> None:
    pids = {name: int((tmp / name).read_text()) for name in PIDFILES}
    wait_for(lambda: not processes_of(token), 15, f"every process of the attempt to die {what}")
    for name, pid in pids.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
            name
        )


# --- a driver in this process, on worker processes ----------------------------------------------


def _store(tmp_path: Path, yaml_text: str) -> SqlStore:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml_text)
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    return store


def _driver(store: SqlStore, client: Client) -> LiveDriver:
    return LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)


def _run_in_thread(driver: LiveDriver) -> threading.Thread:
    thread = threading.Thread(target=driver.run, kwargs={"until_idle": True}, daemon=True)
    thread.start()
    return thread


def _reasons(driver: LiveDriver, process: str) -> list[str]:
    for entry in driver.snapshot()["queue"]:
        if entry["process"] == process:
            return [r["code"] for r in entry["reasons"]]
    return []


def test_cancel_kills_the_commands_group_and_escaped_descendants(
    tmp_path: Path, client: Client, token: str
) -> None:
    store = _store(
        tmp_path,
        f"""
processes:
  work:
    command: {json.dumps(forking_command(tmp_path))}
    params: {{token: "{token}"}}
""",
    )
    driver = _driver(store, client)
    thread = _run_in_thread(driver)
    wait_started(tmp_path, token)
    store.add_request(RequestKind.CANCEL, at=utcnow(), run_id="work-1")
    assert_all_gone(token, tmp_path, "after the cancel")
    thread.join(30)
    assert not thread.is_alive()
    (attempt,) = store.history("work")
    assert attempt.status is RunStatus.CANCELLED
    assert attempt.worker in client.scheduler_info()["workers"]  # the worker's own account
    assert store.active_runs() == []


def test_a_cancelled_callable_sees_ctx_cancelled(tmp_path: Path, client: Client) -> None:
    marker = tmp_path / "started"
    store = _store(
        tmp_path,
        f"""
processes:
  polite: {{run: tests.live_jobs:until_cancelled, params: {{marker: "{marker}"}}}}
""",
    )
    driver = _driver(store, client)
    thread = _run_in_thread(driver)
    wait_for(marker.exists, 30, "the callable to start")
    store.add_request(RequestKind.CANCEL, at=utcnow(), run_id="polite-1")
    thread.join(30)
    assert not thread.is_alive()
    (attempt,) = store.history("polite")
    assert attempt.status is RunStatus.CANCELLED
    assert attempt.duration_s is not None and attempt.duration_s < 30  # it stopped when told


LINGERING = """
slots: 1
processes:
  stubborn:
    run: tests.live_jobs:linger
    params: {{marker: "{marker}", release: "{release}"}}
    {extra}
  after: {{run: workflows.jobs.demo:noop, hold: true}}
"""


def _slot_stays_busy(tmp_path: Path, client: Client, *, cancel: bool) -> None:
    """``stubborn`` ignores its cancel/timeout until released: ``after`` must wait for it."""
    marker, release = tmp_path / "started", tmp_path / "release"
    extra = "" if cancel else "timeout: 0.5s"
    store = _store(tmp_path, LINGERING.format(marker=marker, release=release, extra=extra))
    driver = _driver(store, client)
    thread = _run_in_thread(driver)
    wait_for(marker.exists, 30, "stubborn to start")
    store.update_process("after", {"hold": False})
    if cancel:
        store.add_request(RequestKind.CANCEL, at=utcnow(), run_id="stubborn-1")
    wait_for(Path(f"{marker}.cancelled").exists, 30, "stubborn to see ctx.cancelled")
    if not cancel:  # past the planner's backstop for a worker that never answers
        (queued,) = [a.queued for a in store.history("stubborn")]
        backstop = queued + timedelta(seconds=0.5) + recording.TIMEOUT_GRACE
        wait_for(lambda: utcnow() > backstop + timedelta(seconds=0.3), 10, "the backstop")
    wait_for(lambda: _reasons(driver, "after") == ["slots"], 10, "after to wait for the slot")
    # the planner has seen the cancel/timeout; stubborn's thread still runs and keeps the slot
    assert store.history("after") == []
    assert [r.run_id for r in store.active_runs()] == ["stubborn-1"]
    released_at = utcnow()
    release.write_text("go")
    thread.join(30)
    assert not thread.is_alive()
    (stubborn,) = store.history("stubborn")
    (after,) = store.history("after")
    assert stubborn.status is (RunStatus.CANCELLED if cancel else RunStatus.TIMED_OUT)
    assert stubborn.end is not None and stubborn.end >= released_at  # its thread's real end
    assert after.status is RunStatus.SUCCEEDED
    assert after.start is not None and after.start >= stubborn.end


def test_a_cancelled_callable_keeps_its_slot_until_its_thread_returns(
    tmp_path: Path, client: Client
) -> None:
    _slot_stays_busy(tmp_path, client, cancel=True)


def test_a_timed_out_callable_keeps_its_slot_until_its_thread_returns(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the planner's backstop for silent workers fires soon after the timeout: it must not free a
    # slot whose worker said the thread still runs
    monkeypatch.setattr(recording, "TIMEOUT_GRACE", timedelta(seconds=1))
    _slot_stays_busy(tmp_path, client, cancel=False)


def test_a_huge_error_is_bounded_on_the_worker(tmp_path: Path, client: Client) -> None:
    store = _store(
        tmp_path,
        """
processes:
  loud: {run: tests.live_jobs:raise_huge, params: {size: 50000000}}
""",
    )
    started = time.monotonic()
    summary = _driver(store, client).run(until_idle=True)
    assert time.monotonic() - started < 30
    assert summary.statuses == {"failed": 1}
    (attempt,) = store.history("loud")
    assert attempt.error is not None and attempt.error.type == "RuntimeError"
    assert len(attempt.error.message) <= MESSAGE_MAX_CHARS
    assert attempt.error.message.startswith("xxxx")
    assert len(attempt.error.traceback) <= TRACEBACK_MAX_CHARS
    assert "raise_huge" in attempt.error.traceback
    store.close()
    assert (tmp_path / "planner.db").stat().st_size < 2_000_000


# --- a real `planner run` that is stopped or killed ---------------------------------------------


@pytest.mark.parametrize("stop", ["sigkill", "sigterm", "for"])
def test_a_stopped_planner_leaves_no_command_running(tmp_path: Path, token: str, stop: str) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "processes:\n"
        "  work:\n"
        f"    command: {json.dumps(forking_command(tmp_path))}\n"
        f"    params: {{token: '{token}'}}\n"
        "    retries: 0\n"
    )
    args = ["run", str(registry), "--workers", "1", "--dashboard-address", ":0"]
    args += ["--page-port", "0"] + (["--for", "4s"] if stop == "for" else [])
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    log = tmp_path / "planner.log"
    planner = subprocess.Popen(
        _planner("--db", db, *args),
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_started(tmp_path, token)
        if stop == "sigkill":
            os.kill(planner.pid, signal.SIGKILL)
        elif stop == "sigterm":
            os.kill(planner.pid, signal.SIGTERM)
        planner.wait(60)
        assert_all_gone(token, tmp_path, f"after the planner's stop ({stop})")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(planner.pid, signal.SIGKILL)  # its worker processes, if anything is left
        planner.wait(30)
