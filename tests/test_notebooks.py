"""The notebooks run top to bottom, and the helpers they use (``planner.interfaces.notebook``) work.

Each notebook in ``notebooks/`` is executed with nbclient on a kernel of *this* interpreter: the
test writes a ``python3`` kernelspec pointing at ``sys.executable`` into a temporary
``JUPYTER_PATH`` (searched before the user's and the system's kernels), so it neither needs nor gets
fooled by a kernel installed elsewhere. The kernel starts in ``notebooks/``, as Jupyter would,
which also exercises the notebooks' search for the repository root.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from planner.core.planner import Planner
from planner.interfaces import notebook as nb
from planner.simulation.simulate import Outcome, simulate
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 120
KERNEL = "python3"


@pytest.fixture
def own_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A ``python3`` kernelspec for this interpreter, and a kernel environment kept in tmp_path."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("PLANNER_DB", raising=False)  # the history notebook must use its demo DB
    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable
    yield


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"explore_plan.ipynb", "history.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == KERNEL
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: outputs in cell {cell.id}"
            assert cell.execution_count is None, f"{path.name}: execution count in {cell.id}"


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.usefixtures("own_kernel")
def test_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []


# -- planner.interfaces.notebook -------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_plan_table_keeps_the_planners_order_and_reasons() -> None:
    registry = load_files([ROOT / "workflows" / "adp.yaml"])
    planner = Planner(registry, now=START, applied_at=dict.fromkeys(registry.processes, START))
    table = nb.plan_table(planner.plan(START.replace(hour=2, minute=59)))
    assert list(table.columns) == ["process", "decision", "codes", "reasons", "members"]
    rows = table.set_index("process")
    assert rows.loc["A", "codes"] == "not_due"
    assert rows.loc["B", "codes"] == "not_before, ancestors"


def test_compare_simulations_reports_first_starts() -> None:
    registry = load_files([ROOT / "workflows" / "adp.yaml"])
    start = START.replace(hour=1)
    sims = {
        str(slots): simulate(registry, start=start, until=start + timedelta(days=1), slots=slots)
        for slots in (1, 2)
    }
    table = nb.compare_simulations(sims, processes=["A", "B"])
    assert table.loc["2", "A start"] == "03:00"
    assert table.loc["2", "B start"] == "03:30"
    assert table.loc["1", "slots"] == 1


def test_record_simulation_writes_what_the_simulator_ran(tmp_path: Path) -> None:
    registry = load_files([ROOT / "workflows" / "nightly.yaml"])
    failing = {"transform": Outcome(duration=timedelta(seconds=1), status=RunStatus.FAILED)}
    sim = simulate(registry, start=START, until=START + timedelta(days=1), outcomes=failing)
    finished = [r for r in sim.runs if r.status is not RunStatus.RUNNING]
    with SqlStore(f"sqlite:///{(tmp_path / 'h.db').as_posix()}") as store:
        store.apply(registry, now=START)
        written = nb.record_simulation(
            store, registry, sim, latency=lambda run: timedelta(milliseconds=100)
        )
        frame = nb.attempts_frame(store.history())
        histories = store.load_histories()
    assert written == len(finished) == len(frame)
    transform = frame[frame["process"] == "transform"]
    assert list(transform["attempt"]) == [1, 2, 3]  # retries: 2
    assert set(transform["error_type"]) == {"SimulatedFailure"}
    assert histories["transform"].last_outcome is RunStatus.FAILED
    cleanup = frame[frame["process"] == "cleanup"].iloc[0]
    assert cleanup["scheduled"] == START.replace(hour=3)  # a cron run is scheduled at its fire
    assert cleanup["delay_s"] == pytest.approx(0.1)
    summary = nb.duration_summary(frame)
    assert summary.loc["transform", "failed"] == 3
    assert summary.loc["transform", "succeeded"] == 0


def test_random_outcomes_are_seeded() -> None:
    registry = load_files([ROOT / "workflows" / "nightly.yaml"])

    def draws(seed: int) -> list[Outcome]:
        outcomes = nb.RandomOutcomes(registry, seed=seed, failure_rates={"transform": 0.5})
        return [outcomes["transform"] for _ in range(20)]

    assert draws(3) == draws(3)
    assert {o.status for o in draws(3)} == {RunStatus.SUCCEEDED, RunStatus.FAILED}


def test_recorded_simulated_runs_carry_no_results(tmp_path: Path) -> None:
    """Simulated runs give ``None``: a recorded simulation stores no result, so a planner
    started on that history hands its descendants ``None`` in ``ctx.ancestors``."""
    registry = load_files([ROOT / "workflows" / "nightly.yaml"])
    sim = simulate(registry, start=START, until=START + timedelta(days=1))
    ancestors = sorted({a for d in registry.processes.values() for a in d.ancestors})
    with SqlStore(f"sqlite:///{(tmp_path / 'h.db').as_posix()}") as store:
        store.apply(registry, now=START)
        assert nb.record_simulation(store, registry, sim) > 0
        attempts = store.history(limit=None)
        results = store.last_results(ancestors)
    succeeded = {a.process for a in attempts if a.status is RunStatus.SUCCEEDED}
    assert ancestors and set(ancestors) <= succeeded
    assert all(a.result is None and a.result_json is None for a in attempts)
    assert results == dict.fromkeys(ancestors)


# -- templates: grouped as `planner plan` groups them, expanded on demand ------------------------

PAIRED = """
processes:
  extract: {foreach: [orders, customers, products], run: workflows.jobs.demo:noop, hold: true}
  publish:
    foreach: [orders, customers, products]
    run: workflows.jobs.demo:noop
    ancestors: ["extract.{item}"]
  report: {run: workflows.jobs.demo:noop, ancestors: [publish]}
"""


def test_plan_table_groups_a_templates_processes_and_expands_them(tmp_path: Path) -> None:
    (tmp_path / "paired.yaml").write_text(PAIRED)
    registry = load_files([tmp_path / "paired.yaml"])
    planner = Planner(registry, now=START, applied_at=dict.fromkeys(registry.processes, START))
    decisions = planner.plan(START)
    grouped = nb.plan_table(decisions, registry=registry).set_index("process")
    assert list(grouped.index) == ["extract.* ×3", "publish.* ×3", "report"]
    assert grouped.loc["extract.* ×3", "members"] == 3
    assert grouped.loc["publish.* ×3", "reasons"] == "ancestors: extract.{item} (never succeeded)"
    assert grouped.loc["report", "members"] == 1
    every = nb.plan_table(decisions, registry=registry, expand=True)
    assert len(every) == 7 and set(every["members"]) == {1}
    assert list(nb.plan_table(decisions)["process"]) == list(every["process"])


def test_the_simulated_gantt_has_a_row_per_template_unless_expanded(tmp_path: Path) -> None:
    (tmp_path / "paired.yaml").write_text(PAIRED.replace(", hold: true", ""))
    registry = load_files([tmp_path / "paired.yaml"])
    sim = simulate(registry, start=START, until=START + timedelta(hours=1), slots=2)
    assert len({r.process for r in sim.runs}) == 7

    def rows(**kw: object) -> list[str]:
        fig = nb.gantt_figure(sim.runs, registry=registry, **kw)  # type: ignore[arg-type]
        return list(fig.y_range.factors)[::-1]  # top row first

    assert rows() == ["extract.* (3)", "publish.* (3)", "report"]
    expanded = rows(expand=True)
    assert len(expanded) == 7 and expanded[-1] == "report"
    assert rows() == rows(order=["extract.* (3)", "publish.* (3)", "report"])
