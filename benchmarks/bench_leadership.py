"""Leadership benchmarks: takeover time, duplicates under repeated kills, and the cost of fencing.

1. **Takeover**: a lease holder (``planner run``) running a long job and a standby; kill -9 the
   holder and time until the standby holds the lease. ``--trials`` times, with
   ``--lease-timeout`` (the takeover cannot come sooner than the holder's last renewal plus the
   timeout, so expect roughly timeout − renewal age + the standby's poll).
2. **Duplicates**: two planners on one SQLite database run ``--runs`` no-op runs (processes with
   ``every: 1s``) while the benchmark kills the lease holder (kill -9) and, in between, one of
   its worker processes, again and again, restarting killed planners. Every execution appends
   ``run_id attempt`` to a log; a duplicate is an attempt that executed twice.
3. **Fencing cost**: completion → dispatch gap on a chain of no-op jobs through the live driver,
   with the store fenced (lease held: every write transaction checks the fencing number) and
   unfenced, interleaved in the same run.

Run: ``python -m benchmarks.bench_leadership [--trials 20] [--runs 10000] [--chain 300] [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from distributed import Client, LocalCluster

from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver
from registry.model import ProcessDef, RegistryDef
from registry.storage.sqlstore import SqlStore

REPO = Path(__file__).resolve().parents[1]


def record(log: str, ctx: Any = None) -> None:
    """A no-op job that appends its run id and attempt to ``log`` (one small O_APPEND write)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.run_id} {ctx.attempt}\n".encode())
    finally:
        os.close(fd)


def hang(seconds: float = 3600.0) -> None:
    time.sleep(seconds)


def stamp() -> tuple[float, float]:
    t = time.time()
    return t, time.time()


def _planner_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "planner"
    return [str(exe) if exe.exists() else shutil.which("planner") or "planner", *args]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _planner_cmd(*args),
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(what)


def _holder_pid(store: SqlStore) -> int | None:
    state = store.lease_state()
    now = datetime.now(UTC)
    if state.holder is None or state.expires_at is None or state.expires_at <= now:
        return None
    seen = state.planner(state.holder)
    return seen.pid if seen else None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def takeover_times(trials: int, lease_timeout: float, tmp: Path) -> list[float]:
    registry = tmp / "takeover.yaml"
    registry.write_text("processes:\n  long: {run: benchmarks.bench_leadership:hang}\n")
    times: list[float] = []
    for trial in range(trials):
        db = f"sqlite:///{tmp / f'takeover-{trial}.db'}"
        args = ["--db", db, "run", str(registry), "--lease-timeout", f"{lease_timeout}s"]
        args += ["--local-threads", "--dashboard-address", ":0", "--page-port", "0"]
        times.append(_one_takeover(db, args, tmp))
    return times


def _one_takeover(db: str, args: list[str], tmp: Path) -> float:
    holder = _start(args, tmp / "takeover.log")
    standby: subprocess.Popen[bytes] | None = None
    try:
        store = _until(lambda: _open(db), 60, "the database")
        _until(lambda: _holder_pid(store) == holder.pid, 60, "the holder to lead")
        standby = _start(args, tmp / "takeover.log")
        _until(
            lambda: any(p.role == "standby" for p in store.lease_state().planners),
            60,
            "the standby",
        )
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        new = standby.pid
        _until(lambda: _holder_pid(store) == new, 120, "the takeover")
        took = time.monotonic() - killed
        store.close()
        return took
    finally:
        _kill(holder)
        if standby is not None:
            _kill(standby)


def _open(url: str) -> SqlStore | None:
    try:
        return SqlStore(url)
    except Exception:
        return None


def duplicates_under_kills(
    runs: int, tmp: Path, *, every_s: float = 4.0, processes: int = 50
) -> dict[str, Any]:
    log = tmp / "executions.log"
    lines = ["slots: 8", "processes:"]
    for i in range(processes):
        lines += [
            f"  p{i:02d}:",
            "    run: benchmarks.bench_leadership:record",
            f"    params: {{log: '{log}'}}",
            "    every: 1s",
            "    missed: all",
            "    retries: 3",
        ]
    registry = tmp / "chaos.yaml"
    registry.write_text("\n".join(lines) + "\n")
    db = f"sqlite:///{tmp / 'chaos.db'}"
    args = ["--db", db, "run", str(registry), "--lease-timeout", "3s", "--workers", "2"]
    args += ["--dashboard-address", ":0", "--page-port", "0"]
    planners = [_start(args, tmp / "chaos.log"), _start(args, tmp / "chaos.log")]
    store = _until(lambda: _open(db), 60, "the database")
    kills = worker_kills = exits = 0
    rng = random.Random(7)
    began = time.monotonic()
    try:
        while _succeeded(store) < runs:
            time.sleep(every_s)  # the chaos rhythm, not synchronisation
            for i, proc in enumerate(planners):  # one that exited by itself is started again
                if proc.poll() is not None:
                    exits += 1
                    planners[i] = _start(args, tmp / "chaos.log")
            pid = _holder_pid(store)
            holder = next((p for p in planners if p.pid == pid), None)
            if holder is None:
                continue
            children = [
                c for c in psutil.Process(holder.pid).children() if "python" in c.name().lower()
            ]
            if children and rng.random() < 0.4:
                rng.choice(children).kill()  # a worker process dies mid-job
                worker_kills += 1
                continue
            _kill(holder)
            kills += 1
            planners[planners.index(holder)] = _start(args, tmp / "chaos.log")
    finally:
        for proc in planners:
            _kill(proc)
    elapsed = time.monotonic() - began
    executed = log.read_text().split("\n")[:-1] if log.exists() else []
    counts: dict[str, int] = {}
    for line in executed:
        counts[line] = counts.get(line, 0) + 1
    double_success = _double_successes(store)
    store.close()
    return {
        "runs_succeeded": runs,
        "executions": len(executed),
        "duplicate_attempts": sum(1 for n in counts.values() if n > 1),
        "runs_with_two_successes": double_success,
        "planner_kills": kills,
        "worker_kills": worker_kills,
        "planner_exits": exits,  # planners that ended by themselves (restarted)
        "seconds": elapsed,
    }


