"""Benchmarks of the pure planning core (``planner.core.planner.Planner``).

1. **Decision time after one completion** (``steady_state``): build a planner over a layered DAG,
   let the first ``handle`` fill the slots, then repeatedly finish the in-flight run that ends
   first (virtual time, expected durations) with one ``RunFinished`` per ``handle`` call. Only the
   ``handle`` call is timed (``time.perf_counter_ns``), and only while the slots are full before
   the completion, so every sample is "a slot frees, decide who takes it". When the DAG runs out
   before enough samples (1k processes), a fresh planner over the next seed continues.
2. **Cold full replan** (``cold_replan``, per scenario): (a) ``Planner(...)`` from the registry —
   graph and critical paths included, (b) the first ``handle(now)``, which evaluates every
   process, (c) ``plan(now)``, the full dry run (right after (b): the evaluations it keeps still
   hold), plus a bare ``networkx`` topological sort of the same graph and the core's
   critical-path pass alone, for reference.

Run ``python -m benchmarks.bench_core --help``; ``--profile`` prints cProfile hotspots instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import io
import math
import pstats
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import networkx as nx

from benchmarks.generate import Shape, layered_dag
from planner.core.events import RunFinished, StartRun
from planner.core.planner import Planner
from registry.lifecycle import RunStatus
from registry.model import RegistryDef

START = datetime(2026, 11, 24, tzinfo=UTC)
DECISION_GOAL_MS = 1.0  # p99 at 100k processes
REPLAN_GOAL_S = 0.5


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (``p`` in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- 1. decision time after one completion --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """How the steady-state DAG is generated (``layered_dag`` arguments)."""

    layers: int | None = None  # None: about sqrt(n)
    pooled_priority: int = 0


SCENARIOS: dict[str, Scenario] = {
    # about sqrt(n) layers: a few hundred candidates at a time
    "layered": Scenario(),
    # 5 layers: tens of thousands of candidates at 100k
    "wide": Scenario(layers=5),
    # 5 layers, pooled processes at priority 10: full pools park candidates at the list's head
    "wide, pooled first": Scenario(layers=5, pooled_priority=10),
}


def generate(n: int, scenario: str, seed: int) -> tuple[RegistryDef, Shape]:
    sc = SCENARIOS[scenario]
    return layered_dag(n, seed=seed, layers=sc.layers, pooled_priority=sc.pooled_priority)


#: what the cyclic garbage collector does while the completions are timed
GC_MODES = ("default", "frozen", "off")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionTimes:
    n: int
    scenario: str
    slots: int
    gc: str  # one of GC_MODES
    samples_ns: tuple[int, ...]  # wall time (perf_counter_ns) of each timed call, sorted
    cpu_ns: tuple[int, ...]  # this thread's CPU time (thread_time_ns) of each timed call, sorted
    completions: int  # all completions fed, including those with free slots before them
    planners: int  # how many fresh planners (DAG runs, seeds) it took
    starts: int  # runs started by the timed calls
    collected: int  # timed calls during which the cyclic garbage collector ran
    shape: Shape

    def ms(self, p: float) -> float:
        return percentile(self.samples_ns, p) / 1e6

    def cpu_ms(self, p: float) -> float:
        return percentile(self.cpu_ns, p) / 1e6

    @property
    def max_ms(self) -> float:
        return self.samples_ns[-1] / 1e6 if self.samples_ns else math.nan

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ns) / 1e6 if self.samples_ns else math.nan


def _push(
    heap: list[tuple[datetime, int, str]],
    starts: Sequence[StartRun],
    registry: RegistryDef,
    now: datetime,
    sequence: int,
) -> int:
    for s in starts:
        duration = registry.processes[s.process].expected_duration or timedelta(minutes=1)
        sequence += 1
        heapq.heappush(heap, (now + duration, sequence, s.run_id))
    return sequence


class _GcCounter:
    """Counts cyclic garbage-collector passes (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.passes = 0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self.passes += 1


def steady_state(
    n: int,
    *,
    scenario: str = "layered",
    seed: int = 0,
    slots: int = 8,
    samples: int = 1000,
    gc_mode: str = "default",
) -> DecisionTimes:
    """Time ``handle(now, RunFinished)`` for ``samples`` completions that each free a full slot.

    ``gc_mode``: ``default`` leaves the collector alone; ``frozen`` calls ``gc.freeze()`` after
    the first ``handle`` (what a driver could do once the registry is loaded: the collector stops
    re-scanning the planner's long-lived state); ``off`` disables it while timing — a diagnostic
    for how much of the tail is the collector."""
    if gc_mode not in GC_MODES:
        raise ValueError(f"gc_mode must be one of {GC_MODES}, got {gc_mode!r}")
    times: list[int] = []
    cpu: list[int] = []
    completions = starts = planners = collected = 0
    shape: Shape | None = None
    counter = _GcCounter()
    while len(times) < samples:
        registry, sh = generate(n, scenario, seed + planners)
        shape = shape or sh
        planners += 1
        planner = Planner(registry, now=START, slots=slots)
        step = planner.handle(START)
        heap: list[tuple[datetime, int, str]] = []
        sequence = _push(heap, step.starts, registry, START, 0)
        # the first step lists a decision per process: free it now, not inside the first timing
        del step
        gc.collect()
        if gc_mode == "frozen":
            gc.freeze()
        elif gc_mode == "off":
            gc.disable()
        gc.callbacks.append(counter)
        try:
            while heap and len(times) < samples:
                end, _, run_id = heapq.heappop(heap)
                event = RunFinished(run_id=run_id, status=RunStatus.SUCCEEDED, at=end)
                full = planner.in_flight >= planner.slots
                before = counter.passes
                c0 = time.thread_time_ns()
                t0 = time.perf_counter_ns()
                out = planner.handle(end, event)
                t1 = time.perf_counter_ns()
                c1 = time.thread_time_ns()
                completions += 1
                if full:
                    times.append(t1 - t0)
                    cpu.append(c1 - c0)
                    starts += len(out.starts)
                    collected += counter.passes != before
                sequence = _push(heap, out.starts, registry, end, sequence)
                del out  # freed here, outside the timed region
        finally:
            gc.callbacks.remove(counter)
            gc.unfreeze()
            gc.enable()
        if planners > 50:  # pragma: no cover - a DAG that never fills the slots
            raise RuntimeError(f"could not collect {samples} full-slot completions at n={n}")
        del planner
    assert shape is not None
    return DecisionTimes(
        n=n,
        scenario=scenario,
        slots=slots,
        gc=gc_mode,
        samples_ns=tuple(sorted(times)),
        cpu_ns=tuple(sorted(cpu)),
        completions=completions,
        planners=planners,
        starts=starts,
        collected=collected,
        shape=shape,
    )


# -- 2. cold full replan --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ColdReplan:
    n: int
    gc: str  # "default" | "disabled"
    scenario: str
    edges: int
    repeats: int
    build_s: float  # Planner(...): states, graph, critical paths
    first_handle_s: float  # evaluates every process, fills the slots
    plan_s: float  # full dry run
    critical_paths_s: float  # Dag.critical_paths alone (included in build_s)
    topo_sort_s: float  # list(nx.topological_sort(g)) on the same graph
    nx_build_s: float  # nx.DiGraph(edges) on the same edges
    starts: int
    decisions: int


def cold_replan(
    n: int,
    *,
    scenario: str = "layered",
    seed: int = 0,
    slots: int = 8,
    repeats: int = 3,
    disable_gc: bool = False,
) -> ColdReplan:
    """Median over ``repeats`` fresh planners of each phase (the registry is built once).

    ``disable_gc`` switches the cyclic collector off for the timed phases — a diagnostic showing
    how much of the time is the collector re-scanning the planner's growing state."""
    registry, _shape = generate(n, scenario, seed)
    edge_list = [(a, p.name) for p in registry.processes.values() for a in p.ancestors]
    builds: list[float] = []
    firsts: list[float] = []
    plans: list[float] = []
    cps: list[float] = []
    topos: list[float] = []
    nx_builds: list[float] = []
    starts = decisions = 0
    for _ in range(repeats):
        gc.collect()
        if disable_gc:
            gc.disable()
        t0 = time.perf_counter()
        planner = Planner(registry, now=START, slots=slots)
        builds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        step = planner.handle(START)
        firsts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = planner.plan(START)
        plans.append(time.perf_counter() - t0)
        starts, decisions = len(step.starts), len(out)
        durations = {name: ps.estimate or 0.0 for name, ps in planner.states.items()}
        t0 = time.perf_counter()
        planner.dag.critical_paths(durations)
        cps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        list(nx.topological_sort(planner.dag.g))
        topos.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        nx.DiGraph(edge_list)
        nx_builds.append(time.perf_counter() - t0)
        gc.enable()
        del planner, step, out
    return ColdReplan(
        n=n,
        gc="disabled" if disable_gc else "default",
        scenario=scenario,
        edges=len(edge_list),
        repeats=repeats,
        build_s=statistics.median(builds),
        first_handle_s=statistics.median(firsts),
        plan_s=statistics.median(plans),
        critical_paths_s=statistics.median(cps),
        topo_sort_s=statistics.median(topos),
        nx_build_s=statistics.median(nx_builds),
        starts=starts,
        decisions=decisions,
    )


# -- profiles -------------------------------------------------------------------------------------


def _stats(profile: cProfile.Profile, limit: int) -> str:
    buf = io.StringIO()
    pstats.Stats(profile, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(limit)
    lines = buf.getvalue().splitlines()
    body = [line for line in lines if line.strip()]
    return "\n".join(body)


def profile_core(
    n: int, *, scenario: str = "layered", seed: int = 0, slots: int = 8, completions: int = 1000
) -> str:
    """cProfile of each phase at ``n`` processes, as text."""
    registry, _ = generate(n, scenario, seed)
    out: list[str] = []
    prof = cProfile.Profile()
    prof.enable()
    planner = Planner(registry, now=START, slots=slots)
    prof.disable()
    out += [f"== Planner(...) at n={n} ({scenario})", _stats(prof, 25)]
    prof = cProfile.Profile()
    prof.enable()
    step = planner.handle(START)
    prof.disable()
    out += [f"== first handle() at n={n}", _stats(prof, 25)]
    prof = cProfile.Profile()
    prof.enable()
    planner.plan(START)
    prof.disable()
    out += [f"== plan() at n={n}", _stats(prof, 25)]
    heap: list[tuple[datetime, int, str]] = []
    sequence = _push(heap, step.starts, registry, START, 0)
    prof = cProfile.Profile()
    done = 0
    while heap and done < completions:
        end, _, run_id = heapq.heappop(heap)
        event = RunFinished(run_id=run_id, status=RunStatus.SUCCEEDED, at=end)
        prof.enable()
        step = planner.handle(end, event)
        prof.disable()
        done += 1
        sequence = _push(heap, step.starts, registry, end, sequence)
    out += [f"== {done} x handle(RunFinished) at n={n} ({scenario})", _stats(prof, 30)]
    return "\n".join(out)


# -- command line ---------------------------------------------------------------------------------


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def format_decisions(rows: Sequence[DecisionTimes]) -> str:
    head = (
        "| processes | scenario | gc | DAG runs | completions | timed | timed with a gc pass "
        "| p50 ms | p90 ms | p99 ms | max ms | mean ms | CPU p99 ms | CPU max ms "
        "| goal p99 ≤ 1 ms at 100k |"
    )
    lines = [head, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        goal = ""
        if r.n >= 100_000:
            goal = "met" if r.ms(99) <= DECISION_GOAL_MS else "NOT met"
        cells = [f"{r.n:,}", r.scenario, r.gc, str(r.planners), f"{r.completions:,}"]
        cells += [f"{len(r.samples_ns):,}", f"{r.collected:,}"]
        cells += [f"{x:.3f}" for x in (r.ms(50), r.ms(90), r.ms(99), r.max_ms, r.mean_ms)]
        cells += [f"{r.cpu_ms(99):.3f}", f"{r.cpu_ms(100):.3f}"]
        lines.append(_row([*cells, goal]))
    return "\n".join(lines)


def format_replans(rows: Sequence[ColdReplan]) -> str:
    head = (
        "| processes | scenario | gc | edges | (a) build s | (b) first handle s | (c) plan s "
        "| critical paths s | nx topo sort s | nx DiGraph s | goal (b),(c) ≤ 0.5 s |"
    )
    lines = [head, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        met = r.first_handle_s <= REPLAN_GOAL_S and r.plan_s <= REPLAN_GOAL_S
        seconds = (r.build_s, r.first_handle_s, r.plan_s, r.critical_paths_s, r.topo_sort_s)
        cells = [f"{r.n:,}", r.scenario, r.gc, f"{r.edges:,}", *(f"{x:.3f}" for x in seconds)]
        cells += [f"{r.nx_build_s:.3f}", "met" if met else "NOT met"]
        lines.append(_row(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument(
        "--scenarios", nargs="+", default=["layered"], choices=list(SCENARIOS), metavar="NAME"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=2000, help="completions timed per size")
    parser.add_argument("--repeats", type=int, default=3, help="cold replans per size")
    parser.add_argument(
        "--gc-variants", action="store_true", help="also run with the collector frozen/disabled"
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile hotspots")
    args = parser.parse_args(argv)
    if args.profile:
        for n in args.sizes:
            for scenario in args.scenarios:
                print(profile_core(n, scenario=scenario, seed=args.seed, slots=args.slots))
        return
    modes = GC_MODES if args.gc_variants else GC_MODES[:1]
    decisions = [
        steady_state(
            n,
            scenario=scenario,
            seed=args.seed,
            slots=args.slots,
            samples=args.samples,
            gc_mode=mode,
        )
        for n in args.sizes
        for scenario in args.scenarios
        for mode in modes
    ]
    print(format_decisions(decisions))
    print()
    replans = [
        cold_replan(
            n,
            scenario=scenario,
            seed=args.seed,
            slots=args.slots,
            repeats=args.repeats,
            disable_gc=v,
        )
        for n in args.sizes
        for scenario in args.scenarios
        for v in ([False, True] if args.gc_variants else [False])
    ]
    print(format_replans(replans))


if __name__ == "__main__":
    main()
