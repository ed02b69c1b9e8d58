"""Pausing Python's cyclic garbage collector while the core does bulk work.

Building the book of a large registry, a cold evaluation and a full dry run each allocate a few
objects per process, all of which stay alive. The collector runs a pass every 700 allocations
and, while the number of live objects keeps growing by a quarter, a full pass over every object
of the process: at 100,000 processes those full passes were about half of a cold ``handle``.
Nothing the core builds there is garbage, so those passes find nothing. Paused, the collector
starts again where it would have been, with one pass over what was allocated meanwhile instead
of the repeated full ones.

The pause applies only to work over at least ``BULK`` processes, so a step after one completion
runs with the collector as ever, and only when the collector was enabled (a driver that
disabled it keeps it so). The collector is per interpreter: other threads see the pause too,
for as long as the bulk work lasts.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: the least number of processes whose evaluation pauses the collector
BULK = 1_000


@contextmanager
def paused_for(processes: int) -> Iterator[None]:
    """The collector paused while the body works over ``processes`` processes (when that is
    bulk work and the collector is enabled), enabled again however the body ends."""
    if processes < BULK or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
