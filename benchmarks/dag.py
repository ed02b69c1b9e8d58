"""A seeded layered DAG of short sleeping jobs, and the job functions, for ``bench_peers``.

``layered_jobs(n, layers, seed=...)`` splits ``n`` jobs into ``layers`` layers of (nearly) equal
size; every job below the first layer depends on 1–3 distinct jobs of the layer just above it
(uniformly), and each job sleeps a whole number of milliseconds drawn uniformly from 10–100. Only a
seeded ``random.Random`` is used, so the same arguments always give the same DAG.

This module imports nothing heavy (no Dask, no Luigi, no planner): the functions here run as
planner callables and Dask tasks, and the Luigi child process imports it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    layer: int
    ms: int  # how long the job sleeps
    deps: tuple[int, ...]  # indices of the jobs it depends on (all in the layer above)


def layered_jobs(
    n: int,
    layers: int,
    *,
    seed: int = 0,
    fan_in: tuple[int, int] = (1, 3),
    ms: tuple[int, int] = (10, 100),
) -> list[Job]:
    """``n`` jobs in topological order (by layer, then index)."""
    rng = random.Random(seed)
    layers = max(1, min(layers, n))
    bounds = [round(k * n / layers) for k in range(layers + 1)]
    jobs: list[Job] = []
    for layer in range(layers):
        above = range(bounds[layer - 1], bounds[layer]) if layer else range(0)
        for i in range(bounds[layer], bounds[layer + 1]):
            deps: tuple[int, ...] = ()
            if layer:
                k = min(rng.randint(*fan_in), len(above))
                deps = tuple(sorted(rng.sample(above, k)))
            jobs.append(Job(i, layer, rng.randint(*ms), deps))
    return jobs


def critical_path_s(jobs: list[Job]) -> float:
    """The longest chain of durations through the DAG, in seconds."""
    finish: dict[int, int] = {}
    for job in jobs:  # topological order
        finish[job.index] = job.ms + max((finish[d] for d in job.deps), default=0)
    return max(finish.values(), default=0) / 1000


def lower_bound_s(jobs: list[Job], slots: int) -> float:
    """``max(critical path, total work / slots)``, in seconds."""
    return max(critical_path_s(jobs), sum(j.ms for j in jobs) / 1000 / slots)


def sleep_ms(ms: int) -> tuple[float, float]:
    """A job that sleeps ``ms`` milliseconds and says when it ran (wall clock)."""
    start = time.time()
    time.sleep(ms / 1000)
    return start, time.time()


def sleep_after(ms: int, *_deps: object) -> tuple[float, float]:
    """``sleep_ms`` as a Dask task: its arguments are its dependencies' results (ignored)."""
    return sleep_ms(ms)


def stamp_after(_prev: object = None) -> tuple[float, float]:
    """A no-op Dask task that depends on the previous one (its argument) and says when it ran."""
    t = time.time()
    return t, time.time()
