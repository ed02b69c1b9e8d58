"""Benchmarks of the registry's command-line path: YAML text → validated registry → one plan.

A registry of ``n`` processes (the layered DAG of ``benchmarks.generate``, written out as YAML in
block style, every process running ``workflows.jobs.demo:noop``, a third of them in pools) is
timed end to end with real subprocesses, median of ``--repeats`` runs:

- ``planner validate FILE``;
- ``planner --db sqlite:///X apply FILE`` on a new database (one run: it is the set-up), then
  ``planner --db … plan`` (the default table) and ``plan --format json`` (the complete document);
- libyaml's own parse of the same file, ``yaml.load(text, Loader=yaml.CSafeLoader)``, in a
  subprocess (with interpreter start, the fair comparison for the commands) and in-process (the
  floor a YAML-based command cannot go under);
- ``python -c pass`` and ``planner --help``: interpreter start, and the command line's imports.

Goals, at the largest size (20,000 by default): ``planner validate`` ≤ 2 × libyaml's in-process
parse of the file; ``planner plan`` ≤ its cost at the smallest size + 0.4 × that parse.

``python -m benchmarks.bench_registry [--quick]``; ``--profile validate|plan`` prints cProfile
hotspots of the in-process work instead (``load_files`` / the ``plan`` command).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.generate import layered_dag
from registry.definitions.durations import format_duration

ROOT = Path(__file__).resolve().parents[1]
TARGET = "workflows.jobs.demo:noop"
VALIDATE_FACTOR = 2.0  # validate ≤ 2 × parse
PLAN_FACTOR = 0.4  # plan(n) ≤ plan(small) + 0.4 × parse(n)


def registry_yaml(n: int, *, seed: int = 0) -> str:
    """A registry file of ``n`` processes: ``layered_dag``'s graph, durations and pools."""
    registry, _ = layered_dag(n, seed=seed)
    lines = [
        "timezone: UTC",
        "slots: 8",
        "pools: {" + ", ".join(f"{p}: {size}" for p, size in registry.pools.items()) + "}",
        "defaults:",
        "  retries: 1",
        "  retry_delay: 30s",
        "processes:",
    ]
    for name, p in registry.processes.items():
        lines += [f"  {name}:", f"    run: {TARGET}"]
        if p.ancestors:
            lines.append(f"    ancestors: [{', '.join(p.ancestors)}]")
        if p.expected_duration is not None:
            lines.append(f"    expected_duration: {format_duration(p.expected_duration)}")
        if p.pool is not None:
            lines.append(f"    pool: {p.pool}")
    return "\n".join(lines) + "\n"


# -- timing ---------------------------------------------------------------------------------------


