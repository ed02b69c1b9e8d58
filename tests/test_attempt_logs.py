"""Per-attempt logs, JSON results and params: captured on the worker, stored with the attempt,
read back by ``planner logs``, ``planner show`` and ``history --format json``; on an in-process
cluster and on a remote ``dask scheduler`` + ``dask worker``."""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dask.config
import pytest
from click.testing import CliRunner

from planner.interfaces.cli import cli
from planner.live.runner import run_planner
from planner.live.worker.capture import capturing
from planner.live.worker.logs import AttemptLog
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.test_restart import dask_cluster  # noqa: F401 (a fixture: a real remote cluster)
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent

REGISTRY = """
processes:
  talk:
    run: tests.live_jobs:chatty
    params: {name: talk}
  other:
    run: tests.live_jobs:chatty
    params: {name: other, lines: 2}
  shell:
    command: "echo out-$PLANNER_PROCESS; echo err-line >&2; exit 3"
"""


def _apply(tmp_path: Path, text: str) -> tuple[str, SqlStore]:
    url = f"sqlite:///{tmp_path}/planner.db"
    (tmp_path / "r.yaml").write_text(text)
    store = SqlStore(url)
    store.apply(load_files([tmp_path / "r.yaml"]), now=datetime.now(UTC))
    return url, store


def _cli(url: str, *args: str) -> str:
    out = CliRunner().invoke(cli, ["--db", url, *args])
    assert out.exit_code == 0, out.output
    return out.stdout


def test_a_log_keeps_its_last_bytes_and_says_what_it_cut() -> None:
    log = AttemptLog(10)
    log.write_text("0123456789")
    log.write_text("abc")
    assert log.text() == "[… 3 earlier bytes of this log were not kept …]\n3456789abc"
    mine = AttemptLog(100)
    with capturing(mine):
        print("inside")
    print("outside")  # not this attempt's
    assert mine.text() == "inside\n"


@pytest.mark.integration
def test_logs_of_callables_and_commands_in_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest's own handlers on the root logger keep it at WARNING; a worker process has none
    # (the capture then lowers it to INFO): here the job's logger says INFO itself
    caplog.set_level(logging.INFO, logger="tests.chatty")
    url, store = _apply(tmp_path, REGISTRY)
    try:
        run_planner(store, processes=False, until_idle=True, dashboard_address=":0", slots=3)
    finally:
        store.close()
    talk = _cli(url, "logs", "talk-1")
    assert "talk stdout line 0" in talk and "talk stdout line 2" in talk
    assert "INFO tests.chatty: talk logging line 1" in talk and "talk on stderr" in talk
    assert "other" not in talk  # two jobs at once on one worker: their logs do not mix
    shell = _cli(url, "logs", "shell-1")
    assert "out-shell" in shell and "err-line" in shell

    doc = json.loads(_cli(url, "history", "--format", "json"))
    by_run = {r["run_id"]: r for r in doc["runs"]}
    assert by_run["talk-1"]["result"] == {"rows": 3, "name": "talk"}
    assert by_run["talk-1"]["params"] == {"name": "talk"} and doc["more"] is False
    assert by_run["shell-1"]["status"] == "failed"
    assert by_run["shell-1"]["result"] == "out-shell"  # its stdout's last line, not a repr
    cut = json.loads(_cli(url, "history", "--limit", "1", "--format", "json"))
    assert len(cut["runs"]) == 1 and cut["more"] is True
    failed = json.loads(_cli(url, "history", "--status", "failed", "--format", "json"))
    assert [r["run_id"] for r in failed["runs"]] == ["shell-1"]

    shown = _cli(url, "show", "talk-1")
    assert "run talk-1 of talk: succeeded" in shown and '"rows": 3' in shown
    assert "talk stdout line 2" in shown  # the log's tail
    process = json.loads(_cli(url, "show", "talk", "--format", "json"))
    assert process["settings"]["run"] == "tests.live_jobs:chatty"
    assert process["settings"]["params"] == {"name": "talk"}
    assert process["decision"] == "wait" and process["reasons"][0]["code"] == "done"


