"""A small nightly ETL: fake orders and customers → revenue per segment → report.

Every function is an ordinary Python function that the planner calls on a Dask worker with the
process's ``params`` as keyword arguments (and ``ctx`` when it is declared). Data is generated
deterministically from a seed, kept small (thousands of rows) and written as CSV under
``data_dir`` (default ``./workflow-data``, relative to the worker's working directory).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from planner.live.worker import JobContext

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = "workflow-data"
SEGMENTS = ("consumer", "small_business", "enterprise")
COUNTRIES = ("ES", "FR", "DE", "IT", "PT")


def make_customers(rows: int = 500, seed: int = 42) -> pd.DataFrame:
    """``rows`` customers: customer_id, name, segment, country, signup_date."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, rows + 1)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "name": [f"customer-{i:05d}" for i in ids],
            "segment": rng.choice(SEGMENTS, size=rows, p=[0.6, 0.3, 0.1]),
            "country": rng.choice(COUNTRIES, size=rows),
            "signup_date": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 730, size=rows), unit="D"),
        }
    )


def make_orders(rows: int = 5000, customers: int = 500, seed: int = 7) -> pd.DataFrame:
    """``rows`` orders of customers ``1..customers``: order_id, customer_id, order_date, amount."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, rows + 1),
            "customer_id": rng.integers(1, customers + 1, size=rows),
            "order_date": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(rng.integers(0, 90, size=rows), unit="D"),
            "amount": rng.gamma(shape=2.0, scale=40.0, size=rows).round(2),
        }
    )


def _data_dir(data_dir: str | Path) -> Path:
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _count_runs(ctx: JobContext | None) -> dict[str, Any]:
    """The next saved state: how many times this process has succeeded (kept by the planner)."""
    previous = ctx.state if ctx is not None and isinstance(ctx.state, dict) else {}
    return {"runs": int(previous.get("runs", 0)) + 1}


def extract(
    table: str,
    data_dir: str = DEFAULT_DATA_DIR,
    rows: int | None = None,
    customers: int = 500,
    seed: int = 7,
    ctx: JobContext | None = None,
) -> dict[str, Any]:
    """Write ``<table>.csv`` ("orders" or "customers") of fake data into ``data_dir``."""
    if table == "orders":
        frame = make_orders(rows=rows or 5000, customers=customers, seed=seed)
    elif table == "customers":
        frame = make_customers(rows=rows or customers, seed=seed)
    else:
        raise ValueError(f"unknown table {table!r}; expected 'orders' or 'customers'")
    path = _data_dir(data_dir) / f"{table}.csv"
    frame.to_csv(path, index=False)
    log.info("extracted %d %s rows to %s", len(frame), table, path)
    return {"table": table, "rows": len(frame), "path": str(path), "state": _count_runs(ctx)}


def transform(
    data_dir: str = DEFAULT_DATA_DIR,
    fail_first_attempt: bool = False,
    ctx: JobContext | None = None,
) -> dict[str, Any]:
    """Join orders with customers and write revenue per segment to ``revenue_by_segment.csv``.

    With ``fail_first_attempt`` the first attempt of each run raises (a stand-in for a transient
    warehouse error), deterministically, to show retries.
    """
    if fail_first_attempt and ctx is not None and ctx.attempt == 1:
        raise ConnectionError("warehouse connection reset (simulated; retry will succeed)")
    directory = Path(data_dir)
    orders = pd.read_csv(directory / "orders.csv")
    customers = pd.read_csv(directory / "customers.csv")
    joined = orders.merge(customers, on="customer_id", how="inner", validate="many_to_one")
    unmatched = len(orders) - len(joined)
    summary = (
        joined.groupby("segment")
        .agg(
            customers=("customer_id", "nunique"),
            orders=("order_id", "count"),
            revenue=("amount", "sum"),
        )
        .reset_index()
        .sort_values("revenue", ascending=False)
    )
    summary["revenue"] = summary["revenue"].round(2)
    summary["avg_order_value"] = (summary["revenue"] / summary["orders"]).round(2)
    path = directory / "revenue_by_segment.csv"
    summary.to_csv(path, index=False)
    return {
        "segments": len(summary),
        "orders": len(joined),
        "unmatched_orders": unmatched,
        "path": str(path),
    }


def report(
    data_dir: str = DEFAULT_DATA_DIR, title: str = "Nightly revenue", ctx: JobContext | None = None
) -> dict[str, Any]:
    """Write ``report.md`` from ``revenue_by_segment.csv``; return the totals."""
    directory = Path(data_dir)
    summary = pd.read_csv(directory / "revenue_by_segment.csv")
    total = float(summary["revenue"].sum())
    top = str(summary.iloc[0]["segment"]) if len(summary) else None
    lines = [f"# {title}", ""]
    if ctx is not None:
        lines += [f"Run `{ctx.run_id}` (attempt {ctx.attempt}), scheduled {ctx.scheduled}.", ""]
    lines += [
        "| segment | customers | orders | revenue | avg order |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in summary.itertuples(index=False):
        lines.append(
            f"| {row.segment} | {row.customers} | {row.orders} "
            f"| {row.revenue:,.2f} | {row.avg_order_value:,.2f} |"
        )
    lines += ["", f"Total revenue: {total:,.2f}", ""]
    path = directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return {
        "total_revenue": round(total, 2),
        "top_segment": top,
        "path": str(path),
        "state": _count_runs(ctx),
    }


def cleanup(data_dir: str = DEFAULT_DATA_DIR, keep: tuple[str, ...] = ("report.md",)) -> int:
    """Delete the intermediate files of ``data_dir`` except ``keep``; return how many."""
    directory = Path(data_dir)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink()
            removed += 1
    return removed
