"""``ctx.ancestors``: each ancestor's JSON result reaches its descendants — a callable through
``ctx``, a command through the JSON file named by ``PLANNER_ANCESTORS_FILE`` — on a real
cluster, whether the descendant is handed to Dask ahead of its ancestor's end or not."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.live.recording import Summary
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import AttemptRecord
from registry.storage.sqlstore import SqlStore

pytestmark = pytest.mark.integration


def _run(tmp_path: Path, text: str, slots: int) -> tuple[Summary, dict[str, AttemptRecord]]:
    (tmp_path / "r.yaml").write_text(text)
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    try:
        store.apply(load_files([tmp_path / "r.yaml"]), now=datetime.now(UTC))
        summary = run_planner(
            store, processes=False, until_idle=True, dashboard_address=":0", slots=slots
        )
        return summary, {a.process: a for a in store.history()}
    finally:
        store.close()


def test_ancestor_results_reach_callables_and_commands(tmp_path: Path) -> None:
    summary, runs = _run(
        tmp_path,
        f"""
processes:
  extract: {{run: tests.live_jobs:produce, params: {{rows: 42}}}}
  other: {{run: workflows.jobs.demo:noop}}
  load: {{run: tests.live_jobs:consume, ancestors: [extract, other]}}
  shell:
    command: ["sh", "-c", "cat \\"$PLANNER_ANCESTORS_FILE\\" > {tmp_path}/seen.json"]
    ancestors: [extract]
""",
        slots=3,
    )
    assert summary.statuses == {"succeeded": 4}
    assert runs["load"].result_json == {
        "seen": {"extract": {"rows": 42, "table": "orders"}, "other": None}
    }
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"extract": {"rows": 42, "table": "orders"}}


def test_a_chained_descendant_gets_its_ancestors_result_too(tmp_path: Path) -> None:
    summary, runs = _run(
        tmp_path,
        """
processes:
  extract: {run: tests.live_jobs:produce, params: {rows: 7}}
  load: {run: tests.live_jobs:consume, ancestors: [extract]}
""",
        slots=1,
    )
    assert summary.ahead == 1  # handed to Dask behind extract's task, before extract ended
    assert runs["load"].status is RunStatus.SUCCEEDED
    assert runs["load"].result_json == {"seen": {"extract": {"rows": 7, "table": "orders"}}}


def test_a_descendant_added_while_the_planner_runs_gets_its_ancestors_result(
    tmp_path: Path,
) -> None:
    """``a`` succeeds as a leaf (no descendant: the driver keeps no result for it); a registry
    applied meanwhile adds ``b: {ancestors: [a]}``, and ``b`` still sees what ``a`` returned."""
    from distributed import Client, LocalCluster

    from planner.live.dispatch import Dispatcher
    from planner.live.loop import LiveDriver, utcnow
    from tests.waiting import wait_for

    first = tmp_path / "first.yaml"
    first.write_text("processes:\n  a: {run: tests.live_jobs:produce, params: {rows: 5}}\n")
    second = tmp_path / "second.yaml"
    second.write_text(
        "processes:\n"
        "  a: {run: tests.live_jobs:produce, params: {rows: 5}}\n"
        "  b: {run: tests.live_jobs:consume, ancestors: [a]}\n"
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([first]), now=utcnow())
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
        thread = threading.Thread(target=driver.run, daemon=True)
        thread.start()
        try:
            wait_for(
                lambda: any(r.status is RunStatus.SUCCEEDED for r in store.history("a")),
                what="a to succeed",
            )
            store.apply(load_files([second]), now=utcnow())
            done = wait_for(
                lambda: [r for r in store.history("b") if r.status.terminal],
                what="b to finish",
            )
        finally:
            driver.stop()
            thread.join(30)
        assert not thread.is_alive()
    store.close()
    assert done[0].status is RunStatus.SUCCEEDED
    assert done[0].result_json == {"seen": {"a": {"rows": 5, "table": "orders"}}}
