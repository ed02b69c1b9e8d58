"""Run every benchmark, print the tables, optionally write them into ``benchmarks/RESULTS.md``.

    python -m benchmarks.run_all            # full run (1k/10k/100k; a few minutes on 2 cores)
    python -m benchmarks.run_all --quick    # 1k/10k core, 1k simulations (seconds)
    python -m benchmarks.run_all --write    # also replace the generated part of RESULTS.md

``--write`` replaces only the text between the ``<!-- generated:begin -->`` and
``<!-- generated:end -->`` markers of RESULTS.md, so the hand-written analysis around it stays.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_core import (
    DECISION_GOAL_MS,
    REPLAN_GOAL_S,
    ColdReplan,
    DecisionTimes,
    cold_replan,
    format_decisions,
    format_replans,
    steady_state,
)
from benchmarks.bench_simulate import SHAPES, SimulationResult, format_results, run_one

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"
DATE = "2026-11-24"  # the date the committed results were taken; override with --date


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What one mode measures."""

    decisions: tuple[tuple[int, str, str], ...]  # (processes, scenario, gc mode)
    samples: int
    replans: tuple[tuple[int, bool], ...]  # (processes, collector disabled)
    repeats: int
    sim_sizes: tuple[int, ...]
    sim_slots: tuple[int, ...]
    sim_pools: tuple[int, ...]
    sim_seeds: tuple[int, ...]


QUICK = Plan(
    decisions=(
        (1_000, "layered", "default"),
        (10_000, "layered", "default"),
        (10_000, "wide, pooled first", "default"),
    ),
    samples=300,
    replans=((1_000, False), (10_000, False)),
    repeats=1,
    sim_sizes=(1_000,),
    sim_slots=(8, 32),
    sim_pools=(0, 3),
    sim_seeds=(0,),
)
FULL = Plan(
    decisions=(
        (1_000, "layered", "default"),
        (10_000, "layered", "default"),
        (100_000, "layered", "default"),
        (100_000, "layered", "frozen"),
        (100_000, "layered", "off"),
        (100_000, "wide", "default"),
        (10_000, "wide, pooled first", "default"),
        (100_000, "wide, pooled first", "default"),
    ),
    samples=2_000,
    replans=((1_000, False), (10_000, False), (100_000, False), (100_000, True)),
    repeats=3,
    sim_sizes=(1_000, 10_000),
    sim_slots=(8, 32),
    sim_pools=(0, 3),
    sim_seeds=(0, 1, 2),
)


ROOT = Path(__file__).resolve().parents[1]