@pytest.mark.integration
def test_a_log_past_its_bound_keeps_the_end(tmp_path: Path) -> None:
    url, store = _apply(
        tmp_path, "processes:\n  big: {run: tests.live_jobs:spew, params: {chars: 50000}}\n"
    )
    try:
        with dask.config.set({"planner.log-max-bytes": "5kB"}):
            run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
    finally:
        store.close()
    text = _cli(url, "logs", "big-1")
    assert text.rstrip().endswith("the very end")
    assert "earlier bytes of this log were not kept" in text and len(text) < 5200


@pytest.mark.integration
def test_logs_follow_shows_a_running_job_before_it_ends(tmp_path: Path) -> None:
    url, store = _apply(
        tmp_path,
        "processes:\n"
        "  slow: {run: tests.live_jobs:chatty_until, params: {name: slow, release: r}}\n",
    )
    live_jobs.reset()
    planner = threading.Thread(
        target=run_planner,
        kwargs={"store": store, "processes": False, "until_idle": True, "dashboard_address": ":0"},
        daemon=True,
    )
    planner.start()
    try:
        assert live_jobs.STARTED["slow"].wait(60)
        # the running planner writes what the job printed so far
        wait_for(
            lambda: "slow is running" in (store.attempt_log("slow-1").log or ""),
            timeout=30,
            what="the partial log",
        )
        assert store.attempt_log("slow-1").end is None
        followed: list[str] = []
        follower = threading.Thread(
            target=lambda: followed.append(_cli(url, "logs", "slow-1", "--follow")), daemon=True
        )
        follower.start()
        live_jobs.RELEASE["r"].set()
        follower.join(60)
        planner.join(60)
        assert followed and followed[0].count("slow is running") == 1
        assert "slow is done" in followed[0]
    finally:
        live_jobs.RELEASE["r"].set()
        store.close()


@pytest.mark.integration
def test_logs_on_a_remote_cluster(tmp_path: Path, dask_cluster: str) -> None:  # noqa: F811
    url, store = _apply(tmp_path, REGISTRY)
    try:
        run_planner(store, scheduler=dask_cluster, until_idle=True, slots=3)
    finally:
        store.close()
    talk = _cli(url, "logs", "talk-1")
    assert "talk stdout line 2" in talk and "INFO tests.chatty: talk logging line 0" in talk
    assert "other" not in talk
    assert "err-line" in _cli(url, "logs", "shell-1")
    doc = json.loads(_cli(url, "history", "talk", "--format", "json"))
    assert doc["runs"][0]["result"] == {"rows": 3, "name": "talk"}


@pytest.mark.integration
def test_a_commands_result_is_its_stdouts_last_line_as_json_or_text(tmp_path: Path) -> None:
    url, store = _apply(
        tmp_path,
        """
processes:
  counts: {command: ["python", "-c", "print('counting'); print('{\\"rows\\": 7}')"]}
  word: {command: "echo starting; echo done"}
  number: {command: "echo 42"}
  odd: {command: "echo NaN"}
  silent: {command: "true"}
  load: {run: tests.live_jobs:consume, ancestors: [counts, word, silent]}
""",
    )
    try:
        run_planner(store, processes=False, until_idle=True, dashboard_address=":0", slots=4)
    finally:
        store.close()
    doc = json.loads(_cli(url, "history", "--format", "json"))
    result = {r["process"]: r["result"] for r in doc["runs"]}
    assert result == {
        "counts": {"rows": 7},  # JSON: parsed
        "word": "done",  # not JSON: the line as text
        "number": 42,
        "odd": "NaN",  # not JSON either (JSON has no NaN)
        "silent": None,  # printed nothing
        "load": {"seen": {"counts": {"rows": 7}, "word": "done", "silent": None}},
    }
    assert "counting" in _cli(url, "logs", "counts-1")  # the rest of stdout is in the log
    assert 'result: {"rows": 7}' in _cli(url, "show", "counts-1")


