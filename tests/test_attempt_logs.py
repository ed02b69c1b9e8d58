"""Per-attempt logs, JSON results and params: captured on the worker, stored with the attempt,
read back by ``planner logs``, ``planner show`` and ``history --format json``; on an in-process
cluster and on a remote ``dask scheduler`` + ``dask worker``."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
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
