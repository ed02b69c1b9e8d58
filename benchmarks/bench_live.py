"""Live benchmarks: the planner on a real in-process LocalCluster against raw Dask, same run.

1. Completion → next dispatch latency on a chain of N no-op jobs: the gap between job i ending
   on the worker and job i+1 starting on the worker. Baseline: raw Dask with the client in the
   loop (``as_completed`` then ``submit``).
2. Throughput of M independent no-op jobs through the planner with SQLite persistence, against
   raw ``client.map`` on the same cluster.

Run: ``python -m benchmarks.bench_live [--chain 500] [--jobs 10000] [--quick]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster, as_completed

from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver
from registry.model import ProcessDef, RegistryDef
from registry.storage.sqlstore import SqlStore


def stamp() -> tuple[float, float]:
    """A no-op job that says when it ran (wall clock of the worker, shared in-process)."""
    t = time.time()
    return t, time.time()


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p99": q[98], "max": ordered[-1], "n": len(ordered)}


def raw_chain_gaps(client: Client, n: int) -> list[float]:
    gaps: list[float] = []
    last_end: float | None = None
    future = client.submit(stamp, pure=False)
    for _ in range(n):
        for done in as_completed([future]):
            start, end = done.result()
            if last_end is not None:
                gaps.append((start - last_end) * 1000)
            last_end = end
        future = client.submit(stamp, pure=False)
    future.result()
    return gaps


def _registry(processes: list[ProcessDef], slots: int | None = None) -> RegistryDef:
    return RegistryDef(slots=slots, processes={p.name: p for p in processes})


def planner_chain_gaps(client: Client, n: int, db: Path) -> list[float]:
    chain = [
        ProcessDef(
            name=f"step{i:04d}",
            run="benchmarks.bench_live:stamp",
            ancestors=(f"step{i - 1:04d}",) if i else (),
        )
        for i in range(n)
    ]
    store = SqlStore(f"sqlite:///{db}")
    store.apply(_registry(chain), now=datetime.now(UTC))
    LiveDriver(store, Dispatcher(client, remote=False), poll_interval=1.0).run(until_idle=True)
    attempts = sorted(store.history(limit=None), key=lambda a: a.process)
    store.close()
    gaps: list[float] = []
    for prev, nxt in itertools.pairwise(attempts):
        assert prev.end is not None and nxt.start is not None
        gaps.append((nxt.start - prev.end).total_seconds() * 1000)
    return gaps


def raw_map_rate(client: Client, m: int) -> float:
    t0 = time.perf_counter()
    futures = client.map(lambda _: stamp(), range(m), pure=False)
    client.gather(futures)
    return m / (time.perf_counter() - t0)


def planner_rate(client: Client, m: int, db: Path, slots: int | None) -> float:
    jobs = [ProcessDef(name=f"job{i:05d}", run="benchmarks.bench_live:stamp") for i in range(m)]
    store = SqlStore(f"sqlite:///{db}")
    store.apply(_registry(jobs, slots), now=datetime.now(UTC))
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=1.0)
    t0 = time.perf_counter()
    summary = driver.run(until_idle=True)
    rate = m / (time.perf_counter() - t0)
    store.close()
    assert summary.statuses.get("succeeded") == m, summary.statuses
    return rate


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chain", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="chain 100, jobs 1000")
    args = parser.parse_args(argv)
    if args.quick:
        args.chain, args.jobs = 100, 1000
    results: dict[str, Any] = {}
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as tmp,
    ):
        client.submit(stamp, pure=False).result()  # warm up
        results["raw_chain_ms"] = _percentiles(raw_chain_gaps(client, args.chain))
        results["planner_chain_ms"] = _percentiles(
            planner_chain_gaps(client, args.chain, Path(tmp) / "chain.db")
        )
        results["raw_map_per_s"] = raw_map_rate(client, args.jobs)
        results["planner_per_s_threads"] = planner_rate(
            client, args.jobs, Path(tmp) / "tp1.db", None
        )
        results["planner_per_s_64"] = planner_rate(client, args.jobs, Path(tmp) / "tp2.db", 64)
    raw, ours = results["raw_chain_ms"], results["planner_chain_ms"]
    print(f"chain of {args.chain} no-op jobs, gap end(i) -> start(i+1), ms")
    print(f"  {'':10} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for label, row in (("raw dask", raw), ("planner", ours)):
        print(f"  {label:10} " + " ".join(f"{row[k]:8.2f}" for k in ("p50", "p90", "p99", "max")))
    print(f"{args.jobs} independent no-op jobs, runs/s")
    print(f"  raw client.map          {results['raw_map_per_s']:10.0f}")
    for key, label in (
        ("planner_per_s_threads", "slots = threads"),
        ("planner_per_s_64", "slots = 64"),
    ):
        share = results[key] / results["raw_map_per_s"]
        print(f"  planner, {label:15} {results[key]:10.0f}  ({share:.0%} of raw)")
    return results


if __name__ == "__main__":
    main()
