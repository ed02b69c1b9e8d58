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
    process it left behind — in its group, or carrying its ``PLANNER_ATTEMPT_KEY`` — is terminated
    too, so a job never outlives its attempt; if the worker process dies first, its guardian
    process does that (``planner.live.worker.guardian``, which also states the limits).
    Its environment is the worker's, plus ``spec.env``, plus:

    ======================== ==================================================================
    ``PLANNER_RUN_ID``       the run id
    ``PLANNER_ATTEMPT``      the attempt number (1-based)
    ``PLANNER_PROCESS``      the process name
    ``PLANNER_SCHEDULED``    the scheduled (fire) time, ISO-8601 with offset
    ``PLANNER_PARAM_<KEY>``  each param; ``<KEY>`` upper-cased, non-alphanumerics → ``_``;
                             strings as they are, other values JSON-encoded
    ``PLANNER_ATTEMPT_KEY``  unique to the attempt: how its processes are found to be killed
                             (keep it in the environment of what the command starts)
    ======================== ==================================================================

    and the directory of the worker's Python interpreter first on ``PATH``, so that ``python`` in a
    command means the interpreter (virtualenv) the planner's workers run with.

Timeouts and cancels
--------------------
A command that runs past ``timeout_s`` gets SIGTERM on its processes, then SIGKILL after
``kill_grace_s``; the outcome is ``timed_out``. A cancel (``planner cancel``: the planner calls
``planner.live.worker.attempts.cancel_attempt`` on the workers) does the same; the outcome is
``cancelled``.

A *callable* cannot be killed: Python threads cannot be stopped from outside. It runs in the Dask
task's thread; when its timeout passes, ``ctx.cancelled`` is set (and ``on_overdue`` tells the
planner the thread still runs), and a cancel sets it too. ``execute`` returns only when the
callable does — ``timed_out`` with the stack it was stuck in at the timeout, or ``cancelled`` —
so the attempt, the Dask thread and the planner's slot stay busy until the thread really ends and
nothing queues unseen behind it. A callable that may run long should check ``ctx.cancelled``.

Bounds
------
What an outcome carries is cut here, before it reaches the scheduler or the database: error
messages to ``MESSAGE_MAX_CHARS``, tracebacks and stderr to the last ``TRACEBACK_LINES`` lines and
``TRACEBACK_MAX_CHARS``, results to ``RESULT_MAX_CHARS`` (``planner.live.worker.outcome``).

Hooks
-----
``run_hook`` calls a ``module:callable`` hook with those of the keyword arguments ``event``,
``process``, ``run_id``, ``attempt``, ``status``, ``error`` that it accepts (all of them if it
takes ``**kwargs``). A failing hook is logged and otherwise ignored: it never changes a run's
status. ``execute`` calls ``on_success`` after a successful attempt and ``on_failure`` after a
failed or timed-out attempt when no retry follows — ``spec.final_attempt``, or the verdict of
``retry_on``/``on_error`` (``planner.live.worker.retry_decision``) on an attempt with retries
left; the planner calls ``on_cancel`` itself through ``run_hook``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections.abc import Callable

from planner.live.worker.attempts import running
from planner.live.worker.callables import execute_callable, import_target, run_hook
from planner.live.worker.capture import capturing
from planner.live.worker.commands import command_environment, execute_command
from planner.live.worker.logs import AttemptLog, Sink, publishing
from planner.live.worker.outcome import (
    MESSAGE_MAX_CHARS,
    AttemptResult,
    JobContext,
    JobHooks,
    JobOutcome,
    JobSpec,
    bounded_error,
    clip,
    utcnow,
)
from planner.live.worker.retry_decision import Verdict, decide
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

_RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})

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


