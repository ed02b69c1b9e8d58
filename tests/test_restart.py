"""Restart safety with real processes: a planner killed with SIGKILL mid-run and started again.

Every run must end in exactly one terminal state: no success recorded that did not happen, no
attempt run twice because of the restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _planner(*args: str) -> list[str]:
    exe = BIN / "planner"
    return [str(exe) if exe.exists() else shutil.which("planner") or "planner", *args]


def _registry(tmp_path: Path, names: list[str], retries: int = 1) -> Path:
    lines = ["processes:"]
    for name in names:
        lines += [
            f"  {name}:",
            "    run: tests.live_jobs:wait_for_file",
            f"    params: {{marker: '{tmp_path / (name + '.started')}',"
            f" release: '{tmp_path / (name + '.release')}'}}",
            f"    retries: {retries}",
            "    retry_delay: 0",
        ]
    path = tmp_path / "registry.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )


def _terminal_states(db: str) -> dict[str, list[tuple[int, RunStatus]]]:
    store = SqlStore(db)
    try:
        out: dict[str, list[tuple[int, RunStatus]]] = {}
        for a in sorted(store.history(), key=lambda a: (a.run_id, a.attempt)):
            out.setdefault(a.run_id, []).append((a.attempt, a.status))
        assert store.active_runs() == []
        return out
    finally:
        store.close()


def test_sigkill_with_in_process_cluster_marks_lost_and_retries(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    registry = _registry(tmp_path, ["job"])
    first = _start(
        _planner("--db", db, "run", str(registry), "--local-threads"), tmp_path / "first.log"
    )
    try:
        wait_for(lambda: (tmp_path / "job.started").exists(), 60, "the job to start")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    (tmp_path / "job.started").unlink()
    (tmp_path / "job.release").write_text("go")
    second = subprocess.run(
        _planner("--db", db, "run", "--until-idle", "--local-threads"),
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stdout.decode() + second.stderr.decode()
    runs = _terminal_states(db)
    # attempt 1 died with the planner's in-process cluster: lost, then retried once
    assert runs == {"job-1": [(1, RunStatus.FAILED), (2, RunStatus.SUCCEEDED)]}
    store = SqlStore(db)
    lost = next(a for a in store.history("job") if a.attempt == 1)
    store.close()
    assert lost.error is not None and lost.error.type == "RunLost"


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A real scheduler and worker in their own processes, like a user's remote cluster."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [
        _start(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            tmp_path / "scheduler.log",
            # a worker's death fails its attempt; the planner refuses a scheduler that re-runs
            env={**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"},
        )
    ]
    try:
        wait_for(scheduler_file.exists, 60, "the scheduler file")
        procs.append(
            _start(
                [
                    str(BIN / "dask"),
                    "worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--nthreads",
                    "4",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                tmp_path / "worker.log",
            )
        )
        import json

        from distributed import Client

        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_sigkill_with_remote_cluster_reattaches_without_rerunning(
    tmp_path: Path, dask_cluster: str
) -> None:
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    registry = _registry(tmp_path, ["early", "late"], retries=0)
    first = _start(
        _planner("--db", db, "run", str(registry), "--scheduler", dask_cluster),
        tmp_path / "first.log",
    )
    try:
        wait_for(
            lambda: (tmp_path / "early.started").exists() and (tmp_path / "late.started").exists(),
            60,
            "both jobs to start",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    # `early` finishes while no planner runs; `late` is still running when the planner returns
    (tmp_path / "early.release").write_text("go")
    second = _start(
        _planner("--db", db, "run", "--until-idle", "--scheduler", dask_cluster),
        tmp_path / "second.log",
    )
    try:
        store = SqlStore(db)
        wait_for(
            lambda: any(a.status is RunStatus.SUCCEEDED for a in store.history("early")),
            60,
            "the restarted planner to collect early's outcome",
        )
        store.close()
        (tmp_path / "late.release").write_text("go")
        assert second.wait(120) == 0, (tmp_path / "second.log").read_text()
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    runs = _terminal_states(db)
    assert runs == {
        "early-1": [(1, RunStatus.SUCCEEDED)],
        "late-1": [(1, RunStatus.SUCCEEDED)],
    }


def test_sigkill_with_remote_cluster_leaves_commands_running(
    tmp_path: Path, dask_cluster: str
) -> None:
    """Commands are killed with their worker, never with the planner of a remote cluster."""
    release = tmp_path / "release"
    command = (
        f"echo $$ > {tmp_path / 'cmd.pid'}; "
        f"while [ ! -e {release} ]; do sleep 0.02; done; echo survived"
    )
    registry = tmp_path / "registry.yaml"
    registry.write_text(f"processes:\n  cmd:\n    command: {json.dumps(command)}\n    retries: 0\n")
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    remote = ["--scheduler", dask_cluster, "--page-port", "0"]
    first = _start(
        _planner("--db", db, "run", str(registry), *remote),
        tmp_path / "first.log",
    )
    try:
        wait_for(lambda: (tmp_path / "cmd.pid").exists(), 60, "the command to start")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    release.write_text("go")
    second = subprocess.run(
        _planner("--db", db, "run", "--until-idle", *remote),
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stdout.decode() + second.stderr.decode()
    assert _terminal_states(db) == {"cmd-1": [(1, RunStatus.SUCCEEDED)]}
    store = SqlStore(db)
    (attempt,) = store.history("cmd")
    store.close()
    assert attempt.result == "survived"
