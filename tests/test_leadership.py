"""One planner at a time, with real processes: three ``planner run`` on one database, the lease
holder killed with SIGKILL mid-run, a standby taking over — on SQLite and on real PostgreSQL.

Each job is a command that logs its start and end (with its run id, attempt and pid) to a file
and sleeps. Nothing may run twice: no (run, attempt) starts twice, no two executions of one
process overlap (the killed planner's work dies with it before a retry starts), and every process
ends with exactly one success; no run is left queued or running.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JOBS = 6

JOB = (
    "import os, sys, time\n"
    "log = sys.argv[1]\n"
    "me = f\"{os.environ['PLANNER_PROCESS']} {os.environ['PLANNER_RUN_ID']} "
    "{os.environ['PLANNER_ATTEMPT']} {os.getpid()}\"\n"
    "open(log, 'a').write(f'start {me} {time.time()}\\n')\n"
    "time.sleep(float(sys.argv[2]))\n"
    "open(log, 'a').write(f'end {me} {time.time()}\\n')\n"
)


def _planner(*args: str) -> list[str]:
    exe = BIN / "planner"
    return [str(exe) if exe.exists() else shutil.which("planner") or "planner", *args]


def _registry(tmp_path: Path) -> Path:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    log = tmp_path / "executions.log"
    lines = ["slots: 2", "processes:"]
    for i in range(JOBS):
        lines += [
            f"  job{i}:",
            # long enough that the first planner still runs them when the standbys come up
            f"    command: ['{sys.executable}', '{script}', '{log}', '5']",
            "    retries: 2",
        ]
    path = tmp_path / "registry.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _executions(tmp_path: Path) -> list[tuple[str, str, str, int, float]]:
    log = tmp_path / "executions.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        kind, process, run_id, attempt, pid, at = line.split()
        out.append((kind, process, f"{run_id}#{attempt}", int(pid), float(at)))
    return out


def _status(db: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        _planner("--db", db, "status", "--format", "json"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["planner"]  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'planner.db'}"
    else:
        yield str(request.getfixturevalue("pg_url"))


def test_three_planners_kill_the_holder_nothing_runs_twice_nothing_is_lost(
    db: str, tmp_path: Path
) -> None:
    registry = _registry(tmp_path)
    args = ["--db", db, "run", str(registry), "--until-idle", "--lease-timeout", "3s"]
    args += ["--workers", "1", "--dashboard-address", ":0", "--page-port", "0"]
    planners: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            _planner(*args),
            cwd=REPO,
            stdout=(tmp_path / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        planners.append(proc)
        return proc

    try:
        first = start("first")
        wait_for(lambda: any(e[0] == "start" for e in _executions(tmp_path)), 90, "a job to start")
        leader = _status(db)["leader"]
        assert leader is not None and leader["pid"] == first.pid
        second, third = start("second"), start("third")
        wait_for(lambda: len(_status(db)["standbys"]) == 2, 60, "two standbys")
        assert "standby: waiting for the lease held by" in wait_for(
            lambda: (tmp_path / "second.log").read_text(), 30, "the standby's message"
        )

        running = {e[2]: e[3] for e in _executions(tmp_path) if e[0] == "start"}
        os.kill(first.pid, signal.SIGKILL)
        killed_at = time.time()
        first.wait(30)
        # the dead planner's work dies with it, well before a standby may take over
        wait_for(
            lambda: not any(psutil.pid_exists(pid) for pid in running.values()),
            10,
            "the killed planner's commands to die",
        )
        new = wait_for(
            lambda: (s := _status(db)["leader"]) is not None and s["pid"] != first.pid and s,
            30,
            "a standby to take over",
        )
        assert new["pid"] in (second.pid, third.pid)
        for proc in (second, third):
            assert proc.wait(180) == 0, (tmp_path / "second.log").read_text()
    finally:
        for proc in planners:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)

    executions = _executions(tmp_path)
    starts = [e[2] for e in executions if e[0] == "start"]
    assert len(starts) == len(set(starts)), f"an attempt ran twice: {executions}"
    by_process: dict[str, list[tuple[float, float | None]]] = {}
    for kind, process, attempt, _pid, at in executions:
        if kind == "start":
            ends = [e[4] for e in executions if e[0] == "end" and e[2] == attempt]
            by_process.setdefault(process, []).append((at, ends[0] if ends else None))
    for process, spans in by_process.items():
        spans.sort()
        for (_, end), (next_start, _) in itertools.pairwise(spans):
            # an execution that never ended was killed with its planner, before the takeover
            assert (end if end is not None else killed_at) <= next_start, (process, spans)

    with SqlStore(db) as store:
        assert store.active_runs() == []
        succeeded: dict[str, int] = {}
        for a in store.history(limit=1000):
            if a.status is RunStatus.SUCCEEDED:
                succeeded[a.process] = succeeded.get(a.process, 0) + 1
        assert succeeded == {f"job{i}": 1 for i in range(JOBS)}
        lease = store.lease_state()
        assert lease.holder is None  # the last planner released it
        roles = {p.pid: p.role for p in lease.planners}
        assert roles[second.pid] == roles[third.pid] == "stopped"


def test_a_paused_holder_cannot_write_when_it_wakes_up(tmp_path: Path) -> None:
    """SIGSTOP the holder past its lease: a standby takes over (marking its run lost and
    retrying it); when the old holder wakes up its writes are fenced off, and it stops with a
    clear message instead of recording over the new holder's work."""
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    markers, release = tmp_path / "markers", tmp_path / "release"
    markers.mkdir()
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "processes:\n"
        "  job:\n"
        "    run: tests.live_jobs:attempt_gate\n"
        f"    params: {{markers: '{markers}', release: '{release}'}}\n"
        "    retries: 2\n"
    )
    args = ["--db", db, "run", str(registry), "--until-idle", "--lease-timeout", "2s"]
    args += ["--local-threads", "--dashboard-address", ":0", "--page-port", "0"]

    def start(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            _planner(*args),
            cwd=REPO,
            stdout=(tmp_path / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    first = start("first")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: (markers / "attempt-1").exists(), 60, "attempt 1 to start")
        # pause it between writes: a process stopped inside a SQLite write keeps the file locked
        wait_for(lambda: _attempt_running(db), 30, "attempt 1 recorded as running")
        os.kill(first.pid, signal.SIGSTOP)
        second = start("second")
        wait_for(lambda: (markers / "attempt-2").exists(), 60, "the standby to retry the run")
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(60) == 1
        said = (tmp_path / "first.log").read_text()
        assert "lost the lease" in said and "may no longer write" in said
        with SqlStore(db) as store:
            attempts = {a.attempt: a for a in store.history("job")}
            assert attempts[1].status is RunStatus.FAILED
            assert attempts[1].error is not None and attempts[1].error.type == "RunLost"
            assert attempts[2].status is RunStatus.RUNNING  # untouched by the old holder
        release.write_text("go")
        assert second.wait(60) == 0, (tmp_path / "second.log").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
    with SqlStore(db) as store:
        assert [
            (a.attempt, a.status) for a in sorted(store.history("job"), key=lambda a: a.attempt)
        ] == [
            (1, RunStatus.FAILED),
            (2, RunStatus.SUCCEEDED),
        ]
        assert store.active_runs() == []


def _attempt_running(db: str) -> bool:
    with SqlStore(db) as store:
        return any(r.status is RunStatus.RUNNING for r in store.active_runs())
