"""Peer comparison: dask-planner against Luigi (central scheduler ``luigid``) and raw Dask.

All systems are measured in the same run on the same machine, interleaved: each repetition runs
every system once, and the order of the systems rotates from one repetition to the next.

1. ``chain``: chains of no-op jobs, each depending on the previous one; the gap between job i
   ending and job i+1 starting, measured where the jobs run (p50 / p99 over all repetitions).
   Raw Dask twice: the client in the loop (``as_completed`` then ``submit``, as ``bench_live``)
   and Dask resolving the dependency itself (the whole chain submitted at once) — the floor.
2. ``throughput``: independent no-op jobs, jobs per second from the start of the run to the last
   completion: the planner with ``slots: 64`` and with default slots (the cluster's threads), raw
   ``client.map``, and one ``luigi.build([...], workers=N)``.
3. ``dag``: a seeded layered DAG of jobs that sleep 10–100 ms (``benchmarks.dag``), 4 slots:
   makespan (first start → last end on the workers) against ``max(critical path, work / 4)``.

The planner is ``LiveDriver(...).run(until_idle=True)`` in-process with a SQLite file, as in
``bench_live``, on an in-process ``LocalCluster`` (``processes=False``, one worker; 2 threads for
chains and throughput, 4 for the DAG) set up as ``planner run`` sets up its own (messages batched
for 1 ms at most, ``planner.live.comms``). Raw Dask runs on a cluster with Dask's own settings,
and again on the planner's. Luigi runs in a child process of its
own (``luigi.build`` against a ``luigid`` started here on a free port), so its forked task processes
fork from a small interpreter rather than from this one, which holds the Dask cluster.

Run: ``python -m benchmarks.bench_peers [--quick] [--only WORKLOAD] [--peers luigi,dask,planner]``.
The Markdown report goes to stdout and to ``--out`` (default ``/tmp/results-peers.md``), progress
to stderr. On the shared 2-core VM ``--quick`` takes ≈ 1 min; the full sizes ≈ 30 min per
repetition (``--reps 1``), most of it Luigi's 10 000 independent jobs (≈ 15 min).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.dag import Job, critical_path_s, layered_jobs, lower_bound_s

WORKLOADS = ("chain", "throughput", "dag")
PEERS = ("planner", "luigi", "dask")
DAG_SLOTS = 4
LUIGI_TIMEOUT_S = 1800.0

#: systems per workload, as (key, peer); the key's label is in LABELS
SYSTEMS: dict[str, tuple[tuple[str, str], ...]] = {
    "chain": (
        ("planner", "planner"),
        ("luigi", "luigi"),
        ("dask-loop", "dask"),
        ("dask-deps", "dask"),
        ("dask-loop-quick", "dask"),
        ("dask-deps-quick", "dask"),
    ),
    "throughput": (
        ("planner-64", "planner"),
        ("planner-default", "planner"),
        ("luigi", "luigi"),
        ("dask-map", "dask"),
        ("dask-map-quick", "dask"),
    ),
    "dag": (
        ("planner", "planner"),
        ("planner-hints", "planner"),
        ("luigi", "luigi"),
        ("dask", "dask"),
        ("dask-quick", "dask"),
    ),
}
LABELS = {
    "planner": "dask-planner",
    "planner-64": "dask-planner, `slots: 64`",
    "planner-default": "dask-planner, default slots (= cluster threads)",
    "planner-hints": "dask-planner, with `expected_duration` = the true duration",
    "luigi": "Luigi (`luigid`)",
    "dask-loop": "raw Dask, client in the loop (`as_completed` then `submit`)",
    "dask-deps": "raw Dask resolving the dependency (whole chain submitted) — floor",
    "dask-map": "raw Dask, `client.map`",
    "dask": "raw Dask, `submit` with the dependencies' futures",
    "dask-loop-quick": "raw Dask, client in the loop, on the planner's cluster settings",
    "dask-deps-quick": "raw Dask resolving the dependency, on the planner's cluster settings",
    "dask-map-quick": "raw Dask, `client.map`, on the planner's cluster settings",
    "dask-quick": "raw Dask, `submit` with dependencies, on the planner's cluster settings",
}


# -- measurements ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    """One system's measurement in one repetition."""

    gaps_ms: list[float] = field(default_factory=list)  # chain
    rate: float | None = None  # throughput, jobs/s
    makespan_s: float | None = None  # dag: first start -> last end
    wall_s: float | None = None  # start of the run -> last completion (as seen by the driver)
    failed: str | None = None  # why there is no number (e.g. a timeout)


