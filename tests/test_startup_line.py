"""``planner run`` says the cluster is up the moment it is — before the planner loads the
registry and builds its core — so the planner's own start (cluster up → first task) can be timed
apart from the cluster's (``benchmarks/bench_startup.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from planner.interfaces.cli import cli
from planner.live.cluster import Connection
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.model import RegistryDef
from registry.storage.sqlstore import SqlStore

pytestmark = pytest.mark.integration

REGISTRY = "processes:\n  a: {run: workflows.jobs.demo:noop}\n"


class _CountingStore(SqlStore):
    """A store that counts the driver's loads of the registry."""

    loads = 0

    def load_registry(self, *args: Any, **kwargs: Any) -> tuple[RegistryDef, Any]:
        self.loads += 1
        return super().load_registry(*args, **kwargs)


def test_on_connected_comes_before_the_registry_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(REGISTRY)
    store = _CountingStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=datetime.now(UTC))
    seen: list[tuple[str, int]] = []

    def connected(conn: Connection) -> None:
        seen.append(("connected", store.loads))

    def ready(_driver: Any, _conn: Connection) -> None:
        seen.append(("ready", store.loads))

    try:
        summary = run_planner(
            store,
            processes=False,
            until_idle=True,
            dashboard_address=":0",
            on_connected=connected,
            on_ready=ready,
        )
    finally:
        store.close()
    assert summary.statuses == {"succeeded": 1}
    assert [what for what, _ in seen] == ["connected", "ready"]
    assert seen[0][1] == 0 and seen[1][1] >= 1  # nothing loaded yet when the cluster was up


def test_planner_run_prints_the_cluster_line_before_the_dashboard_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # workflows.jobs importable
    path = tmp_path / "r.yaml"
    path.write_text(REGISTRY)
    args = ["--db", f"sqlite:///{tmp_path}/planner.db", "run", str(path), "--until-idle"]
    args += ["--local-threads", "--workers", "1"]
    args += ["--dashboard-address", "127.0.0.1:0", "--page-port", "0"]
    result = CliRunner().invoke(cli, args, prog_name="planner")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    cluster = next(i for i, line in enumerate(lines) if line.startswith("cluster: "))
    dashboard = next(i for i, line in enumerate(lines) if line.startswith("dashboard: "))
    assert lines[0] == "added: a" and 0 < cluster < dashboard
    assert " (in-process, " in lines[cluster]
