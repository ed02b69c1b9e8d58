"""Seeded generators of DAG-shaped registries for the benchmarks.

``layered_dag(n, seed=...)`` builds ``n`` single processes arranged in layers. Every process below
the first layer has 1–3 ancestors (uniformly) drawn from the layer just above it, or — with a small
probability per edge — from any earlier layer, so the graph has long chains as well as shortcuts.
Expected durations are whole seconds drawn from a log-normal distribution (median about 5 minutes,
clipped to [10 s, 4 h]), and a fraction of the processes is assigned to a few named pools (from a
separate random stream, so the graph and the durations do not depend on the pool settings).

The same ``(n, seed, ...)`` always yields the same registry: only seeded ``random.Random``
instances are used, and names are zero-padded so that their string order is the creation order.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta

from registry.model import ProcessDef, RegistryDef

MEDIAN_DURATION_S = 300.0
SIGMA = 1.0
MIN_DURATION_S = 10
MAX_DURATION_S = 4 * 3600
SKIP_LAYER_PROBABILITY = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """What the generator was asked for (kept in results so a run can be reproduced)."""

    n: int
    seed: int
    layers: int
    fan_in: tuple[int, int]
    pools: int
    pool_fraction: float
    pooled_priority: int

    def __str__(self) -> str:
        return (
            f"n={self.n} seed={self.seed} layers={self.layers} fan_in={self.fan_in[0]}-"
            f"{self.fan_in[1]} pools={self.pools} pool_fraction={self.pool_fraction:g} "
            f"pooled_priority={self.pooled_priority}"
        )


def default_layers(n: int) -> int:
    """Roughly sqrt(n) layers, at least 2: deep enough for long critical paths, wide enough for
    plenty of parallelism."""
    return max(2, round(math.sqrt(n)))


def durations(n: int, rng: random.Random) -> list[int]:
    """``n`` whole-second durations, log-normal around ``MEDIAN_DURATION_S``, clipped."""
    mu = math.log(MEDIAN_DURATION_S)
    return [
        min(MAX_DURATION_S, max(MIN_DURATION_S, round(rng.lognormvariate(mu, SIGMA))))
        for _ in range(n)
    ]


def layered_dag(
    n: int,
    *,
    seed: int = 0,
    layers: int | None = None,
    fan_in: tuple[int, int] = (1, 3),
    pools: int = 3,
    pool_fraction: float = 0.2,
    pool_size: int = 2,
    pooled_priority: int = 0,
    slots: int | None = None,
) -> tuple[RegistryDef, Shape]:
    """A registry of ``n`` single processes forming a layered random DAG (see the module doc).

    ``pooled_priority`` is the priority of the processes in a pool (the others have 0): a positive
    value puts pool-bound work at the head of the candidate list, the case where a full pool makes
    the planner skip many candidates before finding one it can start."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n!r}")
    rng = random.Random(seed)
    n_layers = min(n, layers if layers is not None else default_layers(n))
    width = len(str(n - 1))
    names = [f"p{i:0{width}d}" for i in range(n)]
    # layer sizes: an even split, the remainder spread over the first layers
    base, extra = divmod(n, n_layers)
    bounds: list[tuple[int, int]] = []
    first = 0
    for layer in range(n_layers):
        size = base + (1 if layer < extra else 0)
        bounds.append((first, first + size))
        first += size
    seconds = durations(n, rng)
    pool_names = [f"pool{k}" for k in range(pools)]
    pool_rng = random.Random(seed * 7919 + 1)  # its own stream: pools do not change the graph
    processes: dict[str, ProcessDef] = {}
    lo, hi = fan_in
    for layer, (start, stop) in enumerate(bounds):
        for i in range(start, stop):
            ancestors: set[int] = set()
            if layer > 0:
                above_start, above_stop = bounds[layer - 1]
                for _ in range(rng.randint(lo, hi)):
                    if layer > 1 and rng.random() < SKIP_LAYER_PROBABILITY:
                        ancestors.add(rng.randrange(0, above_start))
                    else:
                        ancestors.add(rng.randrange(above_start, above_stop))
            pool = None
            if pool_names and pool_rng.random() < pool_fraction:
                pool = pool_rng.choice(pool_names)
            processes[names[i]] = ProcessDef(
                name=names[i],
                run="workflows.jobs.demo:noop",
                ancestors=tuple(names[a] for a in sorted(ancestors)),
                expected_duration=timedelta(seconds=seconds[i]),
                pool=pool,
                priority=pooled_priority if pool is not None else 0,
            )
    registry = RegistryDef(
        slots=slots,
        pools=dict.fromkeys(pool_names, pool_size),
        processes=processes,
    )
    shape = Shape(
        n=n,
        seed=seed,
        layers=n_layers,
        fan_in=fan_in,
        pools=pools,
        pool_fraction=pool_fraction,
        pooled_priority=pooled_priority,
    )
    return registry, shape


def edges(registry: RegistryDef) -> int:
    return sum(len(p.ancestors) for p in registry.processes.values())
