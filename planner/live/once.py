"""At most once per attempt: Dask may run a task again, the planner's attempts never.

Dask re-runs a task when the worker that held its result dies while a client still wants that
result (the task is recomputed elsewhere), and it may reschedule work of a worker that left. For
a planner that would be a second execution of an attempt whose work already happened. So the
worker-side wrapper first *claims* the attempt on the scheduler — its key plus a token unique to
the submission, so that another planner's (or a test's) attempt of the same name is not taken for
a re-run: a handler installed on the scheduler (``install``) keeps the tokens claimed so far and
answers True only to the first claim.
A second execution finds the key claimed and raises ``AttemptAlreadyRan`` without running the
job; the planner then uses the outcome the first execution reported, if it did, or records the
attempt failed and retries it by policy as a *new* attempt.

The claimed set lives in the scheduler's memory (bounded: the oldest of ``MAX_CLAIMS`` keys are
forgotten) and survives planner restarts on a remote scheduler. One round trip to the scheduler
per attempt, on the worker.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from distributed import Client
from distributed.utils import sync

HANDLER = "planner_claim_attempt"
#: keys remembered on the scheduler; far more than attempts can be in flight or in doubt at once
MAX_CLAIMS = 200_000


class AttemptAlreadyRan(RuntimeError):
    """Dask started an attempt a second time (its first worker died); it was not run again."""


def _install(dask_scheduler: Any = None) -> bool:
    if HANDLER in dask_scheduler.handlers:
        return False
    claimed: OrderedDict[str, None] = OrderedDict()

    def claim(comm: Any = None, key: str = "") -> bool:
        if key in claimed:
            return False
        claimed[key] = None
        if len(claimed) > MAX_CLAIMS:
            claimed.popitem(last=False)
        return True

    dask_scheduler.handlers[HANDLER] = claim
    return True


def install(client: Client) -> None:
    """Install the claim handler on the client's scheduler (once; later calls keep its keys)."""
    client.run_on_scheduler(_install)


def claim(worker: Any, key: str) -> bool:
    """On a worker's task thread: True if this is the first execution of ``key``."""
    rpc = getattr(worker.scheduler, HANDLER)
    return bool(sync(worker.loop, rpc, key=key))
