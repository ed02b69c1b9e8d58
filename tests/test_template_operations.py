"""``hold``/``release``/``set``/``trigger`` on a template act on all of its processes (one
transaction), and on one of them by its full name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from planner.interfaces.cli import cli
from registry.records import RequestKind
from registry.storage.sqlstore import SqlStore

REGISTRY = """
processes:
  extract:
    foreach: [orders, customers, products]
    run: workflows.jobs.demo:noop
  report:
    run: workflows.jobs.demo:noop
    ancestors: [extract]
"""


def test_operations_on_a_template_reach_each_of_its_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    (tmp_path / "r.yaml").write_text(REGISTRY)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        out = runner.invoke(cli, ["--db", url, *args])
        assert out.exit_code == code, out.output
        return out.output

    run("apply", str(tmp_path / "r.yaml"))
    names = ["extract.customers", "extract.orders", "extract.products"]
    assert "held 3 of the 3 processes of template 'extract'" in run("hold", "extract")
    store = SqlStore(url)
    try:
        held = {n: d.hold for n, d in store.load_registry()[0].processes.items()}
        assert held == {**dict.fromkeys(names, True), "report": False}
        assert "are already held" in run("hold", "extract")
        assert "released 'extract.orders'" in run("release", "extract.orders")
        assert "released 2 of the 3" in run("release", "extract")
        run("set", "extract", "priority=7")
        priorities = {n: d.priority for n, d in store.load_registry()[0].processes.items()}
        assert priorities == {**dict.fromkeys(names, 7), "report": 0}
        assert "trigger the 3 processes of template 'extract'" in run("trigger", "extract")
        triggered = sorted(
            r.process or "" for r in store.pending_requests() if r.kind is RequestKind.TRIGGER
        )
        assert triggered == names
        run("hold", "nothing", code=1)
    finally:
        store.close()


def test_plan_explain_and_graph_group_a_templates_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    (tmp_path / "r.yaml").write_text(REGISTRY)
    runner = CliRunner()

    def run(*args: str) -> str:
        out = runner.invoke(cli, ["--db", url, *args])
        assert out.exit_code == 0, out.output
        return out.output

    run("apply", str(tmp_path / "r.yaml"))
    plan = run("plan", "--slots", "4")
    assert "extract.* ×3" in plan and "3 to start, 1 waiting" in plan
    assert "extract.orders" not in plan.split("\n", 2)[2].split("report")[0]
    every = run("plan", "--all", "--slots", "4")  # expanded on demand
    assert all(f"extract.{t}" in every for t in ("orders", "customers", "products"))
    explained = run("explain", "extract")
    assert all(f"extract.{t}" in explained for t in ("orders", "customers", "products"))
    dot = run("graph")
    assert 'label="extract (3)";' in dot and "subgraph cluster_" in dot
    assert "subgraph" in run("graph", "--format", "mermaid")


def test_the_page_draws_a_template_as_one_node(tmp_path: Path) -> None:
    from planner.core.planner import Planner
    from planner.live.snapshot import grouped_nodes
    from registry.definitions.loader import load_files

    (tmp_path / "r.yaml").write_text(REGISTRY)
    core = Planner(load_files([tmp_path / "r.yaml"]), now=datetime.now(UTC))
    nodes = [
        {"process": "extract.orders", "state": "succeeded"},
        {"process": "extract.customers", "state": "running"},
        {"process": "extract.products", "state": "waiting"},
        {"process": "report", "state": "waiting"},
    ]
    grouped, group_of = grouped_nodes(nodes, core)
    assert grouped == [
        {"process": "extract.*", "state": "running", "members": 3},
        {"process": "report", "state": "waiting"},
    ]
    assert group_of["extract.orders"] == "extract.*"


def test_the_notebook_dag_groups_a_template_and_expands_on_demand(tmp_path: Path) -> None:
    from planner.interfaces.notebook.figures import dag_figure
    from registry.definitions.loader import load_files

    (tmp_path / "r.yaml").write_text(REGISTRY)
    registry = load_files([tmp_path / "r.yaml"])

    def names(**kw: object) -> list[str]:
        fig = dag_figure(registry, **kw)  # type: ignore[arg-type]
        (source,) = [r.data_source for r in fig.renderers if hasattr(r, "data_source")][:1]
        return sorted(source.data["name"])

    assert names() == ["extract.* (3)", "report"]
    assert names(group_templates=False) == [
        "extract.customers",
        "extract.orders",
        "extract.products",
        "report",
    ]