def _gaps(stamps: list[tuple[float, float]]) -> list[float]:
    return [(b[0] - a[1]) * 1000 for a, b in itertools.pairwise(stamps)]


def _span(stamps: list[tuple[float, float]]) -> float:
    return max(e for _, e in stamps) - min(s for s, _ in stamps)


class Counter:
    """Unique names for the temporary files of each measurement."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def path(self, stem: str) -> Path:
        self.n += 1
        return self.root / f"{self.n:03d}-{stem}"


# -- the planner ----------------------------------------------------------------------------------


def planner_chain(client: Any, n: int, names: Counter) -> Sample:
    from benchmarks.bench_live import planner_chain_gaps

    return Sample(gaps_ms=planner_chain_gaps(client, n, names.path("chain.db")))


def planner_throughput(client: Any, m: int, names: Counter, slots: int | None) -> Sample:
    from benchmarks.bench_live import planner_rate

    return Sample(rate=planner_rate(client, m, names.path("jobs.db"), slots))


def planner_dag(client: Any, jobs: list[Job], names: Counter, *, hints: bool) -> Sample:
    from planner.live.dispatch import Dispatcher
    from planner.live.loop import LiveDriver
    from registry.model import ProcessDef, RegistryDef
    from registry.storage.sqlstore import SqlStore

    processes = [
        ProcessDef(
            name=f"j{j.index:05d}",
            run="benchmarks.dag:sleep_ms",
            params={"ms": j.ms},
            ancestors=tuple(f"j{d:05d}" for d in j.deps),
            expected_duration=timedelta(milliseconds=j.ms) if hints else None,
        )
        for j in jobs
    ]
    store = SqlStore(f"sqlite:///{names.path('dag.db')}")
    store.apply(
        RegistryDef(slots=DAG_SLOTS, processes={p.name: p for p in processes}),
        now=datetime.now(UTC),
    )
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=1.0)
    t0 = time.perf_counter()
    summary = driver.run(until_idle=True)
    wall = time.perf_counter() - t0
    attempts = store.history(limit=None)
    store.close()
    assert summary.statuses.get("succeeded") == len(jobs), summary.statuses
    stamps = [(a.start.timestamp(), a.end.timestamp()) for a in attempts if a.start and a.end]
    return Sample(makespan_s=_span(stamps), wall_s=wall)


# -- raw Dask -------------------------------------------------------------------------------------


def dask_chain_loop(client: Any, n: int) -> Sample:
    from benchmarks.bench_live import raw_chain_gaps

    return Sample(gaps_ms=raw_chain_gaps(client, n))


def dask_chain_deps(client: Any, n: int) -> Sample:
    from benchmarks.dag import stamp_after

    futures: list[Any] = []
    prev: Any = None
    for _ in range(n):
        prev = client.submit(stamp_after, prev, pure=False)
        futures.append(prev)
    return Sample(gaps_ms=_gaps(client.gather(futures)))


def dask_map(client: Any, m: int) -> Sample:
    from benchmarks.bench_live import raw_map_rate

    return Sample(rate=raw_map_rate(client, m))


def dask_dag(client: Any, jobs: list[Job]) -> Sample:
    from benchmarks.dag import sleep_after

    t0 = time.perf_counter()
    futures: dict[int, Any] = {}
    for j in jobs:  # topological order: earlier submissions get higher priority in Dask
        futures[j.index] = client.submit(
            sleep_after, j.ms, *(futures[d] for d in j.deps), pure=False
        )
    stamps = client.gather(list(futures.values()))
    return Sample(makespan_s=_span(stamps), wall_s=time.perf_counter() - t0)


# -- Luigi ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def luigid(root: Path, deadline_s: float = 30.0) -> Iterator[int]:
    """A ``luigid`` on a free port with its state and logs under ``root``; yields the port."""
    port = _free_port()
    logdir = root / "luigid-logs"
    logdir.mkdir()
    argv = [
        sys.executable,
        "-c",
        "import sys; from luigi.cmdline import luigid; luigid(sys.argv[1:])",
        *("--address", "127.0.0.1", "--port", str(port)),
        *("--logdir", str(logdir), "--state-path", str(root / "luigid-state.pickle")),
    ]
    with open(logdir / "luigid.out", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + deadline_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"luigid exited ({proc.returncode}); see {logdir}/luigid.out")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"luigid did not listen on {port} in {deadline_s} s"
                    ) from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@functools.cache
def _luigi_tasks() -> dict[str, Any]:
    """The Luigi task classes (defined on first use, so Luigi is imported only where it runs).

    Each task's output is a file holding ``start end`` (wall clock, taken in ``run()`` in the
    forked task process): its existence is ``complete()``, its content the stamps."""
    import luigi  # type: ignore[import-untyped,unused-ignore]

    def finish(task: Any, start: float) -> None:
        end = time.time()
        with task.output().open("w") as f:
            f.write(f"{start!r} {end!r}")

    class PeerChainStep(luigi.Task):  # type: ignore[misc,unused-ignore]
        root = luigi.Parameter()
        i = luigi.IntParameter()

        def requires(self) -> Any:
            return PeerChainStep(root=self.root, i=self.i - 1) if self.i else []

        def output(self) -> Any:
            return luigi.LocalTarget(os.path.join(self.root, f"{self.i:06d}"))

        def run(self) -> None:
            finish(self, time.time())

    class PeerNoop(luigi.Task):  # type: ignore[misc,unused-ignore]
        root = luigi.Parameter()
        i = luigi.IntParameter()

        def output(self) -> Any:
            return luigi.LocalTarget(os.path.join(self.root, f"{self.i:06d}"))

        def run(self) -> None:
            finish(self, time.time())

    class PeerDagJob(luigi.Task):  # type: ignore[misc,unused-ignore]
        root = luigi.Parameter()
        n = luigi.IntParameter()
        layers = luigi.IntParameter()
        seed = luigi.IntParameter()
        i = luigi.IntParameter()

        def _job(self) -> Job:
            return _cached_dag(self.n, self.layers, self.seed)[self.i]

        def requires(self) -> Any:
            return [
                PeerDagJob(root=self.root, n=self.n, layers=self.layers, seed=self.seed, i=d)
                for d in self._job().deps
            ]

        def output(self) -> Any:
            return luigi.LocalTarget(os.path.join(self.root, f"{self.i:06d}"))

        def run(self) -> None:
            start = time.time()
            time.sleep(self._job().ms / 1000)
            finish(self, start)

    class PeerDagAll(luigi.WrapperTask):  # type: ignore[misc,unused-ignore]
        """The DAG's sinks: one root, so one ``Worker.add`` walks the DAG once (a list of roots
        would walk the shared ancestors again for each root)."""

        root = luigi.Parameter()
        n = luigi.IntParameter()
        layers = luigi.IntParameter()
        seed = luigi.IntParameter()

        def requires(self) -> Any:
            jobs = _cached_dag(self.n, self.layers, self.seed)
            needed = {d for j in jobs for d in j.deps}
            return [
                PeerDagJob(root=self.root, n=self.n, layers=self.layers, seed=self.seed, i=j.index)
                for j in jobs
                if j.index not in needed
            ]

    return {
        "chain": PeerChainStep,
        "independent": PeerNoop,
        "dag": PeerDagJob,
        "dag-all": PeerDagAll,
    }


@functools.cache
def _cached_dag(n: int, layers: int, seed: int) -> tuple[Job, ...]:
    return tuple(layered_jobs(n, layers, seed=seed))


def luigi_child(spec: dict[str, Any]) -> None:
    """In the child process: one ``luigi.build`` as ``spec`` says; print ``{"wall", "ok"}``."""
    import luigi

    tasks = _luigi_tasks()
    root, kind = spec["root"], spec["kind"]
    if kind == "chain":
        todo = [tasks["chain"](root=root, i=spec["n"] - 1)]
    elif kind == "independent":
        todo = [tasks["independent"](root=root, i=i) for i in range(spec["n"])]
    else:
        n, layers, seed = spec["n"], spec["layers"], spec["seed"]
        todo = [tasks["dag-all"](root=root, n=n, layers=layers, seed=seed)]
    t0 = time.perf_counter()
    result = luigi.build(
        todo,
        detailed_summary=True,
        workers=spec["workers"],
        scheduler_host="127.0.0.1",
        scheduler_port=spec["port"],
        local_scheduler=False,
        log_level="WARNING",
    )
    wall = time.perf_counter() - t0
    ok = result.status == luigi.execution_summary.LuigiStatusCode.SUCCESS
    print(json.dumps({"wall": wall, "ok": ok, "status": str(result.status)}))


def luigi_run(port: int, names: Counter, kind: str, n: int, workers: int, **extra: int) -> Sample:
    """Run one ``luigi.build`` in a child process; read the stamps its tasks wrote."""
    out = names.path(f"luigi-{kind}")
    out.mkdir()
    spec = {"kind": kind, "root": str(out), "n": n, "workers": workers, "port": port, **extra}
    argv = [sys.executable, "-m", "benchmarks.bench_peers", "--luigi-child", json.dumps(spec)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=LUIGI_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return Sample(failed=f"timed out after {LUIGI_TIMEOUT_S:.0f} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"luigi child failed ({done.returncode}):\n{tail}")
    report = json.loads(lines[-1])
    stamps = []
    for path in sorted(out.iterdir()):
        start, end = path.read_text().split()
        stamps.append((float(start), float(end)))
    if not report["ok"] or len(stamps) != n:
        return Sample(failed=f"{report['status']}, {len(stamps)}/{n} tasks done")
    if kind == "chain":
        return Sample(gaps_ms=_gaps(stamps))
    if kind == "independent":
        return Sample(rate=n / report["wall"], wall_s=report["wall"])
    return Sample(makespan_s=_span(stamps), wall_s=report["wall"])


# -- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    chains: tuple[int, ...]
    jobs: tuple[int, ...]
    dag_n: int
    dag_layers: int
    reps: int


FULL = Sizes(chains=(200, 500), jobs=(5000, 10_000), dag_n=500, dag_layers=10, reps=2)
QUICK = Sizes(chains=(20, 50), jobs=(100, 200), dag_n=40, dag_layers=4, reps=2)


@dataclass(slots=True)
class Results:
    # (workload, size) -> system -> samples, one per repetition
    samples: dict[tuple[str, int], dict[str, list[Sample]]] = field(default_factory=dict)
    dag: list[Job] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, workload: str, size: int, system: str, sample: Sample) -> None:
        self.samples.setdefault((workload, size), {}).setdefault(system, []).append(sample)


@contextlib.contextmanager
def dask_client(threads: int, *, quick: bool = False) -> Iterator[Any]:
    """An in-process cluster with Dask's settings, or (``quick``) as ``planner run`` builds its
    own: message batching shortened to 1 ms (``planner.live.comms``)."""
    from distributed import Client, LocalCluster

    from benchmarks.bench_live import stamp
    from planner.live.comms import quicken_cluster

    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=threads, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        if quick:
            quicken_cluster(client)
        client.submit(stamp, pure=False).result()  # warm up
        yield client


def _interleaved(
    results: Results,
    workload: str,
    size: int,
    reps: int,
    runners: dict[str, Callable[[], Sample]],
) -> None:
    order = list(runners)
    for rep in range(reps):
        turn = order[rep % len(order) :] + order[: rep % len(order)]
        for system in turn:
            t0 = time.perf_counter()
            sample = runners[system]()
            results.add(workload, size, system, sample)
            took = time.perf_counter() - t0
            print(
                f"  {workload} {size} rep {rep + 1}/{reps} {system}: {_cell(workload, [sample])}"
                f" ({took:.1f} s)",
                file=sys.stderr,
                flush=True,
            )


def run(args: argparse.Namespace, sizes: Sizes) -> Results:
    peers = set(args.peers)
    results = Results()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-peers-")))
        names = Counter(tmp)
        port = stack.enter_context(luigid(tmp)) if "luigi" in peers else 0
        lw = args.luigi_workers

        def wanted(workload: str) -> list[str]:
            return [key for key, peer in SYSTEMS[workload] if peer in peers]

        needs_small_cluster = ("planner" in peers or "dask" in peers) and (
            "chain" in args.only or "throughput" in args.only
        )
        with (
            dask_client(2) if needs_small_cluster else contextlib.nullcontext() as client,
            dask_client(2, quick=True)
            if needs_small_cluster
            else contextlib.nullcontext() as quick,
        ):
            if quick is not None and "planner" in peers:  # warm up the planner's code paths
                planner_chain(quick, 5, names)
            if "luigi" in peers:
                luigi_run(port, names, "chain", 3, lw)
            for n in sizes.chains if "chain" in args.only else ():
                chain: dict[str, Callable[[], Sample]] = {
                    "planner": functools.partial(planner_chain, quick, n, names),
                    "luigi": functools.partial(luigi_run, port, names, "chain", n, lw),
                    "dask-loop": functools.partial(dask_chain_loop, client, n),
                    "dask-deps": functools.partial(dask_chain_deps, client, n),
                    "dask-loop-quick": functools.partial(dask_chain_loop, quick, n),
                    "dask-deps-quick": functools.partial(dask_chain_deps, quick, n),
                }
                _interleaved(
                    results, "chain", n, sizes.reps, {k: chain[k] for k in wanted("chain")}
                )
            for m in sizes.jobs if "throughput" in args.only else ():
                tp: dict[str, Callable[[], Sample]] = {
                    "planner-64": functools.partial(planner_throughput, quick, m, names, 64),
                    "planner-default": functools.partial(planner_throughput, quick, m, names, None),
                    "luigi": functools.partial(luigi_run, port, names, "independent", m, lw),
                    "dask-map": functools.partial(dask_map, client, m),
                    "dask-map-quick": functools.partial(dask_map, quick, m),
                }
                _interleaved(
                    results, "throughput", m, sizes.reps, {k: tp[k] for k in wanted("throughput")}
                )
        if "dag" in args.only:
            jobs = layered_jobs(sizes.dag_n, sizes.dag_layers, seed=args.seed)
            results.dag = jobs
            needs_cluster = "planner" in peers or "dask" in peers
            with (
                dask_client(DAG_SLOTS) if needs_cluster else contextlib.nullcontext() as client,
                dask_client(DAG_SLOTS, quick=True)
                if needs_cluster
                else contextlib.nullcontext() as quick,
            ):
                dag: dict[str, Callable[[], Sample]] = {
                    "planner": functools.partial(planner_dag, quick, jobs, names, hints=False),
                    "planner-hints": functools.partial(planner_dag, quick, jobs, names, hints=True),
                    "luigi": functools.partial(
                        luigi_run,
                        port,
                        names,
                        "dag",
                        len(jobs),
                        DAG_SLOTS,
                        layers=sizes.dag_layers,
                        seed=args.seed,
                    ),
                    "dask": functools.partial(dask_dag, client, jobs),
                    "dask-quick": functools.partial(dask_dag, quick, jobs),
                }
                _interleaved(
                    results, "dag", len(jobs), sizes.reps, {k: dag[k] for k in wanted("dag")}
                )
    return results


# -- the report -----------------------------------------------------------------------------------


def _q(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[p - 1]


def _median(samples: list[Sample], attr: str) -> float | None:
    values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
    return statistics.median(values) if values else None


def _failed(samples: list[Sample]) -> str:
    return "; ".join(sorted({s.failed for s in samples if s.failed}))


def _cell(workload: str, samples: list[Sample] | None) -> str:
    """One system's number for the summary table."""
    if not samples:
        return "—"
    if workload == "chain":
        gaps = [g for s in samples for g in s.gaps_ms]
        if not gaps:
            return f"failed: {_failed(samples)}"
        return f"{_q(gaps, 50):.1f} / {_q(gaps, 99):.1f}"
    attr = "rate" if workload == "throughput" else "makespan_s"
    value = _median(samples, attr)
    if value is None:
        return f"failed: {_failed(samples)}"
    return f"{value:.0f}/s" if workload == "throughput" else f"{value:.2f} s"


