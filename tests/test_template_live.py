"""Paired ancestors (``"extract.{item}"``) on a real LocalCluster: each process of ``publish``
waits for its own ``extract`` process — not for the others — and gets that one's result."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REGISTRY = """
slots: 4
processes:
  extract:
    foreach: [a, b, c]
    run: tests.live_jobs:gate
    params: {name: "extract-{item}"}
  publish:
    foreach: [a, b, c]
    run: tests.live_jobs:consume
    ancestors: ["extract.{item}"]
"""


def test_paired_ancestors_order_each_process_after_its_own_ancestor(tmp_path: Path) -> None:
    live_jobs.reset()
    live_jobs.RELEASE["extract-a"].set()  # a and c end at once; b is held until released
    live_jobs.RELEASE["extract-c"].set()
    path = tmp_path / "paired.yaml"
    path.write_text(REGISTRY)
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())

    def succeeded(process: str) -> bool:
        return any(a.status is RunStatus.SUCCEEDED for a in store.history(process))

    try:
        with (
            LocalCluster(
                processes=False, n_workers=1, threads_per_worker=4, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
            thread = threading.Thread(target=driver.run, kwargs={"until_idle": True}, daemon=True)
            thread.start()
            try:
                wait_for(lambda: succeeded("publish.a") and succeeded("publish.c"), 60)
                assert live_jobs.STARTED["extract-b"].is_set()  # running all along
                assert not succeeded("extract.b")
                # waits for extract.b alone (it may be handed to Dask ahead: pending, not begun)
                waiting = store.history("publish.b")
                assert all(a.status is RunStatus.PENDING and a.start is None for a in waiting)
            finally:
                live_jobs.RELEASE["extract-b"].set()
                thread.join(60)
            assert not thread.is_alive()
        runs = {a.process: a for a in store.history()}
    finally:
        store.close()
    assert {p: r.status for p, r in runs.items()} == dict.fromkeys(
        [f"{t}.{i}" for t in ("extract", "publish") for i in "abc"], RunStatus.SUCCEEDED
    )
    for item in "abc":
        ancestor, descendant = runs[f"extract.{item}"], runs[f"publish.{item}"]
        assert ancestor.end is not None and descendant.start is not None
        assert descendant.start >= ancestor.end
        assert descendant.result_json == {"seen": {f"extract.{item}": f"extract-{item}"}}
    assert runs["publish.a"].end is not None and runs["extract.b"].end is not None
    assert runs["publish.a"].end <= runs["extract.b"].end  # a did not wait for b
