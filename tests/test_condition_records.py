"""A condition's last answer, as the shells that only read the database see it.

``plan``, ``explain``, the HTTP API's process reads and ``planner serve``'s page build the core
from the database (``planner.interfaces.dry_run``); the planner writes each condition's answer
to the decision log (on a change, and at least every few minutes), so they show what the running
planner knows: false, or the error it raised, and when it was asked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planner.core.events import ConditionAnswered, Step
from planner.interfaces.dry_run import dry_run_core
from planner.live.conditions import REWRITTEN_AFTER, ConditionWatcher
from planner.live.loop import LiveDriver
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
T0 = datetime(2026, 3, 2, tzinfo=UTC)
ERROR = "error: OSError: the source is unreachable"


@pytest.fixture(autouse=True)
def _fresh_jobs() -> Iterator[None]:
    live_jobs.reset()
    yield
    live_jobs.reset()


def _planner(*args: str) -> list[str]:
    exe = BIN / "planner"
    return [str(exe) if exe.exists() else shutil.which("planner") or "planner", *args]


def _cli_json(db: str, *args: str) -> dict[str, Any]:
    """A command of another process (a second shell), its JSON output parsed."""
    done = subprocess.run(
        _planner("--db", db, *args, "--format", "json"),
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return json.loads(done.stdout)


def _reasons(plan: dict[str, Any], process: str) -> list[dict[str, str]]:
    (decision,) = [d for d in plan["decisions"] if d["process"] == process]
    return decision["reasons"]


@pytest.mark.integration
def test_another_shell_sees_the_error_a_condition_raised(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        """
processes:
  load:
    run: workflows.jobs.demo:noop
    condition: tests.live_jobs:broken_condition
    condition_interval: 0.2s
  other:
    run: workflows.jobs.demo:noop
"""
    )
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    store = SqlStore(db)
    store.apply(load_files([registry]), now=datetime.now(UTC))
    drivers: list[LiveDriver] = []
    planner = threading.Thread(
        target=run_planner,
        args=(store,),
        kwargs={
            "processes": False,
            "dashboard_address": ":0",
            "on_ready": lambda driver, _conn: drivers.append(driver),
        },
        daemon=True,
    )
    planner.start()
    try:
        wait_for(lambda: drivers, timeout=60, what="the planner to drive")
        # the planner keeps asking (every 0.2 s) and keeps running: a second shell sees why
        seen = wait_for(
            lambda: [
                r
                for r in _reasons(_cli_json(db, "plan"), "load")
                if r["code"] == "condition" and r["detail"].startswith(ERROR)
            ],
            timeout=90,
            what="`planner plan` in another shell to show the condition's error",
        )
        assert seen[0]["detail"].startswith(f"{ERROR} (asked ")
        assert planner.is_alive()
        explained = _cli_json(db, "explain", "load")
        assert explained["decision"] == "wait"
        assert [r["code"] for r in explained["reasons"]] == ["condition"]
        assert explained["reasons"][0]["detail"].startswith(f"{ERROR} (asked ")
        # the decision log lists the answers among the recent decisions
        answers = [d for d in explained["decisions"] if d["decision"] == "condition"]
        assert answers and answers[0]["reasons"] == [{"code": "condition", "detail": ERROR}]
    finally:
        if drivers:
            drivers[0].stop()
        planner.join(60)
    assert not planner.is_alive()
    # durable: with no planner running, the last answer is still what the shells show
    after = _reasons(_cli_json(db, "plan"), "load")
    assert [r["code"] for r in after] == ["condition"] and after[0]["detail"].startswith(ERROR)
    store.close()


# -- what is written, and read back ------------------------------------------------------------


class _Driver:
    """What ``ConditionWatcher.on_step`` reads of a driver: its core and its decision buffer."""

    def __init__(self, store: SqlStore) -> None:
        registry, applied = store.load_registry()
        self.core = dry_run_core(store, registry, applied, T0, None)
        self.decision_buffer: list[Any] = []


def _answered(driver: _Driver, name: str, value: bool, at: datetime, detail: str = "") -> None:
    driver.core.handle(at, ConditionAnswered(process=name, value=value, at=at, detail=detail))


def test_answers_are_written_on_change_and_at_least_every_few_minutes(
    tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "processes:\n"
        "  load: {run: workflows.jobs.demo:noop, condition: 'workflows.jobs.demo:noop'}\n"
    )
    store = SqlStore(store_url)
    try:
        store.apply(load_files([path]), now=T0)
        driver = _Driver(store)
        watcher = ConditionWatcher(lambda _e: None, lambda: T0)
        steps = [
            (T0, "error: OSError: no disk"),
            (T0 + timedelta(minutes=1), "error: OSError: no disk"),  # the same: not written
            (T0 + timedelta(minutes=2), "false (it returned 0)"),  # a change: written
            (T0 + timedelta(minutes=2) + REWRITTEN_AFTER, "false (it returned 0)"),  # again
        ]
        for when, detail in steps:
            _answered(driver, "load", False, when, detail)
            watcher.on_step(driver, Step(at=when))  # type: ignore[arg-type]
        written = [(d.at, d.reasons) for d in driver.decision_buffer]
        assert written == [
            (T0, (("condition", "error: OSError: no disk"),)),
            (T0 + timedelta(minutes=2), (("condition", "false (it returned 0)"),)),
            (
                T0 + timedelta(minutes=2) + REWRITTEN_AFTER,
                (("condition", "false (it returned 0)"),),
            ),
        ]
        store.log_decisions(driver.decision_buffer)
        registry, applied = store.load_registry()
        later = T0 + timedelta(minutes=2) + REWRITTEN_AFTER + timedelta(seconds=5)
        ex = dry_run_core(store, registry, applied, later, None).explain("load", later)
        asked = (T0 + timedelta(minutes=2) + REWRITTEN_AFTER).isoformat()
        assert [str(r) for r in ex.reasons] == [f"condition: false (it returned 0) (asked {asked})"]
        assert ex.blocked_until == (
            f"its condition to answer true (false (it returned 0) (asked {asked}))"
        )
        # a true answer reads back as true: fresh, the process would start
        _answered(driver, "load", True, later)
        watcher.on_step(driver, Step(at=later))  # type: ignore[arg-type]
        store.log_decisions(driver.decision_buffer[-1:])
        plan = dry_run_core(store, registry, applied, later, None).plan(later)
        assert [(d.process, d.decision) for d in plan] == [("load", "start")]
    finally:
        store.close()
