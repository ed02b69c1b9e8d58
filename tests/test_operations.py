"""Operating a running planner from other shells: real `planner run` and `planner …` processes.

While a blocker holds the only slot, another shell raises a waiting process's priority, holds
another, and triggers a third; when the slot frees, the planner must follow the new registry.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.test_restart import REPO, _planner, _start
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _planner(*args), cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_hot_priority_hold_and_trigger_from_another_shell(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    started, release = tmp_path / "blocker.started", tmp_path / "blocker.release"
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"""
slots: 1
processes:
  blocker:
    run: tests.live_jobs:wait_for_file
    params: {{marker: "{started}", release: "{release}"}}
    priority: 100
  low:  {{run: workflows.jobs.demo:noop, ancestors: [blocker], priority: 1}}
  high: {{run: workflows.jobs.demo:noop, ancestors: [blocker], priority: 50}}
  held: {{run: workflows.jobs.demo:noop, ancestors: [blocker], priority: 99}}
  extra: {{run: workflows.jobs.demo:sleep, params: {{seconds: 0}}, priority: -5}}
"""
    )
    planner = _start(
        _planner("--db", db, "run", str(registry), "--until-idle", "--local-threads"),
        tmp_path / "planner.log",
    )
    try:
        wait_for(started.exists, 60, "the blocker to start")
        assert _cli("--db", db, "set", "low", "priority=500").returncode == 0
        trigger = _cli("--db", db, "trigger", "extra", "--params", '{"seconds": 0.01}')
        assert trigger.returncode == 0, trigger.stderr
        assert _cli("--db", db, "hold", "held").returncode == 0
        # the planner must have seen all three before the slot frees: the poll that sees the
        # hold (in its decision log) also reads the trigger, which was written before it
        store = SqlStore(db)
        wait_for(
            lambda: (
                store.load_registry()[0].processes["held"].hold
                and any(code == "hold" for d in store.decisions("held") for code, _ in d.reasons)
            ),
            30,
            "the hold to be seen",
        )
        release.write_text("go")
        assert planner.wait(120) == 0, (tmp_path / "planner.log").read_text()
    finally:
        if planner.poll() is None:
            os.killpg(planner.pid, signal.SIGKILL)
    attempts = {a.process: a for a in store.history()}
    store.close()
    assert attempts["low"].start is not None and attempts["high"].start is not None
    assert attempts["low"].start < attempts["high"].start  # priority 500 now beats 50
    assert "held" not in attempts
    store = SqlStore(db)
    extra = store.history("extra")
    # one run: the run it would start anyway carries the trigger's params (and satisfies it)
    assert [(a.status, a.result) for a in extra] == [(RunStatus.SUCCEEDED, "0.01")]
    assert store.pending_requests() == []
    store.close()
