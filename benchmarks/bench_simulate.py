"""``planner.simulation.simulate`` on generated workflow DAGs: wall time and schedule quality.

For each generated registry (single processes, every run takes its ``expected_duration``) the
simulated makespan is compared with

* the lower bound ``max(critical path, total work / slots, max over pools of pool work / size)``;
* **FIFO** list scheduling: ready processes start in the order they became ready (then by name);
* **HLFET** (Highest Level First with Estimated Times), classic critical-path list scheduling:
  ready processes ordered by their longest path to an exit, own duration included (then by ready
  time, then by name).

Both baselines are tiny event-driven list schedulers written here, with the same slots and the
same pool rule as the planner (a ready process whose pool is full is skipped, the next one may
start). With equal priorities the planner's default ranking — priority, then critical path, then
waiting time, then name — *is* HLFET, so the benchmark also counts the processes whose simulated
start differs from the HLFET schedule (expected: none).

Run ``python -m benchmarks.bench_simulate --help``.
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sortedcontainers import SortedList

from benchmarks.generate import layered_dag
from planner.simulation.simulate import simulate
from registry.lifecycle import RunStatus
from registry.model import RegistryDef

START = datetime(2026, 11, 24, tzinfo=UTC)

#: DAG shapes by name -> number of layers (None: about sqrt(n), the generator's default).
#: "wide" has few, broad layers, where the order of ready work matters most for the makespan.
SHAPES: dict[str, int | None] = {"layered": None, "wide": 5}

#: (name, ready time, critical path) -> sort key; smaller starts first
OrderKey = Callable[[str, float, float], tuple[float | str, ...]]


def fifo_key(name: str, ready: float, _cp: float) -> tuple[float | str, ...]:
    return (ready, name)


def hlfet_key(name: str, ready: float, cp: float) -> tuple[float | str, ...]:
    return (-cp, ready, name)


def seconds(registry: RegistryDef) -> dict[str, float]:
    return {
        name: (p.expected_duration or timedelta(minutes=1)).total_seconds()
        for name, p in registry.processes.items()
    }


def critical_paths(registry: RegistryDef, durations: Mapping[str, float]) -> dict[str, float]:
    """Per process: its duration plus the longest chain of durations below it (Kahn, no nx)."""
    children: dict[str, list[str]] = defaultdict(list)
    pending = {name: 0 for name in registry.processes}
    for name, p in registry.processes.items():
        for a in set(p.ancestors):
            children[a].append(name)
            pending[a] += 1  # counts children not yet finished, walking from the exits up
    order = [name for name, k in pending.items() if k == 0]
    cp: dict[str, float] = {}
    while order:
        name = order.pop()
        cp[name] = durations[name] + max((cp[c] for c in children[name]), default=0.0)
        for a in set(registry.processes[name].ancestors):
            pending[a] -= 1
            if pending[a] == 0:
                order.append(a)
    return cp


@dataclass(frozen=True, slots=True, kw_only=True)
class ListSchedule:
    starts: dict[str, float]  # seconds from the start
    makespan_s: float


def list_schedule(
    registry: RegistryDef,
    *,
    slots: int,
    key: OrderKey,
    durations: Mapping[str, float],
    cp: Mapping[str, float],
) -> ListSchedule:
    """Greedy list scheduling: whenever slots are free, start ready processes in ``key`` order.

    Completions at the same instant are applied together before deciding, as the simulator does.
    """
    procs = registry.processes
    children: dict[str, list[str]] = defaultdict(list)
    waiting: dict[str, int] = {}
    for name, p in procs.items():
        parents = set(p.ancestors)
        waiting[name] = len(parents)
        for a in parents:
            children[a].append(name)
    ready: SortedList = SortedList(key(n, 0.0, cp[n]) for n, k in waiting.items() if k == 0)
    running: list[tuple[float, str]] = []
    pool_use: Counter[str] = Counter()
    starts: dict[str, float] = {}
    now = 0.0
    while True:
        free = slots - len(running)
        i = 0
        while free > 0 and i < len(ready):
            name = str(ready[i][-1])
            pool = procs[name].pool
            if pool is not None and pool_use[pool] >= registry.pools.get(pool, 0):
                i += 1
                continue
            del ready[i]
            starts[name] = now
            heapq.heappush(running, (now + durations[name], name))
            if pool is not None:
                pool_use[pool] += 1
            free -= 1
        if not running:
            break
        now = running[0][0]
        while running and running[0][0] <= now:
            _, name = heapq.heappop(running)
            pool = procs[name].pool
            if pool is not None:
                pool_use[pool] -= 1
            for child in children[name]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.add(key(child, now, cp[child]))
    if len(starts) != len(procs):  # pragma: no cover - a pool of size 0 would starve
        raise RuntimeError(f"{len(procs) - len(starts)} processes never started")
    makespan = max(starts[n] + durations[n] for n in starts)
    return ListSchedule(starts=starts, makespan_s=makespan)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    n: int
    shape: str
    slots: int
    pools: int
    seed: int
    wall_s: float  # simulate() alone
    steps: int  # handle() calls
    runs: int
    makespan_s: float
    critical_path_s: float
    work_s: float
    lower_bound_s: float
    fifo_s: float
    hlfet_s: float
    differing_starts: int  # processes whose start differs from the HLFET schedule

    @property
    def vs_bound(self) -> float:
        return self.makespan_s / self.lower_bound_s

    @property
    def vs_fifo(self) -> float:
        return self.makespan_s / self.fifo_s

    @property
    def vs_hlfet(self) -> float:
        return self.makespan_s / self.hlfet_s


def run_one(
    n: int, *, shape: str = "layered", slots: int, pools: int, seed: int
) -> SimulationResult:
    registry, _shape = layered_dag(n, seed=seed, pools=pools, layers=SHAPES[shape])
    durations = seconds(registry)
    cp = critical_paths(registry, durations)
    work = sum(durations.values())
    pool_work: dict[str, float] = defaultdict(float)
    for name, p in registry.processes.items():
        if p.pool is not None:
            pool_work[p.pool] += durations[name]
    bound = max(
        max(cp.values()),
        work / slots,
        *(w / registry.pools[pool] for pool, w in pool_work.items()),
    )
    until = START + timedelta(seconds=work + 86_400)
    t0 = time.perf_counter()
    sim = simulate(registry, start=START, until=until, slots=slots)
    wall = time.perf_counter() - t0
    done = [r for r in sim.runs if r.status is RunStatus.SUCCEEDED]
    if len(done) != n:
        raise RuntimeError(f"simulation finished {len(done)} of {n} processes")
    fifo = list_schedule(registry, slots=slots, key=fifo_key, durations=durations, cp=cp)
    hlfet = list_schedule(registry, slots=slots, key=hlfet_key, durations=durations, cp=cp)
    planned = {r.process: (r.start - START).total_seconds() for r in done}
    differing = sum(1 for name, s in hlfet.starts.items() if planned[name] != s)
    return SimulationResult(
        n=n,
        shape=shape,
        slots=slots,
        pools=pools,
        seed=seed,
        wall_s=wall,
        steps=sim.steps,
        runs=len(done),
        makespan_s=sim.makespan.total_seconds(),
        critical_path_s=max(cp.values()),
        work_s=work,
        lower_bound_s=bound,
        fifo_s=fifo.makespan_s,
        hlfet_s=hlfet.makespan_s,
        differing_starts=differing,
    )


def format_results(rows: Sequence[SimulationResult]) -> str:
    head = (
        "| processes | shape | slots | pools | seed | simulate s | handle calls | makespan h "
        "| lower bound h | ÷ bound | ÷ FIFO | ÷ HLFET | starts ≠ HLFET | goal (≤ HLFET) |"
    )
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        met = r.makespan_s <= r.hlfet_s
        cells = [f"{r.n:,}", r.shape, str(r.slots), str(r.pools), str(r.seed)]
        cells += [f"{r.wall_s:.2f}", f"{r.steps:,}"]
        cells += [f"{r.makespan_s / 3600:.2f}", f"{r.lower_bound_s / 3600:.2f}"]
        cells += [f"{x:.3f}" for x in (r.vs_bound, r.vs_fifo, r.vs_hlfet)]
        cells += [str(r.differing_starts), "met" if met else "NOT met"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--slots", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--pools", type=int, nargs="+", default=[0, 3], help="pool counts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    rows = [
        run_one(n, shape=shape, slots=slots, pools=pools, seed=seed)
        for n in args.sizes
        for shape in args.shapes
        for slots in args.slots
        for pools in args.pools
        for seed in args.seeds
    ]
    print(format_results(rows))


if __name__ == "__main__":
    main()
