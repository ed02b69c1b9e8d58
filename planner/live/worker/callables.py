"""Running ``run: "module:callable"`` jobs and lifecycle hooks on the worker.

A callable is imported (``spec.cwd`` joins ``sys.path``), called with ``params`` as keyword
arguments plus ``ctx`` when it takes one, and, with a timeout, run in a helper thread that
``execute`` stops waiting for (Python threads cannot be killed). See ``planner.live.worker.execute``
for the whole contract.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from planner.live.worker.outcome import (
    AttemptResult,
    JobContext,
    JobSpec,
    error_from_exception,
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


def execute_callable(spec: JobSpec, target: str) -> AttemptResult:
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
            )
    except Exception as exc:
        return AttemptResult(RunStatus.FAILED, error=error_from_exception(exc))

    if spec.timeout_s is None:
        try:
            value = func(**kwargs)
        except (Exception, SystemExit) as exc:
            return AttemptResult(RunStatus.FAILED, error=error_from_exception(exc))
        return _success(value)

    box: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            box["value"] = func(**kwargs)
        except (Exception, SystemExit) as exc:
            box["error"] = error_from_exception(exc)
        finally:
            done.set()

    thread = threading.Thread(
        target=call, name=f"planner-job-{spec.run_id}-{spec.attempt}", daemon=True
    )
    thread.start()
    if not done.wait(spec.timeout_s):
        log.warning(
            "run %r attempt %d: %r still running after its %gs timeout; its thread is abandoned",
            spec.run_id,
            spec.attempt,
            target,
            spec.timeout_s,
        )
        frame = sys._current_frames().get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        return AttemptResult(
            RunStatus.TIMED_OUT,
            error=ErrorInfo(
                type="Timeout",
                message=f"{target} did not finish within {spec.timeout_s:g}s "
                "(its thread cannot be killed and was abandoned)",
                traceback=tail_lines(stack),
            ),
        )
    if "error" in box:
        return AttemptResult(RunStatus.FAILED, error=box["error"])
    return _success(box.get("value"))


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
        )
    return AttemptResult(RunStatus.SUCCEEDED, result=summary(value))


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