def execute(
    spec: JobSpec,
    *,
    key: str | None = None,
    on_overdue: Callable[[], None] | None = None,
    on_log: Sink | None = None,
) -> JobOutcome:
    """Run one attempt and report how it went. Never raises for a failure of the job itself.

    ``key`` names the attempt for ``cancel_attempt`` (the Dask key; a private one by default);
    ``on_overdue`` is called, on another thread, when a callable's timeout passes; ``on_log``,
    on another thread, with what the attempt's log gained (and how many bytes of it were left
    out), about once a second while it runs.
    """
    start = utcnow()
    worker = worker_address()
    key = key if key is not None else f"{spec.run_id}-a{spec.attempt}-{secrets.token_hex(6)}"
    log = AttemptLog(spec.log_max_bytes)
    # the verdict and the hooks run inside the capture too: what they log (a hook that raised)
    # is part of the attempt's log, which travels with the outcome from any worker
    with capturing(log), publishing(log, on_log):
        with running(
            key, run_id=spec.run_id, attempt=spec.attempt, kill_grace_s=spec.kill_grace_s
        ) as attempt:
            if attempt.cancel_reason is not None:  # cancelled before it reached this worker
                error = ErrorInfo(
                    type="Cancelled", message=f"{attempt.cancel_reason} before it started"
                )
                res = AttemptResult(RunStatus.CANCELLED, error=error)
            elif spec.run is not None:
                res = execute_callable(spec, spec.run, attempt, on_overdue)
            else:
                res = execute_command(spec, attempt, log)
        outcome = JobOutcome(
            status=res.status,
            start=start,
            end=utcnow(),
            worker=worker,
            error=bounded_error(res.error) if res.error is not None else None,
            result=clip(res.result) if res.result is not None else None,
            state_changed=res.state_changed,
            new_state=res.new_state,
            result_json=res.result_json,
        )
        outcome = _after(spec, outcome)
    return dataclasses.replace(outcome, log=log.text() or None)


def _after(spec: JobSpec, outcome: JobOutcome) -> JobOutcome:
    """After the job: the verdict on a failure with retries left, then the lifecycle hook."""
    final = spec.final_attempt
    if outcome.status in _RETRYABLE and not final:
        outcome, final = _decided(spec, outcome)
    hook, event = None, ""
    if outcome.status is RunStatus.SUCCEEDED:
        hook, event = spec.hooks.on_success, "on_success"
    elif final and outcome.status is not RunStatus.CANCELLED:
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


def _decided(spec: JobSpec, outcome: JobOutcome) -> tuple[JobOutcome, bool]:
    """A failure with retries left, after ``retry_on`` and ``on_error`` had their say: the
    outcome the planner gets, and whether it is final (no retry follows)."""
    verdict, why = decide(
        retry_on=spec.retry_on,
        on_error=spec.hooks.on_error,
        process=spec.process,
        run_id=spec.run_id,
        attempt=spec.attempt,
        status=outcome.status,
        error=outcome.error,
        cwd=spec.cwd,
    )
    if verdict is Verdict.RETRY and not why:
        return outcome, False
    error = outcome.error or ErrorInfo(type=outcome.status.value, message="")
    if verdict is Verdict.RETRY:  # retried anyway (a hook that raised): said with the attempt
        return dataclasses.replace(outcome, error=_noted(error, why)), False
    noted = _noted(error, f"{why}; not retried")
    if verdict is Verdict.CANCEL:
        return dataclasses.replace(outcome, status=RunStatus.CANCELLED, error=noted), True
    return dataclasses.replace(outcome, error=noted, retry=False), True


def _noted(error: ErrorInfo, why: str) -> ErrorInfo:
    """``error`` with `` [why]`` after its message; the message is cut first, if it must be,
    so that the whole stays within ``MESSAGE_MAX_CHARS`` and the note is kept."""
    note = f" [{clip(why, MESSAGE_MAX_CHARS // 2)}]"
    message = clip(error.message, MESSAGE_MAX_CHARS - len(note)) + note
    return dataclasses.replace(error, message=message)


def worker_address() -> str:
    """The Dask worker's address when called in a task, else ``hostname:pid``."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
