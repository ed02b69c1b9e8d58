"""Fast starts: launch → first task start of ``planner run FILE --until-idle`` against Luigi.

For each size (200, 2 000 and 10 000 independent no-op jobs; a template of that many items for
the planner, as many ``luigi.Task`` instances for Luigi), each system is launched as a fresh OS
process, as a user would, and timed from just before the launch (``time.time()`` here) to the
start of the first job, taken where the job runs (the attempt's recorded start for the planner;
the wall clock in ``run()`` of the forked task process for Luigi). Systems, interleaved per
repetition with the order rotating:

- ``planner-cold``: a new SQLite database — the files are validated and applied, then the
  in-process cluster starts and the planner plans;
- ``planner-warm``: a database the same file was applied to before (``planner apply``, not
  timed): the digest says the files did not change, so they are neither validated nor applied;
- ``planner-nodigest``: the same database with its ``registry_digest`` row deleted — the files
  are validated and applied again (nothing written): what an unchanged registry cost before the
  digest;
- ``luigi``: ``luigi.build`` of the jobs with ``workers=2`` against a ``luigid`` (started here
  once, on a free port; ``benchmarks.bench_peers``'s task classes and child process); the child
  is stopped once the first job has run (scheduling all of its jobs comes before the first).

For the planner, stdout lines are timed as they arrive (``PYTHONUNBUFFERED``): "applied" is the
apply line (or the digest's "unchanged" line); "cluster up" the ``cluster:`` line, printed the
moment the cluster is connected, before the planner loads the registry, results, histories and
states and builds its core; "cluster up → first start" is what the planner's own start adds
after the cluster is up (the goal: within 1 s at 10 000 processes). For comparison with earlier
runs, "dashboard line" is the ``dashboard:`` line, printed once the driver exists (loaded,
built, reconciled), and "dashboard → first start" the gap this benchmark reported as "cluster
up → first start" before the ``cluster:`` line existed. The planner runs to ``--until-idle``
(``--slots 2``, default local cluster); its wall time to exit is reported too.

Run: ``python -m benchmarks.bench_startup [--quick] [--sizes N…] [--reps R] [--peers …]``;
Markdown to stdout and ``--out`` (default ``/tmp/results-startup.md``), progress to stderr. Needs
the ``bench`` extra for Luigi (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLANNER = str(Path(sys.executable).with_name("planner"))
SYSTEMS = ("planner-cold", "planner-warm", "planner-nodigest", "luigi")
LABELS = {
    "planner-cold": "dask-planner, new database (validate + apply)",
    "planner-warm": "dask-planner, applied before, unchanged (digest: no validation)",
    "planner-nodigest": "dask-planner, applied before, digest cleared (validate, apply nothing)",
    "luigi": "Luigi (`luigid`, `workers=2`)",
}
FULL, QUICK = (200, 2000, 10_000), (50, 200)
SLOTS = 2
TIMEOUT_S = 1800.0


@dataclass(slots=True)
class Sample:
    first_s: float | None = None  # launch -> first job start
    applied_s: float | None = None  # launch -> the apply (or "unchanged") line
    cluster_s: float | None = None  # launch -> the cluster line (connected, nothing loaded)
    dashboard_s: float | None = None  # launch -> the dashboard line (the driver built)
    exit_s: float | None = None  # launch -> the process exited
    failed: str | None = None


def _registry(root: Path, n: int) -> Path:
    path = root / f"noop-{n}.yaml"
    items = ", ".join(f"j{i:05d}" for i in range(n))
    path.write_text(
        f"processes:\n  job:\n    foreach: [{items}]\n    run: workflows.jobs.demo:noop\n"
    )
    return path


def _copy_db(source: Path, target: Path, *, clear_digest: bool = False) -> None:
    """A consistent copy of a SQLite database (WAL included), via SQLite's backup."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
        if clear_digest:
            dst.execute("DELETE FROM registry_digest")
            dst.commit()


