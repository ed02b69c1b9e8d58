"""Running ``run: "module:callable"`` jobs and lifecycle hooks on the worker.

A callable is imported (``spec.cwd`` joins ``sys.path``) and called, in the calling (Dask task)
thread, with ``params`` as keyword arguments plus ``ctx`` when it takes one. Python threads cannot
be killed, so a timeout or a cancel can only ask it to stop: a timer sets ``ctx.cancelled`` when
the timeout passes (and takes the stack it is stuck in), a cancel sets it from outside, and the
attempt ends when the callable returns. See ``planner.live.worker.execute`` for the whole contract.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from planner.live.worker.attempts import Attempt
from planner.live.worker.outcome import (
    AttemptResult,
    JobContext,
    JobSpec,
    error_from_exception,
    json_result,
    summary,
    tail_lines,
)
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

log = logging.getLogger(__name__)

_sys_path_lock = threading.Lock()


def import_target(target: str, *, cwd: str | None = None) -> Callable[..., Any]:
    """Resolve ``"package.module:attr[.attr…]"`` to a callable (``cwd`` joins ``sys.path``).

    Raises ``ValueError`` for a malformed target, ``ImportError``/``AttributeError`` for a missing
    one and ``TypeError`` when the object is not callable.
    """
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"target {target!r} is not of the form 'module:callable'")
    if cwd:
        with _sys_path_lock:
            if cwd not in sys.path:
                # appended, not prepended: installed packages win over same-named local dirs
                sys.path.append(cwd)
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"target {target!r} is not callable")
    func: Callable[..., Any] = obj
    return func


def execute_callable(
    spec: JobSpec,
    target: str,
    attempt: Attempt,
    on_overdue: Callable[[], None] | None = None,
) -> AttemptResult:
    """Call the job; ``on_overdue`` runs (on a timer thread) when its timeout passes."""
    try:
        func = import_target(target, cwd=spec.cwd)
        kwargs = dict(spec.params)
        if _has_parameter(func, "ctx"):
            kwargs["ctx"] = JobContext(
                run_id=spec.run_id,
                attempt=spec.attempt,
                scheduled=spec.scheduled,
                process=spec.process,
                state=spec.state,
                params=dict(spec.params),
                ancestors=dict(spec.ancestors),
                cancelled=attempt.cancelled,
            )
    except Exception as exc:
        return AttemptResult(RunStatus.FAILED, error=error_from_exception(exc))

    timer = _Timeout(spec, target, attempt, on_overdue) if spec.timeout_s is not None else None
    value: Any = None
    error: ErrorInfo | None = None
    try:
        value = func(**kwargs)
    except (Exception, SystemExit) as exc:
        error = error_from_exception(exc)
    finally:
        stuck = timer.stop() if timer is not None else None
    if attempt.cancel_reason is not None:
        return AttemptResult(
            RunStatus.CANCELLED,
            error=ErrorInfo(
                type="Cancelled",
                message=f"{attempt.cancel_reason}; ctx.cancelled was set and {target} ended",
                traceback=error.traceback if error is not None else "",
            ),
        )
    if stuck is not None:
        assert spec.timeout_s is not None
        return AttemptResult(
            RunStatus.TIMED_OUT,
            error=ErrorInfo(
                type="Timeout",
                message=f"{target} did not finish within {spec.timeout_s:g}s; ctx.cancelled was "
                f"set and it returned {stuck[0]:.3g}s later (its slot stayed busy until then)",
                traceback=stuck[1],
            ),
        )
    if error is not None:
        return AttemptResult(RunStatus.FAILED, error=error)
    return _success(value)


class _Timeout:
    """At ``spec.timeout_s``: take the job thread's stack, set ``ctx.cancelled``, report overdue."""

    def __init__(
        self,
        spec: JobSpec,
        target: str,
        attempt: Attempt,
        on_overdue: Callable[[], None] | None,
    ) -> None:
        self._spec, self._target, self._attempt = spec, target, attempt
        self._on_overdue = on_overdue
        self._thread_id = threading.get_ident()
        self._lock = threading.Lock()
        self._finished = False
        self._fired_at: float | None = None
        self._stack = ""
        assert spec.timeout_s is not None
        self._timer = threading.Timer(spec.timeout_s, self._fire)
        self._timer.name = f"planner-timeout-{spec.run_id}-{spec.attempt}"
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        frame = sys._current_frames().get(self._thread_id)
        with self._lock:
            if self._finished:
                return
            self._fired_at = time.monotonic()
            self._stack = tail_lines("".join(traceback.format_stack(frame)) if frame else "")
        self._attempt.cancelled.set()
        log.warning(
            "run %r attempt %d: %r still running after its %gs timeout; ctx.cancelled is set, "
            "its slot stays busy until it returns",
            self._spec.run_id,
            self._spec.attempt,
            self._target,
            self._spec.timeout_s,
        )
        if self._on_overdue is not None:
            self._on_overdue()

    def stop(self) -> tuple[float, str] | None:
        """The callable returned: (seconds past the timeout, stuck stack) if it timed out."""
        self._timer.cancel()
        with self._lock:
            self._finished = True
            if self._fired_at is None:
                return None
            return time.monotonic() - self._fired_at, self._stack


def _success(value: Any) -> AttemptResult:
    if isinstance(value, Mapping) and "state" in value:
        new_state = value["state"]
        try:
            json.dumps(new_state)
        except (TypeError, ValueError) as exc:
            return AttemptResult(
                RunStatus.FAILED,
                error=ErrorInfo(
                    type="InvalidState",
                    message=f"the returned state is not JSON-serialisable: {exc}",
                ),
            )
        rest = {k: v for k, v in value.items() if k != "state"}
        return AttemptResult(
            RunStatus.SUCCEEDED,
            result=summary(rest) if rest else None,
            state_changed=True,
            new_state=new_state,
            result_json=json_result(rest) if rest else None,
        )
    return AttemptResult(RunStatus.SUCCEEDED, result=summary(value), result_json=json_result(value))


def _has_parameter(func: Callable[..., Any], name: str) -> bool:
    """True when ``func`` declares a parameter called ``name`` (``**kwargs`` does not count)."""
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    param = parameters.get(name)
    return param is not None and param.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _accepted_kwargs(func: Callable[..., Any], available: Mapping[str, Any]) -> dict[str, Any]:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return dict(available)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(available)
    return {k: v for k, v in available.items() if _has_parameter(func, k)}


def run_hook(
    target: str,
    *,
    event: str,
    process: str,
    run_id: str,
    attempt: int,
    status: RunStatus,
    error: ErrorInfo | None = None,
    cwd: str | None = None,
) -> bool:
    """Call a lifecycle hook; return False (after logging) if it could not be imported or raised.

    The hook gets those of ``event``, ``process``, ``run_id``, ``attempt``, ``status`` and
    ``error`` it declares as parameters (all of them if it takes ``**kwargs``).
    """
    available: dict[str, Any] = {
        "event": event,
        "process": process,
        "run_id": run_id,
        "attempt": attempt,
        "status": status,
        "error": error,
    }
    try:
        hook = import_target(target, cwd=cwd)
        hook(**_accepted_kwargs(hook, available))
    except (Exception, SystemExit):
        log.exception("%s hook %r failed for run %r attempt %d", event, target, run_id, attempt)
        return False
    return True