def test_show_process_prints_its_effective_settings_after_defaults_set_and_sql(
    tmp_path: Path,
) -> None:
    from sqlalchemy import create_engine, text

    url, store = _apply(
        tmp_path,
        """
defaults: {retries: 2, retry_delay: 30s, timeout: 2h}
processes:
  load: {run: workflows.jobs.demo:noop, priority: 5, timeout: 10m}
""",
    )
    store.close()

    def settings() -> dict[str, object]:
        return dict(json.loads(_cli(url, "show", "load", "--format", "json"))["settings"])

    first = settings()  # the file's defaults under the process's own keys
    assert (first["priority"], first["retries"], first["retry_delay"]) == (5, 2, 30.0)
    assert (first["timeout"], first["hold"], first["max_active"]) == (600.0, False, 1)

    _cli(url, "set", "load", "priority=200", "retries=4", "retry_delay=1m")
    after_set = settings()
    assert (after_set["priority"], after_set["retries"], after_set["retry_delay"]) == (200, 4, 60.0)
    assert after_set["timeout"] == 600.0  # what was not set stays

    engine = create_engine(url)
    try:
        with engine.begin() as conn:  # an operator's direct edit of the registry table
            conn.execute(
                text(
                    "UPDATE processes SET priority = 7, hold = 1, max_active = 3"
                    " WHERE name = 'load'"
                )
            )
    finally:
        engine.dispose()
    edited = settings()
    assert (edited["priority"], edited["hold"], edited["max_active"]) == (7, True, 3)
    assert (edited["retries"], edited["retry_delay"]) == (4, 60.0)  # the `set` ones stand
    shown = _cli(url, "show", "load")
    assert "  priority " in shown and shown.split("  priority ", 1)[1].split()[0] == "7"
    assert "now: wait (hold" in shown  # and the state it leads to


# -- logs --follow on an attempt that nobody will end ---------------------------------------------


def _running_attempt(tmp_path: Path) -> tuple[str, SqlStore]:
    """A database with run slow-1 running (started, with half a log) and no end recorded."""
    url, store = _apply(tmp_path, "processes:\n  slow: {run: workflows.jobs.demo:noop}\n")
    now = datetime.now(UTC)
    store.create_run(run_id="slow-1", process="slow", scheduled=now, queued=now, params={})
    store.attempt_started("slow-1", 1, start=now, worker="w")
    store.write_partial_logs({("slow-1", 1): "half a log\n"})
    return url, store


def _follower(url: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    """``planner logs slow-1 --follow`` in a process of its own; its stdout lines, as they come."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner.interfaces.cli", "--db", url, "logs", "slow-1", "-f"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def test_logs_follow_stops_when_no_planner_holds_the_lease(tmp_path: Path) -> None:
    url, store = _running_attempt(tmp_path)
    try:  # the planner that ran it was killed: its lease ran out, nobody renews it
        assert (
            store.acquire_lease(
                "gone", now=datetime.now(UTC) - timedelta(hours=1), timeout=timedelta(seconds=15)
            )
            is not None
        )
    finally:
        store.close()
    proc, lines = _follower(url)
    try:
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert code == 1, err  # the attempt did not end: not ok
    assert lines.get(timeout=10) == "half a log\n"
    assert (
        "error: attempt 1 of slow-1 has not ended and no planner holds the lease: "
        "stopped following" in err
    )


def test_logs_follow_goes_on_while_a_planner_holds_the_lease_and_stops_when_it_is_gone(
    tmp_path: Path,
) -> None:
    url, store = _running_attempt(tmp_path)
    try:
        assert store.acquire_lease("alive", now=datetime.now(UTC), timeout=timedelta(minutes=5))
        proc, lines = _follower(url)
        try:
            assert lines.get(timeout=60) == "half a log\n"
            store.write_partial_logs({("slow-1", 1): "half a log\nand more\n"})
            assert lines.get(timeout=60) == "and more\n"  # still following
            assert proc.poll() is None
            store.release_lease(now=datetime.now(UTC))  # the planner stopped, the run is left
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert code == 1 and "no planner holds the lease: stopped following" in err, err
        assert lines.get(timeout=10) is None  # nothing more was printed
    finally:
        store.close()
