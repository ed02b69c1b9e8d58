"""The example workflows: job functions on a temporary data dir, and the registries' targets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from planner.live.worker import JobContext, JobHooks, JobSpec, execute, import_target
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo
from workflows.jobs import alerts, customers_cli, demo, etl

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SCHEDULED = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def ctx(attempt: int = 1, state: Any = None) -> JobContext:
    return JobContext(
        run_id="p-1", attempt=attempt, scheduled=SCHEDULED, process="p", state=state, params={}
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data dir with orders and customers extracted."""
    etl.extract("orders", data_dir=str(tmp_path), rows=2000, customers=300)
    etl.extract("customers", data_dir=str(tmp_path), customers=300)
    return tmp_path


def test_extract_is_deterministic_and_counts_runs(tmp_path: Path) -> None:
    first = etl.extract("orders", data_dir=str(tmp_path / "a"), rows=1000, ctx=ctx(state=None))
    second = etl.extract(
        "orders", data_dir=str(tmp_path / "b"), rows=1000, ctx=ctx(state=first["state"])
    )
    assert first["rows"] == 1000
    assert (first["state"], second["state"]) == ({"runs": 1}, {"runs": 2})
    a = (tmp_path / "a" / "orders.csv").read_text()
    assert a == (tmp_path / "b" / "orders.csv").read_text()
    orders = pd.read_csv(tmp_path / "a" / "orders.csv")
    assert list(orders.columns) == ["order_id", "customer_id", "order_date", "amount"]
    assert orders["order_id"].is_unique
    assert orders["customer_id"].between(1, 500).all()
    assert (orders["amount"] > 0).all()


def test_extract_customers_and_unknown_table(tmp_path: Path) -> None:
    result = etl.extract("customers", data_dir=str(tmp_path), customers=120)
    customers = pd.read_csv(result["path"])
    assert len(customers) == 120 and customers["customer_id"].is_unique
    assert set(customers["segment"]) <= set(etl.SEGMENTS)
    with pytest.raises(ValueError, match="unknown table"):
        etl.extract("invoices", data_dir=str(tmp_path))


def test_transform_fails_its_first_attempt_only_when_asked(data: Path) -> None:
    with pytest.raises(ConnectionError, match="simulated"):
        etl.transform(data_dir=str(data), fail_first_attempt=True, ctx=ctx(attempt=1))
    result = etl.transform(data_dir=str(data), fail_first_attempt=True, ctx=ctx(attempt=2))
    assert result == etl.transform(data_dir=str(data))
    assert result["orders"] == 2000 and result["unmatched_orders"] == 0


def test_transform_aggregates_revenue_per_segment(data: Path) -> None:
    etl.transform(data_dir=str(data))
    summary = pd.read_csv(data / "revenue_by_segment.csv")
    orders = pd.read_csv(data / "orders.csv")
    assert set(summary["segment"]) <= set(etl.SEGMENTS)
    assert summary["orders"].sum() == len(orders)
    assert summary["revenue"].sum() == pytest.approx(orders["amount"].sum(), abs=0.05)
    assert summary["revenue"].is_monotonic_decreasing


def test_report_writes_markdown_and_returns_totals(data: Path) -> None:
    etl.transform(data_dir=str(data))
    result = etl.report(data_dir=str(data), title="Test report", ctx=ctx(state={"runs": 2}))
    text = (data / "report.md").read_text()
    assert text.startswith("# Test report")
    assert "| segment |" in text and "p-1" in text
    assert result["state"] == {"runs": 3}
    assert result["top_segment"] in etl.SEGMENTS
    total = pd.read_csv(data / "orders.csv")["amount"].sum()
    assert result["total_revenue"] == pytest.approx(total, abs=0.05)


def test_cleanup_keeps_the_report(data: Path) -> None:
    etl.transform(data_dir=str(data))
    etl.report(data_dir=str(data))
    assert etl.cleanup(data_dir=str(data)) == 3
    assert [p.name for p in data.iterdir()] == ["report.md"]
    assert etl.cleanup(data_dir=str(data / "missing")) == 0


