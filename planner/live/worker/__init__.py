"""What runs on a Dask worker for one attempt of one run: callables, commands, hooks.

Plain and picklable in, a ``JobOutcome`` out; it knows nothing of the planner's state or store.

``execute``   one attempt, start to end (the theory of operation);
``outcome``   ``JobSpec`` in, ``JobOutcome`` out, and the bounds on what an outcome carries;
``callables`` / ``commands``  the two kinds of job;
``attempts``  the worker process's book of running attempts, and cancelling one;
``guardian``  finding and killing an attempt's processes, also after its worker process died.

May import: the standard library, psutil, distributed (for the worker's address) and
``registry``'s domain modules — never ``planner.core``, the loop or an interface, so a bare
Dask worker can import it.
"""

from __future__ import annotations

from planner.live.worker.attempts import cancel_all_attempts, cancel_attempt
from planner.live.worker.execute import (
    JobContext,
    JobHooks,
    JobOutcome,
    JobSpec,
    command_environment,
    execute,
    import_target,
    run_hook,
    worker_address,
)

__all__ = [
    "JobContext",
    "JobHooks",
    "JobOutcome",
    "JobSpec",
    "cancel_all_attempts",
    "cancel_attempt",
    "command_environment",
    "execute",
    "import_target",
    "run_hook",
    "worker_address",
]
