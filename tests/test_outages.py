"""Database outages with real servers and processes: ``planner run`` rides them out (issue 8).

- A private PostgreSQL server (``initdb`` + ``pg_ctl`` in a temporary directory, on a free port,
  as the ``postgres`` OS user — never the shared server) is restarted while jobs run: the planner
  keeps what finishes in memory, writes it when the server is back, and finishes every job once.
- The server stays down past ``--db-outage-limit``: the planner gives up with a message naming
  the limit (exit 1), and once the server is back the next planner finishes the work.
- Another process holds SQLite's write lock longer than the busy timeout: the same.
- ``Outage`` itself (backoff, limit, what counts as an outage) on a fake clock.

Each job is a command that logs its start and end (process, run id, attempt) and sleeps 1 s (or
waits for a release file).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from planner.live.outage import DatabaseUnavailable, Outage, is_outage
from registry.errors import PlannerError
from registry.lifecycle import RunStatus
from registry.storage.engine import SQLITE_BUSY_TIMEOUT_ENV, sqlite_busy_timeout_s
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUTAGE_S = 2.5  # how long the database is away in the restart scenarios

JOB = (
    "import os, sys, time\n"
    "me = f\"{os.environ['PLANNER_PROCESS']} {os.environ['PLANNER_RUN_ID']} "
    "{os.environ['PLANNER_ATTEMPT']}\"\n"
    "open(sys.argv[1], 'a').write(f'start {me} {time.time()}\\n')\n"
    "time.sleep(float(sys.argv[2]))\n"
    "while len(sys.argv) > 3 and not os.path.exists(sys.argv[3]):\n"
    "    time.sleep(0.02)\n"
    "open(sys.argv[1], 'a').write(f'end {me} {time.time()}\\n')\n"
)

#: process -> ancestors: four independent jobs, two joins, a join of the joins, one loner
JOBS: dict[str, list[str]] = {
    "a0": [],
    "a1": [],
    "a2": [],
    "a3": [],
    "b0": ["a0", "a1"],
    "b1": ["a2", "a3"],
    "c0": ["b0", "b1"],
    "d0": [],
}

# a SQLite writer waiting this long for the lock gives up (the planner's process only)
SHORT_BUSY_TIMEOUT_S = 1.0


# -- helpers --------------------------------------------------------------------------------------


def _planner(*args: str) -> list[str]:
    exe = BIN / "planner"
    return [str(exe) if exe.exists() else shutil.which("planner") or "planner", *args]


def _registry(
    tmp_path: Path, jobs: dict[str, list[str]], *, retries: int = 0, release: Path | None = None
) -> Path:
    """Jobs of 1 s each, or (``release``) that wait until that file exists."""
    script = tmp_path / "job.py"
    script.write_text(JOB)
    log = tmp_path / "executions.log"
    wait = f"'0', '{release}'" if release is not None else "'1'"
    lines = ["slots: 2", "processes:"]
    for name, ancestors in jobs.items():
        lines += [
            f"  {name}:",
            f"    command: ['{sys.executable}', '{script}', '{log}', {wait}]",
            f"    retries: {retries}",
            "    retry_delay: 0",
        ]
        if ancestors:
            lines.append(f"    ancestors: [{', '.join(ancestors)}]")
    path = tmp_path / "registry.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _executions(tmp_path: Path) -> list[tuple[str, str, str, float]]:
    """(``start``/``end``, process, ``run#attempt``, time) for each line the jobs logged."""
    log = tmp_path / "executions.log"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5:  # a line being written is skipped until it is whole
            kind, process, run_id, attempt, at = parts
            out.append((kind, process, f"{run_id}#{attempt}", float(at)))
    return out


def _started(tmp_path: Path, n: int = 1) -> bool:
    return sum(e[0] == "start" for e in _executions(tmp_path)) >= n


def _run_args(db: str, *extra: str) -> list[str]:
    return _planner(
        "--db",
        db,
        "run",
        "--until-idle",
        "--local-threads",
        "--dashboard-address",
        ":0",
        "--page-port",
        "0",
        *extra,
    )


@contextlib.contextmanager
def _planner_process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _hold_down(since: float) -> None:
    """Keep the database away until ``OUTAGE_S`` after ``since``: the length of the outage is
    the scenario, not a synchronisation."""
    time.sleep(max(since + OUTAGE_S - time.monotonic(), 0.0))


def _assert_every_job_once(tmp_path: Path, db: str, jobs: dict[str, list[str]]) -> None:
    """Each job ran and succeeded exactly once, after its ancestors; nothing is left open."""
    executions = _executions(tmp_path)
    starts = [e for e in executions if e[0] == "start"]
    attempts = [e[2] for e in starts]
    assert len(attempts) == len(set(attempts)), f"an attempt started twice: {executions}"
    assert sorted(e[1] for e in starts) == sorted(jobs), f"a job ran twice or never: {executions}"
    began = {e[1]: e[3] for e in starts}
    ended = {e[1]: e[3] for e in executions if e[0] == "end"}
    assert set(ended) == set(jobs), executions
    for name, ancestors in jobs.items():
        for ancestor in ancestors:
            assert ended[ancestor] <= began[name], (name, ancestor, executions)
    with SqlStore(db) as store:
        assert store.active_runs() == []
        history = store.history(limit=1000)
        assert sorted((a.process, a.attempt, a.status) for a in history) == sorted(
            (name, 1, RunStatus.SUCCEEDED) for name in jobs
        )


# -- a private PostgreSQL server ------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(d) if (d := Path(p).parent.name).isdigit() else 0,
    )
    return Path(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(message: str) -> None:
    """Skip — or under CI fail: CI must not go green without having tested PostgreSQL."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must test PostgreSQL)", pytrace=False)
    pytest.skip(message)


class PrivateServer:
    """A PostgreSQL server of this test alone, run by the ``postgres`` OS user."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.data = root / "data"
        self.log = root / "server.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._as_postgres(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def up(self) -> bool:
        probe = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(probe, timeout=30, check=False).returncode == 0


@pytest.fixture
def private_pg() -> Iterator[PrivateServer]:
    """A fresh PostgreSQL server on a free port, always stopped (immediately) afterwards."""
    bindir = _pg_bindir()
    if bindir is None or shutil.which("runuser") is None or os.geteuid() != 0:
        _unavailable("a private PostgreSQL server needs its binaries, runuser and root")
    assert bindir is not None
    # not under tmp_path, which only root may enter: the postgres user must reach it
    root = Path(tempfile.mkdtemp(prefix="planner-pg-"))
    try:
        shutil.chown(root, "postgres", "postgres")
        server = PrivateServer(bindir, root, _free_port())
        try:
            server.init()
            server.start()
        except (RuntimeError, OSError, LookupError, subprocess.TimeoutExpired) as exc:
            said = server.log.read_text() if server.log.exists() else ""
            _unavailable(f"could not start a private PostgreSQL server: {exc}\n{said}")
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- the scenarios --------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.postgres
def test_a_postgresql_restart_mid_run_does_not_stop_the_planner(
    private_pg: PrivateServer, tmp_path: Path
) -> None:
    registry = _registry(tmp_path, JOBS)
    db = private_pg.url
    log = tmp_path / "planner.log"
    with _planner_process(_run_args(db, str(registry)), log) as planner:
        wait_for(lambda: _started(tmp_path, 2), 60, "two jobs to start")
        private_pg.stop("fast")
        down, down_at = time.monotonic(), time.time()
        assert not private_pg.up()
        # the planner noticed, and a job finished while the server was away
        wait_for(lambda: "database unreachable" in log.read_text(), 20, "the planner to notice")
        wait_for(
            lambda: any(e[0] == "end" and e[3] > down_at for e in _executions(tmp_path)),
            20,
            "a job to end during the outage",
        )
        _hold_down(down)
        assert planner.poll() is None, log.read_text()
        private_pg.start()
        assert planner.wait(60) == 0, log.read_text()
    said = log.read_text()
    assert "database back after" in said, said
    _assert_every_job_once(tmp_path, db, JOBS)


@pytest.mark.integration
@pytest.mark.postgres
def test_an_outage_past_the_limit_gives_up_with_a_message_and_the_next_planner_finishes(
    private_pg: PrivateServer, tmp_path: Path
) -> None:
    # the jobs run until released: nothing finishes during the outage, so the planner has
    # nothing to write and must still count the outage from its first failed call
    jobs: dict[str, list[str]] = {"job0": [], "job1": []}
    release = tmp_path / "release"
    registry = _registry(tmp_path, jobs, retries=1, release=release)
    db = private_pg.url
    limited = ["--db-outage-limit", "2s", "--lease-timeout", "2s"]
    log = tmp_path / "first.log"
    with _planner_process(_run_args(db, str(registry), *limited), log) as planner:
        wait_for(lambda: _started(tmp_path, 2), 60, "both jobs to start")
        private_pg.stop("immediate")
        assert not private_pg.up()
        assert planner.wait(30) == 1, log.read_text()  # the server stays down until it gave up
    said = log.read_text()
    assert "--db-outage-limit of 2s" in said and "giving up" in said, said
    assert "Traceback" not in said, said

    release.write_text("go")
    private_pg.start()
    # the planner that gave up could not release its lease nor record its in-process work: the
    # next one takes over after the lease timeout, marks that work lost and retries it
    with _planner_process(_run_args(db, *limited), tmp_path / "second.log") as second:
        assert second.wait(60) == 0, (tmp_path / "second.log").read_text()
    with SqlStore(db) as store:
        assert store.active_runs() == []
        succeeded = [
            a.process for a in store.history(limit=1000) if a.status is RunStatus.SUCCEEDED
        ]
    assert sorted(succeeded) == sorted(jobs)


LOCKER = (
    "import sqlite3, sys, time\n"
    "from pathlib import Path\n"
    "conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "Path(sys.argv[2]).write_text('locked')\n"
    "time.sleep(float(sys.argv[3]))  # the scenario: the lock is held this long\n"
    "conn.execute('COMMIT')\n"
)


@pytest.mark.integration
def test_a_sqlite_write_lock_held_past_the_busy_timeout_does_not_stop_the_planner(
    tmp_path: Path,
) -> None:
    registry = _registry(tmp_path, JOBS)
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    log = tmp_path / "planner.log"
    env = {SQLITE_BUSY_TIMEOUT_ENV: str(SHORT_BUSY_TIMEOUT_S)}
    locked = tmp_path / "locked"
    hold = 4 * SHORT_BUSY_TIMEOUT_S
    with _planner_process(_run_args(db, str(registry)), log, env) as planner:
        wait_for(lambda: _started(tmp_path, 2), 60, "two jobs to start")
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(tmp_path / "planner.db"), str(locked), str(hold)]
        )
        try:
            wait_for(locked.exists, 30, "the other process to take the write lock")
            wait_for(lambda: "database is locked" in log.read_text(), 20, "the planner to wait")
            assert locker.wait(30) == 0
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait(30)
        assert planner.wait(60) == 0, log.read_text()
    said = log.read_text()
    assert "database unreachable" in said and "database back after" in said, said
    _assert_every_job_once(tmp_path, db, JOBS)