def test_customers_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    assert customers_cli.main(["--out", str(tmp_path / "x"), "--rows", "50"]) == 0
    assert len(pd.read_csv(tmp_path / "x" / "customers.csv")) == 50
    assert "wrote 50 customers" in capsys.readouterr().out
    monkeypatch.setenv("PLANNER_PARAM_DATA_DIR", str(tmp_path / "y"))
    monkeypatch.setenv("PLANNER_PARAM_ROWS", "70")
    assert customers_cli.main([]) == 0
    assert len(pd.read_csv(tmp_path / "y" / "customers.csv")) == 70
    assert customers_cli.main(["--rows", "0"]) == 2


def test_notify_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="workflows.alerts"):
        ok = alerts.notify("report", "report-1", 1, RunStatus.SUCCEEDED, event="on_success")
        bad = alerts.notify(
            "report", "report-2", 3, "failed", error=ErrorInfo(type="KeyError", message="'x'")
        )
    assert ok == "on_success: report run report-1 attempt 1 succeeded"
    assert "KeyError: 'x'" in bad
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING]


def test_demo_helpers() -> None:
    assert demo.sleep(0) == 0
    demo.noop()
    with pytest.raises(RuntimeError, match="boom"):
        demo.fail("boom")


# --- the registries ---------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("name", ["nightly.yaml", "adp.yaml"])
def test_registry_targets_import(name: str) -> None:
    processes = load(name)["processes"]
    for pname, process in processes.items():
        assert ("run" in process) != ("command" in process), pname
        for key in ("run", "on_success", "on_failure", "on_cancel"):
            if key in process:
                import_target(process[key])
        for ancestor in process.get("ancestors", []):
            assert ancestor in processes


def test_nightly_main_processes_are_not_cron_only() -> None:
    processes = load("nightly.yaml")["processes"]
    recurrent = {name for name, p in processes.items() if "cron" in p or "every" in p}
    assert recurrent == {"cleanup"}


def test_adp_shape() -> None:
    processes = load("adp.yaml")["processes"]
    assert processes["A"]["cron"] == "0 3 * * *" and processes["A"]["reserve"] is True
    assert processes["A"]["priority"] == 100
    assert processes["C"]["ancestors"] == ["A", "B"]
    assert all("expected_duration" in p for p in processes.values())


@pytest.mark.integration
def test_nightly_pipeline_runs_through_execute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The nightly registry's jobs, in dependency order, as the planner would submit them."""
    processes = load("nightly.yaml")["processes"]

    def attempt(name: str, number: int = 1, final: bool = True) -> Any:
        p = processes[name]
        hooks = JobHooks(on_success=p.get("on_success"), on_failure=p.get("on_failure"))
        return execute(
            JobSpec(
                process=name,
                run_id=f"{name}-1",
                attempt=number,
                scheduled=SCHEDULED,
                run=p.get("run"),
                command=p.get("command"),
                params={**p.get("params", {}), "data_dir": str(tmp_path)},
                timeout_s=60,
                hooks=hooks,
                final_attempt=final,
                cwd=str(ROOT),  # where `python -m workflows...` finds the package
            )
        )

    with caplog.at_level(logging.INFO, logger="workflows.alerts"):
        orders = attempt("extract_orders")
        customers = attempt("extract_customers")
        assert orders.status is RunStatus.SUCCEEDED, orders.error
        assert customers.status is RunStatus.SUCCEEDED, customers.error
        assert customers.result is not None and "wrote 500 customers" in customers.result
        assert orders.new_state == {"runs": 1}

        first = attempt("transform", 1, final=False)
        assert first.status is RunStatus.FAILED
        assert first.error is not None and first.error.type == "ConnectionError"
        second = attempt("transform", 2)
        assert second.status is RunStatus.SUCCEEDED, second.error

        report = attempt("report")
        assert report.status is RunStatus.SUCCEEDED, report.error
    assert (tmp_path / "report.md").exists()
    assert [r.getMessage() for r in caplog.records if r.name == "workflows.alerts"] == [
        "on_success: report run report-1 attempt 1 succeeded"
    ]