def _command(args: Sequence[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return "n/a"
    return out.stdout.strip()


def machine() -> list[str]:
    """The machine the numbers come from: ``nproc``, ``free -h``, CPU model, Python, load."""
    model = "n/a"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = _command(["free", "-h"]).splitlines()
    total = memory[1].split()[1] if len(memory) > 1 else "n/a"
    commit = _command(["git", "rev-parse", "--short", "HEAD"])
    changed = _command(["git", "status", "--porcelain", "--", "planner", "registry"])
    code = "n/a" if commit == "n/a" else f"commit {commit}"
    if changed and changed != "n/a":
        code += f" plus uncommitted changes in {len(changed.splitlines())} planner/registry files"
    elif commit != "n/a":
        code += ", planner/ and registry/ clean"
    return [
        f"- code measured: {code}",
        f"- CPU: {model}; `nproc` = {_command(['nproc'])} (os.cpu_count() = {os.cpu_count()})",
        f"- memory (`free -h`): {total} total",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        "- load average (1, 5, 15 min) when the run ended: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]


def goals(
    decisions: Sequence[DecisionTimes],
    replans: Sequence[ColdReplan],
    simulations: Sequence[SimulationResult],
) -> str:
    lines = ["| goal | measured | status |", "|---|---|---|"]
    biggest = max(r.n for r in decisions)
    largest_replan = max(r.n for r in replans)
    for r in decisions:
        if r.n == biggest and r.gc == "default":
            met = r.ms(99) <= DECISION_GOAL_MS
            lines.append(
                f"| decision after one completion ({r.scenario}), p99 ≤ {DECISION_GOAL_MS:g} ms "
                f"at {r.n:,} "
                f"| p99 {r.ms(99):.3f} ms (max {r.max_ms:.3f} ms); CPU time p99 "
                f"{r.cpu_ms(99):.3f} ms | {'met' if met else 'NOT met'} |"
            )
    for c in replans:
        if c.n == largest_replan and c.gc == "default":
            for label, value in (("first handle()", c.first_handle_s), ("plan()", c.plan_s)):
                met = value <= REPLAN_GOAL_S
                lines.append(
                    f"| cold full replan, {label} ≤ {REPLAN_GOAL_S:g} s at {c.n:,} "
                    f"| {value:.3f} s ({value / REPLAN_GOAL_S:.1f}× the goal) "
                    f"| {'met' if met else 'NOT met'} |"
                )
            lines.append(f"| (no goal) Planner construction at {c.n:,} | {c.build_s:.3f} s | — |")
    if simulations:
        worst = max(simulations, key=lambda s: s.vs_hlfet)
        differing = sum(s.differing_starts for s in simulations)
        met = worst.vs_hlfet <= 1.0
        lines.append(
            f"| simulate(): makespan never worse than HLFET ({len(simulations)} DAGs) "
            f"| worst ratio {worst.vs_hlfet:.3f}; {differing} starts differ from HLFET "
            f"| {'met' if met else 'NOT met'} |"
        )
    if biggest < 100_000 or largest_replan < 100_000:
        lines.append("\nThe goals are stated at 100k processes; this run stops at 10k.")
    return "\n".join(lines)


def run(plan: Plan, *, seed: int, slots: int) -> tuple[str, str]:
    """Run ``plan``; returns (the tables, the goal summary)."""
    t0 = time.perf_counter()
    decisions: list[DecisionTimes] = []
    for n, scenario, mode in plan.decisions:
        print(f"  decision times n={n:,} {scenario} gc={mode}", file=sys.stderr)
        decisions.append(
            steady_state(
                n, scenario=scenario, seed=seed, slots=slots, samples=plan.samples, gc_mode=mode
            )
        )
    replans: list[ColdReplan] = []
    for n, off in plan.replans:
        print(f"  cold replan n={n:,} gc={'disabled' if off else 'default'}", file=sys.stderr)
        replans.append(cold_replan(n, seed=seed, slots=slots, repeats=plan.repeats, disable_gc=off))
    simulations: list[SimulationResult] = []
    for n in plan.sim_sizes:
        print(f"  simulate n={n:,}", file=sys.stderr)
        for shape in SHAPES:
            for sim_slots in plan.sim_slots:
                for pools in plan.sim_pools:
                    for s in plan.sim_seeds:
                        simulations.append(
                            run_one(n, shape=shape, slots=sim_slots, pools=pools, seed=s)
                        )
    elapsed = time.perf_counter() - t0
    tables = "\n\n".join(
        [
            f"### 1. Decision time after one completion (slots={slots}, seed={seed})",
            format_decisions(decisions),
            f"### 2. Cold full replan (median of {plan.repeats}, slots={slots}, seed={seed})",
            format_replans(replans),
            "### 3. simulate() on generated DAGs",
            format_results(simulations),
            f"Benchmark wall time: {elapsed:.0f} s.",
        ]
    )
    return tables, goals(decisions, replans, simulations)


def write(section: str, path: Path = RESULTS) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Results\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    text = pattern.sub(lambda _: f"{BEGIN}\n{section}\n{END}", text, count=1)
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    parser.add_argument("--write", action="store_true", help=f"write into {RESULTS.name}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slots", type=int, default=8, help="slots for the core benchmarks")
    parser.add_argument("--date", default=DATE)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    tables, summary = run(plan, seed=args.seed, slots=args.slots)
    command = "python -m benchmarks.run_all" + (" --quick" if args.quick else "") + " --write"
    section = "\n\n".join(
        [
            f"## Measured {args.date} ({mode} run)",
            "\n".join(machine()),
            f"Command: `{command}`",
            "### Goals",
            summary,
            tables,
        ]
    )
    print(section)
    if args.write:
        write(section)
        print(f"\nwritten to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