def _succeeded(store: SqlStore) -> int:
    from sqlalchemy import func, select

    from registry.storage.tables import runs

    with store.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(runs).where(runs.c.status == "succeeded")
            ).scalar_one()
        )


def _double_successes(store: SqlStore) -> int:
    from sqlalchemy import func, select

    from registry.storage.tables import attempts

    with store.engine.connect() as conn:
        query = (
            select(attempts.c.run_id)
            .where(attempts.c.status == "succeeded")
            .group_by(attempts.c.run_id)
            .having(func.count() > 1)
        )
        return len(conn.execute(query).all())


def chain_gaps(client: Client, n: int, db: Path, *, fenced: bool) -> list[float]:
    chain = [
        ProcessDef(
            name=f"step{i:04d}",
            run="benchmarks.bench_leadership:stamp",
            ancestors=(f"step{i - 1:04d}",) if i else (),
        )
        for i in range(n)
    ]
    store = SqlStore(f"sqlite:///{db}")
    store.apply(RegistryDef(processes={p.name: p for p in chain}), now=datetime.now(UTC))
    if fenced:
        store.acquire_lease("bench", now=datetime.now(UTC), timeout=timedelta(hours=1))
    LiveDriver(store, Dispatcher(client, remote=False), poll_interval=1.0).run(until_idle=True)
    attempts = sorted(store.history(limit=None), key=lambda a: a.process)
    store.close()
    gaps = []
    for prev, nxt in itertools.pairwise(attempts):
        assert prev.end is not None and nxt.start is not None
        gaps.append((nxt.start - prev.end).total_seconds() * 1000)
    return gaps


def fencing_cost(chain: int, rounds: int, tmp: Path) -> dict[str, float]:
    gaps: dict[bool, list[float]] = {False: [], True: []}
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.submit(stamp, pure=False).result()
        for r in range(rounds):
            for fenced in (False, True) if r % 2 == 0 else (True, False):
                db = tmp / f"chain-{r}-{int(fenced)}.db"
                gaps[fenced] += chain_gaps(client, chain, db, fenced=fenced)
    return {
        "unfenced_p50_ms": statistics.median(gaps[False]),
        "fenced_p50_ms": statistics.median(gaps[True]),
        "unfenced_p99_ms": statistics.quantiles(gaps[False], n=100)[98],
        "fenced_p99_ms": statistics.quantiles(gaps[True], n=100)[98],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--lease-timeout", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--processes", type=int, default=50, help="every: 1s processes (duplicates)"
    )
    parser.add_argument("--chain", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="3 trials, 500 runs, chain 100")
    parser.add_argument("--only", choices=["takeover", "duplicates", "fencing"])
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.runs, args.chain, args.rounds = 3, 500, 100, 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.only in (None, "fencing"):
            results["fencing"] = fencing_cost(args.chain, args.rounds, tmp)
            f = results["fencing"]
            print(f"completion -> dispatch gap, chain of {args.chain} x {args.rounds} rounds, ms")
            print(f"  unfenced p50 {f['unfenced_p50_ms']:.2f}  p99 {f['unfenced_p99_ms']:.2f}")
            print(f"  fenced   p50 {f['fenced_p50_ms']:.2f}  p99 {f['fenced_p99_ms']:.2f}")
        if args.only in (None, "takeover"):
            times = takeover_times(args.trials, args.lease_timeout, tmp)
            results["takeover_s"] = {"p50": statistics.median(times), "max": max(times)}
            print(
                f"takeover after kill -9, lease timeout {args.lease_timeout:g}s, "
                f"{len(times)} trials: p50 {statistics.median(times):.2f}s, max {max(times):.2f}s"
            )
        if args.only in (None, "duplicates"):
            d = duplicates_under_kills(args.runs, tmp, processes=args.processes)
            results["duplicates"] = d
            print(
                f"{d['runs_succeeded']} runs, {d['planner_kills']} planner kills, "
                f"{d['worker_kills']} worker kills, {d['planner_exits']} planner exits "
                f"in {d['seconds']:.0f}s: "
                f"{d['duplicate_attempts']} attempts executed twice, "
                f"{d['runs_with_two_successes']} runs with two successes "
                f"({d['executions']} executions)"
            )
    return results


if __name__ == "__main__":
    main()
