"""What runs on a Dask worker for one attempt of one run.

Theory of operation
-------------------
The planner decides to start an attempt, builds a ``JobSpec`` (plain, frozen, picklable) and
submits ``execute(spec)`` to Dask. ``execute`` runs on the worker, knows nothing of the planner's
state or store, and always returns a ``JobOutcome``: a job that raises, exits non-zero or runs past
its timeout is an *outcome*, never an exception. The planner records the outcome and applies its
retry policy; the worker only calls the lifecycle hooks the spec names.

Two kinds of job:

``run: "module:callable"``
    Imported with ``importlib`` (``spec.cwd`` is appended to ``sys.path`` first, so the planner's
    project directory is importable on a local cluster) and called with ``params`` as keyword
    arguments, plus ``ctx=JobContext(...)`` when the callable has a parameter named ``ctx``.
    Returning a dict with the key ``"state"`` replaces the process's saved state, if the attempt
    succeeds (the value must be JSON-serialisable).

``command: [...] | "..."``
    Started with ``subprocess.Popen`` in its own session/process group (a list is exec'd, a string
    goes through the shell), stdin closed, stdout/stderr captured (only the last
    ``OUTPUT_TAIL_BYTES`` of each are kept). Exit code 0 is success. When the command exits, any
    process it left behind in its group is terminated too, so a job never outlives its attempt.
    Its environment is the worker's, plus ``spec.env``, plus:

    ======================== ==================================================================
    ``PLANNER_RUN_ID``       the run id
    ``PLANNER_ATTEMPT``      the attempt number (1-based)
    ``PLANNER_PROCESS``      the process name
    ``PLANNER_SCHEDULED``    the scheduled (fire) time, ISO-8601 with offset
    ``PLANNER_PARAM_<KEY>``  each param; ``<KEY>`` upper-cased, non-alphanumerics → ``_``;
                             strings as they are, other values JSON-encoded
    ======================== ==================================================================

    and the directory of the worker's Python interpreter first on ``PATH``, so that ``python`` in a
    command means the interpreter (virtualenv) the planner's workers run with.

Timeouts
--------
A command that runs past ``timeout_s`` gets SIGTERM on its whole process group, then SIGKILL after
``kill_grace_s``; the outcome is ``timed_out``.

A *callable* cannot be killed: Python threads cannot be stopped from outside. With a timeout the
callable runs in a helper thread; after ``timeout_s`` ``execute`` stops waiting, returns
``timed_out`` (with the stuck thread's stack as traceback) and the planner's slot is freed, but the
thread keeps running in the worker process until the callable returns on its own (its result is
then discarded). Jobs that may hang for good should be commands, or check a deadline themselves.
Inside that helper thread ``distributed.get_worker()`` is not available.

Hooks
-----
``run_hook`` calls a ``module:callable`` hook with those of the keyword arguments ``event``,
``process``, ``run_id``, ``attempt``, ``status``, ``error`` that it accepts (all of them if it
takes ``**kwargs``). A failing hook is logged and otherwise ignored: it never changes a run's
status. ``execute`` calls ``on_success`` after a successful attempt and ``on_failure`` after a
failed or timed-out attempt when ``spec.final_attempt`` says no retry follows; the planner calls
``on_cancel`` itself through ``run_hook``.
"""

from __future__ import annotations

import os
import socket

from planner.live.worker.callables import execute_callable, import_target, run_hook
from planner.live.worker.commands import command_environment, execute_command
from planner.live.worker.outcome import JobContext, JobHooks, JobOutcome, JobSpec, utcnow
from registry.lifecycle import RunStatus

__all__ = [
    "JobContext",
    "JobHooks",
    "JobOutcome",
    "JobSpec",
    "command_environment",
    "execute",
    "import_target",
    "run_hook",
    "worker_address",
]


def execute(spec: JobSpec) -> JobOutcome:
    """Run one attempt and report how it went. Never raises for a failure of the job itself."""
    start = utcnow()
    worker = worker_address()
    res = execute_callable(spec, spec.run) if spec.run is not None else execute_command(spec)
    outcome = JobOutcome(
        status=res.status,
        start=start,
        end=utcnow(),
        worker=worker,
        error=res.error,
        result=res.result,
        state_changed=res.state_changed,
        new_state=res.new_state,
    )
    hook, event = None, ""
    if outcome.status is RunStatus.SUCCEEDED:
        hook, event = spec.hooks.on_success, "on_success"
    elif spec.final_attempt:
        hook, event = spec.hooks.on_failure, "on_failure"
    if hook is not None:
        run_hook(
            hook,
            event=event,
            process=spec.process,
            run_id=spec.run_id,
            attempt=spec.attempt,
            status=outcome.status,
            error=outcome.error,
            cwd=spec.cwd,
        )
    return outcome


def worker_address() -> str:
    """The Dask worker's address when called in a task, else ``hostname:pid``."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