# -- Outage on a fake clock -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _operational(message: str = "server closed the connection") -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


def test_outage_backs_off_doubling_up_to_the_cap_and_resets_when_the_database_is_back() -> None:
    clock = FakeClock()
    outage = Outage(timedelta(seconds=10), first_delay=0.1, max_delay=0.4, monotonic=clock)
    assert not outage.active and outage.due() and outage.wait_s() == 0.0
    waits: list[float] = []
    for _ in range(5):
        outage.failed(_operational())
        assert outage.active and not outage.due()
        waits.append(round(outage.wait_s(), 9))
        clock.now += outage.wait_s()
        assert outage.due()
    assert waits == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert outage.failures == 5
    outage.recovered()
    assert not outage.active and outage.due() and outage.wait_s() == 0.0
    clock.now += 60  # a new outage later starts over: first delay, a fresh limit
    outage.failed(_operational())
    assert round(outage.wait_s(), 9) == 0.1 and outage.failures == 1


def test_outage_gives_up_past_the_limit_with_a_message_naming_it() -> None:
    clock = FakeClock()
    outage = Outage(timedelta(seconds=2), first_delay=0.5, max_delay=0.5, monotonic=clock)
    cause = _operational("connection refused")
    outage.failed(cause)
    clock.now += 1.9
    outage.failed(cause)  # still within the limit
    clock.now += 0.1
    with pytest.raises(DatabaseUnavailable) as raised:
        outage.failed(cause)
    message = str(raised.value)
    assert "--db-outage-limit of 2s" in message and "connection refused" in message
    assert raised.value.__cause__ is cause
    assert isinstance(raised.value, PlannerError)  # the CLI: one clean message, exit 1


def test_only_a_failure_to_reach_the_database_is_an_outage() -> None:
    orig = Exception("x")
    assert is_outage(_operational("database is locked"))
    assert is_outage(InterfaceError("SELECT 1", {}, orig))
    assert is_outage(DBAPIError("SELECT 1", {}, orig, connection_invalidated=True))
    assert not is_outage(DBAPIError("SELECT 1", {}, orig))
    assert not is_outage(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")))
    assert not is_outage(ProgrammingError("SELEC 1", {}, Exception("syntax error")))
    assert not is_outage(ValueError("a bug"))


def test_the_sqlite_busy_timeout_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SQLITE_BUSY_TIMEOUT_ENV, raising=False)
    assert sqlite_busy_timeout_s() == 30.0
    monkeypatch.setenv(SQLITE_BUSY_TIMEOUT_ENV, "1.5")
    assert sqlite_busy_timeout_s() == 1.5
    for bad in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv(SQLITE_BUSY_TIMEOUT_ENV, bad)
        with pytest.raises(PlannerError, match=SQLITE_BUSY_TIMEOUT_ENV):
            sqlite_busy_timeout_s()