def planner_launch(db: Path, registry: Path) -> Sample:
    argv = [PLANNER, "--db", f"sqlite:///{db}", "run", str(registry), "--until-idle"]
    argv += ["--slots", str(SLOTS), "--dashboard-address", "127.0.0.1:0", "--page-port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sample = Sample()
    t0 = time.time()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        at = time.time() - t0
        if sample.applied_s is None and line.startswith(
            ("added", "changed", "removed", "no changes", "registry unchanged")
        ):
            sample.applied_s = at
        elif sample.cluster_s is None and line.startswith("cluster:"):
            sample.cluster_s = at
        elif sample.dashboard_s is None and line.startswith("dashboard:"):
            sample.dashboard_s = at
        tail = [*tail[-20:], line]
    code = proc.wait(TIMEOUT_S)
    sample.exit_s = time.time() - t0
    if code:
        sample.failed = f"exit {code}: {''.join(tail)[-500:]}"
        return sample
    from registry.storage.sqlstore import SqlStore

    with SqlStore(f"sqlite:///{db}") as store:
        starts = [a.start.timestamp() for a in store.history(limit=None) if a.start]
    sample.first_s = min(starts) - t0 if starts else None
    return sample


def luigi_launch(port: int, out: Path, n: int, workers: int = 2) -> Sample:
    out.mkdir()
    spec = {"kind": "independent", "root": str(out), "n": n, "workers": workers, "port": port}
    argv = [sys.executable, "-m", "benchmarks.bench_peers", "--luigi-child", json.dumps(spec)]
    t0 = time.time()
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the child and its forked workers
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            done = [p for p in out.iterdir() if p.name.isdigit()]  # written atomically
            if done:
                break
            if proc.poll() is not None:
                return Sample(failed=f"luigi child exited ({proc.returncode}) before a job ran")
            if time.monotonic() > deadline:
                return Sample(failed=f"no job started in {TIMEOUT_S:.0f} s")
            time.sleep(0.005)
        first = min(float(p.read_text().split()[0]) for p in done)
        return Sample(first_s=first - t0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group of the child started above
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    samples: dict[int, dict[str, list[Sample]]] = field(default_factory=dict)


def run(args: argparse.Namespace) -> Results:
    results = Results()
    systems = [s for s in SYSTEMS if s.split("-")[0] in args.peers]
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-startup-")))
        port = 0
        if "luigi" in args.peers:
            from benchmarks.bench_peers import luigid

            port = stack.enter_context(luigid(root))
        count = iter(range(1_000_000))

        def path(stem: str) -> Path:
            return root / f"{next(count):03d}-{stem}"

        registries = {n: _registry(root, n) for n in (20, *args.sizes)}
        applied: dict[int, Path] = {}
        for n, registry in registries.items():  # the databases the warm starts copy
            db = path(f"applied-{n}.db")
            subprocess.run(
                [PLANNER, "--db", f"sqlite:///{db}", "apply", str(registry)],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            applied[n] = db

        def runner(system: str, n: int) -> Callable[[], Sample]:
            def go() -> Sample:
                if system == "luigi":
                    return luigi_launch(port, path(f"luigi-{n}"), n)
                db = path(f"{system}-{n}.db")
                if system != "planner-cold":
                    _copy_db(applied[n], db, clear_digest=system == "planner-nodigest")
                return planner_launch(db, registries[n])

            return go

        for system in systems:  # warm the OS caches and the interpreters' imports
            runner(system, 20)()
        for n in args.sizes:
            for rep in range(args.reps):
                turn = systems[rep % len(systems) :] + systems[: rep % len(systems)]
                for system in turn:
                    sample = runner(system, n)()
                    results.samples.setdefault(n, {}).setdefault(system, []).append(sample)
                    print(
                        f"  {n} rep {rep + 1}/{args.reps} {system}: first {_s(sample.first_s)}"
                        f", cluster {_s(sample.cluster_s)}, dashboard {_s(sample.dashboard_s)}"
                        f", exit {_s(sample.exit_s)}"
                        + (f" FAILED {sample.failed}" if sample.failed else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    return results


# -- the report ---------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _median(samples: list[Sample], attr: str) -> float | None:
    values = [getattr(s, attr) for s in samples if getattr(s, attr) is not None]
    return statistics.median(values) if values else None


def _gap(samples: list[Sample], since: str = "cluster_s") -> float | None:
    """Median of first start − ``since`` (an attribute of ``Sample``)."""
    gaps = [
        s.first_s - getattr(s, since)
        for s in samples
        if s.first_s is not None and getattr(s, since) is not None
    ]
    return statistics.median(gaps) if gaps else None


def report(args: argparse.Namespace, results: Results, took_s: float) -> str:
    from benchmarks.bench_peers import _machine

    lines = [
        "# Launch → first task start: dask-planner against Luigi",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m benchmarks.bench_startup "
        + " ".join(args.argv)
        + f"`, {took_s / 60:.1f} min; median of {args.reps} repetition(s), systems interleaved.",
        "",
        *_machine(),
        "",
    ]
    for n, by_system in results.samples.items():
        lines += [
            f"## {n:,} independent no-op jobs",
            "",
            "| system | launch → first start | applied | cluster up | cluster up → first start"
            " | dashboard line | dashboard → first start | exit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for system, samples in by_system.items():
            failed = "; ".join(sorted({s.failed for s in samples if s.failed}))
            cells = [
                _s(_median(samples, "first_s")) + (f" ({failed[:80]})" if failed else ""),
                _s(_median(samples, "applied_s")),
                _s(_median(samples, "cluster_s")),
                _s(_gap(samples)),
                _s(_median(samples, "dashboard_s")),
                _s(_gap(samples, "dashboard_s")),
                _s(_median(samples, "exit_s")) if system != "luigi" else "stopped",
            ]
            lines.append(f"| {LABELS[system]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Results:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK}")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"numbers of jobs (default {FULL})")
    parser.add_argument("--reps", type=int, default=2, help="repetitions (default 2)")
    parser.add_argument(
        "--peers",
        default="planner,luigi",
        type=lambda v: [p.strip() for p in v.split(",") if p.strip()],
        help="comma-separated subset of planner,luigi",
    )
    parser.add_argument("--out", default="/tmp/results-startup.md")
    args = parser.parse_args(argv)
    args.sizes = tuple(args.sizes or (QUICK if args.quick else FULL))
    args.argv = argv
    t0 = time.perf_counter()
    results = run(args)
    text = report(args, results, time.perf_counter() - t0)
    print(text)
    Path(args.out).write_text(text)
    return results


if __name__ == "__main__":
    main()