def _machine() -> list[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "planner", "registry"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else " (clean)"
    return [
        f"- `nproc` = {os.cpu_count()}, CPU: {cpu}, load average at the end: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"- dask {version('dask')}, distributed {version('distributed')}, "
        f"luigi {version('luigi')}, dask-planner {version('dask-planner')}; commit {commit}",
    ]


def report(args: argparse.Namespace, sizes: Sizes, results: Results, took_s: float) -> str:
    s = results.samples
    lines = [
        "# Peer comparison: dask-planner, Luigi, raw Dask",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m benchmarks.bench_peers "
        + " ".join(args.argv)
        + f"` ({took_s:.0f} s). {sizes.reps} repetition(s), systems interleaved (each repetition "
        "runs every system once, the order rotating).",
        "",
        *_machine(),
        "",
        "| workload | dask-planner | Luigi (central scheduler `luigid`) | raw Dask |",
        "|---|---|---|---|",
    ]
    for n in sizes.chains if "chain" in args.only else ():
        row = s.get(("chain", n), {})
        dask = "—"
        if row.get("dask-loop") or row.get("dask-deps"):
            dask = (
                f"client loop {_cell('chain', row.get('dask-loop'))}; "
                f"Dask resolving the dependency {_cell('chain', row.get('dask-deps'))} (floor)"
            )
            if row.get("dask-loop-quick") or row.get("dask-deps-quick"):
                dask += (
                    f"; on the planner's cluster settings: loop "
                    f"{_cell('chain', row.get('dask-loop-quick'))}, floor "
                    f"{_cell('chain', row.get('dask-deps-quick'))}"
                )
        lines.append(
            f"| chain of {n} no-op jobs: gap end(i) → start(i+1), p50 / p99 ms "
            f"| {_cell('chain', row.get('planner'))} | {_cell('chain', row.get('luigi'))} "
            f"| {dask} |"
        )
    for m in sizes.jobs if "throughput" in args.only else ():
        row = s.get(("throughput", m), {})
        planner = "—"
        if row.get("planner-64") or row.get("planner-default"):
            planner = (
                f"{_cell('throughput', row.get('planner-64'))} (`slots: 64`); "
                f"{_cell('throughput', row.get('planner-default'))} (default slots = 2 threads)"
            )
        lines.append(
            f"| {m:,} independent no-op jobs: jobs/s (median) ".replace(",", " ")
            + f"| {planner} | {_cell('throughput', row.get('luigi'))} "
            f"(workers={args.luigi_workers}) | {_cell('throughput', row.get('dask-map'))} "
            f"(`client.map`); {_cell('throughput', row.get('dask-map-quick'))} on the planner's "
            "cluster settings |"
        )
    if "dag" in args.only and results.dag:
        jobs = results.dag
        row = s.get(("dag", len(jobs)), {})
        bound = lower_bound_s(jobs, DAG_SLOTS)
        planner = _cell("dag", row.get("planner"))
        if row.get("planner-hints"):
            planner += f" ({_cell('dag', row.get('planner-hints'))} with `expected_duration`)"
        lines.append(
            f"| {len(jobs)}-job layered DAG (seed {args.seed}, {sizes.dag_layers} layers, "
            f"10–100 ms jobs), {DAG_SLOTS} slots: makespan (median); lower bound "
            f"**{bound:.2f} s** | {planner} | {_cell('dag', row.get('luigi'))} (workers=4) "
            f"| {_cell('dag', row.get('dask'))}; {_cell('dag', row.get('dask-quick'))} on the "
            "planner's cluster settings |"
        )
    lines += ["", "## Details", ""]
    for (workload, size), row in s.items():
        lines.append(f"**{workload} {size}**")
        lines.append("")
        if workload == "chain":
            lines += [
                "| system | p50 ms | p90 ms | p99 ms | max ms | gaps |",
                "|---|---|---|---|---|---|",
            ]
            for system, samples in row.items():
                gaps = [g for x in samples for g in x.gaps_ms]
                if not gaps:
                    lines.append(f"| {LABELS[system]} | failed: {_failed(samples)} | | | | |")
                    continue
                lines.append(
                    f"| {LABELS[system]} | {_q(gaps, 50):.2f} | {_q(gaps, 90):.2f} "
                    f"| {_q(gaps, 99):.2f} | {max(gaps):.2f} | {len(gaps)} |"
                )
        elif workload == "throughput":
            lines += ["| system | jobs/s per repetition | median |", "|---|---|---|"]
            for system, samples in row.items():
                reps = ", ".join(f"{x.rate:.0f}" if x.rate else str(x.failed) for x in samples)
                lines.append(f"| {LABELS[system]} | {reps} | {_cell(workload, samples)} |")
        else:
            jobs = results.dag
            lines += [
                f"Critical path {critical_path_s(jobs):.2f} s, total work "
                f"{sum(j.ms for j in jobs) / 1000:.2f} s (/ {DAG_SLOTS} = "
                f"{sum(j.ms for j in jobs) / 1000 / DAG_SLOTS:.2f} s), lower bound "
                f"{lower_bound_s(jobs, DAG_SLOTS):.2f} s.",
                "",
                "| system | makespan s per repetition | wall s per repetition | ÷ lower bound |",
                "|---|---|---|---|",
            ]
            bound = lower_bound_s(jobs, DAG_SLOTS)
            for system, samples in row.items():
                spans = ", ".join(
                    f"{x.makespan_s:.2f}" if x.makespan_s else str(x.failed) for x in samples
                )
                walls = ", ".join(f"{x.wall_s:.2f}" for x in samples if x.wall_s)
                med = _median(samples, "makespan_s")
                ratio = f"{med / bound:.3f}" if med else "—"
                lines.append(f"| {LABELS[system]} | {spans} | {walls} | {ratio} |")
        lines.append("")
    lines += [
        "## How it was measured",
        "",
        "- Dask: in-process `LocalCluster(processes=False, n_workers=1)`s, as `bench_live`: 2 "
        "threads for chains and throughput, 4 for the DAG; two of each shape, one with Dask's "
        "settings (raw Dask) and one as `planner run` builds its own (message batching 1 ms, "
        "`planner.live.comms`): the planner drives that one (`LiveDriver(...).run(until_idle=True)`"
        ", `Dispatcher(remote=False)`, a fresh SQLite file per run), and raw Dask runs on it too, "
        "for comparison.",
        "- Luigi: `luigi.build(tasks, workers=N, scheduler_host=..., local_scheduler=False)` "
        "against a `luigid` started for the benchmark, in a child process of its own; with "
        "workers > 1 Luigi forks a process per task (its real behaviour). Each task writes its "
        "start/end stamps into its output file (`LocalTarget`), which is also what `complete()` "
        f"checks. Workers: {args.luigi_workers} for chains and independent jobs, 4 for the DAG. "
        "Luigi's jobs/s and wall times include its scheduling phase (a `complete()` check and an "
        "`add_task` RPC per task before the first one runs).",
        "- Chain gaps are measured where the jobs run (the planner: the attempt's start/end, "
        "taken by its worker wrapper; the others: `time.time()` in the job). Jobs/s = jobs ÷ time "
        "from the start of the run (`driver.run`, `client.map`, `luigi.build`) to the last "
        "completion. DAG makespan = first start → last end on the workers; wall includes "
        "start-up and the driver noticing the end.",
        "- Raw Dask DAG: every job `client.submit`-ted in topological order with its "
        "dependencies' futures as arguments (Dask prefers earlier submissions). The planner "
        "ranks by critical path; without `expected_duration` it has no durations, with it it has "
        "the true ones.",
        "- The machine is shared: other sessions' processes ran during the measurements, so the "
        "tails are noisy; compare systems within one run.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Results | None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (≈ 1–2 min)")
    parser.add_argument("--only", choices=WORKLOADS, action="append", help="repeatable")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        type=lambda v: [p.strip() for p in v.split(",") if p.strip()],
        help="comma-separated subset of planner,luigi,dask",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 2)")
    parser.add_argument("--chains", type=int, nargs="+", help="chain lengths")
    parser.add_argument("--jobs", type=int, nargs="+", help="numbers of independent jobs")
    parser.add_argument("--dag-jobs", type=int, help="jobs in the DAG")
    parser.add_argument("--dag-layers", type=int, help="layers of the DAG")
    parser.add_argument("--seed", type=int, default=0, help="the DAG's seed")
    parser.add_argument("--luigi-workers", type=int, default=2, help="for chains and jobs")
    parser.add_argument("--out", default="/tmp/results-peers.md")
    parser.add_argument("--luigi-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.luigi_child:
        luigi_child(json.loads(args.luigi_child))
        return None
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    args.only = args.only or list(WORKLOADS)
    args.argv = argv
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        chains=tuple(args.chains or base.chains),
        jobs=tuple(args.jobs or base.jobs),
        dag_n=args.dag_jobs or base.dag_n,
        dag_layers=args.dag_layers or base.dag_layers,
        reps=args.reps or base.reps,
    )
    t0 = time.perf_counter()
    results = run(args, sizes)
    text = report(args, sizes, results, time.perf_counter() - t0)
    print(text)
    Path(args.out).write_text(text)
    return results


if __name__ == "__main__":
    main()