def _planner() -> list[str]:
    script = shutil.which("planner", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "planner.interfaces.cli"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Median wall time of a few runs, and the median CPU time (user + sys) they used."""

    wall_s: float
    cpu_s: float


def _run(args: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU time of one subprocess, which must succeed (its output is read, dropped)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _median(repeats: int, once: Callable[[], tuple[float, float]]) -> Timing:
    runs = [once() for _ in range(repeats)]
    return Timing(
        wall_s=statistics.median(w for w, _ in runs), cpu_s=statistics.median(c for _, c in runs)
    )


def _parse_in_process(text: str) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    yaml.load(text, Loader=yaml.CSafeLoader)
    return time.perf_counter() - t0, time.process_time() - c0


_PARSE = "import sys, yaml; yaml.load(open(sys.argv[1]).read(), Loader=yaml.CSafeLoader)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    n: int
    lines: int
    size_bytes: int
    parse: Timing  # libyaml, in-process
    parse_sub: Timing  # libyaml, in a subprocess (interpreter start included)
    python: Timing  # python -c pass
    help: Timing  # planner --help: the command line's imports
    validate: Timing
    apply: Timing  # one run: it writes a new database each time
    plan: Timing  # the default table
    plan_json: Timing
    plan_bytes: int  # what the default table prints


def measure(n: int, *, repeats: int, work: Path, seed: int = 0) -> Figures:
    text = registry_yaml(n, seed=seed)
    path = work / f"registry-{n}.yaml"
    path.write_text(text, encoding="utf-8")
    planner = _planner()
    py = sys.executable
    db = work / f"apply-{n}.db"
    url = f"sqlite:///{db}"
    figures = {
        "parse": _median(repeats, lambda: _parse_in_process(text)),
        "parse_sub": _median(repeats, lambda: _run([py, "-c", _PARSE, str(path)])),
        "python": _median(repeats, lambda: _run([py, "-c", "pass"])),
        "help": _median(repeats, lambda: _run([*planner, "--help"])),
        "validate": _median(repeats, lambda: _run([*planner, "validate", str(path)])),
        "apply": _median(1, lambda: _run([*planner, "--db", url, "apply", str(path)])),
        "plan": _median(repeats, lambda: _run([*planner, "--db", url, "plan"])),
        "plan_json": _median(
            repeats, lambda: _run([*planner, "--db", url, "plan", "--format", "json"])
        ),
    }
    shown = subprocess.run(
        [*planner, "--db", url, "plan"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return Figures(
        n=n,
        lines=text.count("\n"),
        size_bytes=len(text.encode()),
        plan_bytes=len(shown),
        **figures,
    )


# -- profiles -------------------------------------------------------------------------------------


def _stats(profile: cProfile.Profile, limit: int) -> str:
    buf = io.StringIO()
    pstats.Stats(profile, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(limit)
    return "\n".join(line for line in buf.getvalue().splitlines() if line.strip())


def profile(what: str, n: int, work: Path, *, limit: int = 40) -> str:
    """cProfile of ``load_files`` (``validate``) or of the ``plan`` command at ``n`` processes."""
    from click.testing import CliRunner

    from planner.interfaces.cli import cli
    from registry.definitions.loader import load_files

    path = work / f"registry-{n}.yaml"
    path.write_text(registry_yaml(n), encoding="utf-8")
    prof = cProfile.Profile()
    if what == "validate":
        prof.runcall(load_files, [path])
    else:
        url = f"sqlite:///{work / f'profile-{n}.db'}"
        CliRunner().invoke(cli, ["--db", url, "apply", str(path)], catch_exceptions=False)
        prof.runcall(CliRunner().invoke, cli, ["--db", url, "plan"], catch_exceptions=False)
    return f"== {what} at n={n}\n" + _stats(prof, limit)


# -- command line ---------------------------------------------------------------------------------


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def format_figures(rows: Sequence[Figures]) -> str:
    head = (
        "| processes | YAML lines | YAML MiB | libyaml parse, in-process "
        "| libyaml parse, subprocess | `python -c pass` | `planner --help` "
        "| `planner validate` | `planner apply` (1 run) | `planner plan` "
        "| `planner plan --format json` | `plan` prints |"
    )
    lines = [head, "|" + "---:|" * 12]
    for r in rows:
        timings = (r.parse, r.parse_sub, r.python, r.help, r.validate, r.apply, r.plan)
        cells = [f"{r.n:,}", f"{r.lines:,}", f"{r.size_bytes / 2**20:.2f}"]
        cells += [f"{t.wall_s:.2f} s ({t.cpu_s:.2f})" for t in (*timings, r.plan_json)]
        cells.append(f"{r.plan_bytes / 1024:.1f} KiB")
        lines.append(_row(cells))
    return "\n".join(lines)


def format_goals(rows: Sequence[Figures]) -> str:
    small, big = rows[0], rows[-1]
    lines = ["| goal | limit | measured | verdict |", "|---|---:|---:|---|"]
    for clock in ("wall_s", "cpu_s"):
        parse = getattr(big.parse, clock)
        validate_limit = VALIDATE_FACTOR * parse
        plan_limit = getattr(small.plan, clock) + PLAN_FACTOR * parse
        what = "wall" if clock == "wall_s" else "CPU"
        checks = [
            (
                f"`planner validate` at {big.n:,} ≤ {VALIDATE_FACTOR:g} × libyaml parse ({what})",
                validate_limit,
                getattr(big.validate, clock),
            ),
            (
                f"`planner plan` at {big.n:,} ≤ plan at {small.n:,} + {PLAN_FACTOR:g} × parse "
                f"({what})",
                plan_limit,
                getattr(big.plan, clock),
            ),
        ]
        for label, limit, value in checks:
            verdict = "met" if value <= limit else "NOT met"
            lines.append(_row([label, f"{limit:.2f} s", f"{value:.2f} s", verdict]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 20_000])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="200 and 2,000 processes, 1 run")
    parser.add_argument("--profile", choices=["validate", "plan"], help="print cProfile hotspots")
    args = parser.parse_args(argv)
    sizes, repeats = ([200, 2_000], 1) if args.quick else (sorted(args.sizes), args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        work = Path(tmp)
        if args.profile:
            print(profile(args.profile, sizes[-1], work))
            return
        rows = [measure(n, repeats=repeats, work=work) for n in sizes]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"median of {repeats} run(s), wall time (CPU time, user + sys); load average {load}")
    print()
    print(format_figures(rows))
    print()
    print(format_goals(rows))


if __name__ == "__main__":
    main()
