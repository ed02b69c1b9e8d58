"""``/metrics`` of a live planner, read with prometheus_client's own parser: the SPEC's names with
values that agree with what the planner did (in-process driver, and ``planner run`` as a real
process with its API)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from distributed import Client, LocalCluster
from prometheus_client.parser import text_string_to_metric_families

from planner.interfaces.api import PlannerMetrics
from tests.live_api import AUTH, TOKEN, live_planner
from tests.test_restart import _planner, _start
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[set[str], Samples]:
    """The family names and every sample, keyed by sample name and labels."""
    families = list(text_string_to_metric_families(text))
    samples: Samples = {
        (s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples
    }
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


SPEC_FAMILIES = {
    "planner_runs",  # exposed as planner_runs_total (a counter)
    "planner_slots",
    "planner_waiting",
    "planner_dispatch_seconds",
    "planner_decision_seconds",
    "planner_leader",
}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=4, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_metrics_after_some_runs(tmp_path: Path, client: Client) -> None:
    # one slot: each end frees the slot for the next waiting process, a dispatch each time
    yaml_text = """
slots: 1
processes:
  x: {run: workflows.jobs.demo:sleep, params: {seconds: 0.05}, priority: 3}
  y: {run: workflows.jobs.demo:sleep, params: {seconds: 0.05}, priority: 2}
  z: {run: workflows.jobs.demo:fail, priority: 1}
"""
    with live_planner(tmp_path, client, yaml_text) as live:
        wait_for(
            lambda: len([a for a in live.store.history() if a.status.terminal]) == 3,
            60,
            "the three runs to end",
        )
        wait_for(
            lambda: value(parse(live.metrics_text())[1], "planner_slots", state="used") == 0,
            30,
            "the slot to be free",
        )
        names, samples = parse(live.metrics_text())
    assert names >= SPEC_FAMILIES
    assert value(samples, "planner_runs_total", process="x", status="succeeded") == 1
    assert value(samples, "planner_runs_total", process="y", status="succeeded") == 1
    assert value(samples, "planner_runs_total", process="z", status="failed") == 1
    assert ("planner_runs_total", frozenset({("process", "z"), ("status", "succeeded")})) not in (
        samples
    )
    assert value(samples, "planner_slots", state="free") == 1
    # x and y succeeded (single processes: done), z failed and waits for a reset
    assert value(samples, "planner_waiting", reason="done") == 2
    assert value(samples, "planner_waiting", reason="failed") == 1
    assert value(samples, "planner_waiting", reason="slots") == 0
    dispatches = value(samples, "planner_dispatch_seconds_count")
    assert dispatches == 2  # y after x, z after y: the first start took a free slot
    assert 0 <= value(samples, "planner_dispatch_seconds_sum") < 5 * dispatches
    assert value(samples, "planner_dispatch_seconds_bucket", le="+Inf") == dispatches
    decisions = value(samples, "planner_decision_seconds_count")
    assert decisions >= 3
    assert 0 < value(samples, "planner_decision_seconds_sum") < decisions
    assert value(samples, "planner_leader") == 1


def test_each_planner_has_its_own_registry() -> None:
    one, two = PlannerMetrics(), PlannerMetrics()
    one.runs.labels(process="p", status="succeeded").inc()
    _, samples = parse(two.exposition().decode())
    assert ("planner_runs_total", frozenset({("process", "p"), ("status", "succeeded")})) not in (
        samples
    )
    assert value(samples, "planner_leader") == 0


def test_planner_run_serves_the_api_and_metrics(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'planner.db'}"
    started, release = tmp_path / "blocker.started", tmp_path / "blocker.release"
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"""
processes:
  blocker:
    run: tests.live_jobs:wait_for_file
    params: {{marker: "{started}", release: "{release}"}}
  extra: {{run: workflows.jobs.demo:sleep, params: {{seconds: 0}}}}
"""
    )
    log = tmp_path / "planner.log"
    env = {**os.environ, "PLANNER_API_TOKEN": TOKEN}
    args = ["--db", db, "run", str(registry), "--until-idle", "--local-threads"]
    args += ["--api-address", "127.0.0.1:0", "--dashboard-address", ":0"]
    planner = _start(_planner(*args), log, env)
    try:
        wait_for(started.exists, 60, "the blocker to start")
        lines = dict(line.split(": ", 1) for line in log.read_text().splitlines() if ": " in line)
        api = lines["api"]
        assert api.startswith("http://127.0.0.1:") and api.endswith("/api/v1")
        assert {"dashboard", "planner page"} <= set(lines)
        root = api.removesuffix("/api/v1")
        _, samples = parse(httpx.get(f"{root}/metrics", timeout=10).text)
        assert value(samples, "planner_leader") == 1
        assert value(samples, "planner_slots", state="used") >= 1
        # an external system creates work over HTTP, while the planner runs
        wait_for(
            lambda: httpx.get(f"{api}/runs", params={"process": "extra"}, timeout=10).json()[
                "runs"
            ],
            60,
            "extra's first run",
        )
        trigger = httpx.post(f"{api}/processes/extra/trigger", headers=AUTH, timeout=10)
        assert trigger.status_code == 200, trigger.text
        assert trigger.json()["note"] is None  # a planner holds the lease
        wait_for(
            lambda: (
                len(
                    httpx.get(f"{api}/runs", params={"process": "extra"}, timeout=10).json()["runs"]
                )
                == 2
            ),
            60,
            "the triggered run",
        )
        status = httpx.get(f"{api}/status", timeout=10).json()
        assert status["planner"]["alive"] is True and status["active"][0]["process"] == "blocker"
        release.write_text("go")
        assert planner.wait(120) == 0, log.read_text()
    finally:
        if planner.poll() is None:
            os.killpg(planner.pid, signal.SIGKILL)
