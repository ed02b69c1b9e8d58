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

import contextlib
import importlib
import inspect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import psutil

from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

if TYPE_CHECKING:
    from registry.model import ProcessDef

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

log = logging.getLogger(__name__)

RESULT_MAX_CHARS = 500  # JobOutcome.result is cut to this length
TRACEBACK_LINES = 20  # lines of traceback / stderr kept in ErrorInfo.traceback
OUTPUT_TAIL_BYTES = 64 * 1024  # bytes of stdout and of stderr kept per command
_READER_JOIN_S = 5.0  # how long to wait for output readers once the process group is gone


@dataclass(frozen=True, slots=True, kw_only=True)
class JobHooks:
    """Lifecycle hook targets (``module:callable``) of a process."""

    on_success: str | None = None
    on_failure: str | None = None
    on_cancel: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """Everything the worker needs for one attempt; built by the planner, pickled to the worker."""

    process: str
    run_id: str
    attempt: int  # 1-based
    scheduled: datetime  # aware
    run: str | None = None  # "module:callable"
    command: Sequence[str] | str | None = None  # argv, or a shell command line
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    state: Any = None  # the process's saved JSON state
    hooks: JobHooks = field(default_factory=JobHooks)
    #: no retry follows this attempt if it fails (the planner knows the retries left)
    final_attempt: bool = True
    #: working directory of commands and import root of callables; default: the planner's cwd
    cwd: str | None = field(default_factory=os.getcwd)
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for commands
    kill_grace_s: float = 3.0  # SIGTERM → SIGKILL delay for commands

    def __post_init__(self) -> None:
        if (self.run is None) == (self.command is None):
            raise ValueError(f"job {self.run_id!r}: give exactly one of run or command")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"job {self.run_id!r}: timeout_s must be positive")
        # plain containers, whatever the caller passed (mappingproxy does not pickle)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "env", dict(self.env))
        if self.command is not None and not isinstance(self.command, str):
            object.__setattr__(self, "command", tuple(self.command))

    @classmethod
    def for_process(
        cls,
        process: ProcessDef,
        *,
        run_id: str,
        attempt: int,
        scheduled: datetime,
        state: Any = None,
        params: Mapping[str, Any] | None = None,
        final_attempt: bool = True,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> JobSpec:
        """The spec of an attempt of ``process``; ``params`` (e.g. a trigger's) override its own."""
        return cls(
            process=process.name,
            run_id=run_id,
            attempt=attempt,
            scheduled=scheduled,
            run=process.run,
            command=process.command,
            params={**process.params, **(params or {})},
            timeout_s=process.timeout.total_seconds() if process.timeout else None,
            state=state,
            hooks=JobHooks(
                on_success=process.on_success,
                on_failure=process.on_failure,
                on_cancel=process.on_cancel,
            ),
            final_attempt=final_attempt,
            cwd=cwd if cwd is not None else os.getcwd(),
            env=dict(env or {}),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """Passed as ``ctx=`` to callables that have a parameter named ``ctx``."""

    run_id: str
    attempt: int
    scheduled: datetime
    process: str
    state: Any
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """How an attempt ended, as measured on the worker."""

    status: RunStatus  # succeeded | failed | timed_out
    start: datetime  # aware UTC
    end: datetime  # aware UTC; before hooks ran
    worker: str  # Dask worker address, else "hostname:pid"
    error: ErrorInfo | None = None
    result: str | None = None  # ≤ RESULT_MAX_CHARS summary of return value / stdout tail
    #: when ``state_changed``, ``new_state`` replaces the process's saved state
    state_changed: bool = False
    new_state: Any = None

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class _Result:
    status: RunStatus
    error: ErrorInfo | None = None
    result: str | None = None
    state_changed: bool = False
    new_state: Any = None


def execute(spec: JobSpec) -> JobOutcome:
    """Run one attempt and report how it went. Never raises for a failure of the job itself."""
    start = _now()
    worker = worker_address()
    res = _execute_callable(spec, spec.run) if spec.run is not None else _execute_command(spec)
    outcome = JobOutcome(
        status=res.status,
        start=start,
        end=_now(),
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


# --- callables ---------------------------------------------------------------------------------

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


def _execute_callable(spec: JobSpec, target: str) -> _Result:
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
        return _Result(RunStatus.FAILED, error=_error_from_exception(exc))

    if spec.timeout_s is None:
        try:
            value = func(**kwargs)
        except (Exception, SystemExit) as exc:
            return _Result(RunStatus.FAILED, error=_error_from_exception(exc))
        return _success(value)

    box: dict[str, Any] = {}
    done = threading.Event()

    def call() -> None:
        try:
            box["value"] = func(**kwargs)
        except (Exception, SystemExit) as exc:
            box["error"] = _error_from_exception(exc)
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
        return _Result(
            RunStatus.TIMED_OUT,
            error=ErrorInfo(
                type="Timeout",
                message=f"{target} did not finish within {spec.timeout_s:g}s "
                "(its thread cannot be killed and was abandoned)",
                traceback=_tail_lines(stack),
            ),
        )
    if "error" in box:
        return _Result(RunStatus.FAILED, error=box["error"])
    return _success(box.get("value"))


def _success(value: Any) -> _Result:
    if isinstance(value, Mapping) and "state" in value:
        new_state = value["state"]
        try:
            json.dumps(new_state)
        except (TypeError, ValueError) as exc:
            return _Result(
                RunStatus.FAILED,
                error=ErrorInfo(
                    type="InvalidState",
                    message=f"the returned state is not JSON-serialisable: {exc}",
                ),
            )
        rest = {k: v for k, v in value.items() if k != "state"}
        return _Result(
            RunStatus.SUCCEEDED,
            result=_summary(rest) if rest else None,
            state_changed=True,
            new_state=new_state,
        )
    return _Result(RunStatus.SUCCEEDED, result=_summary(value))


def _summary(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else _safe_repr(value)
    return _clip(text)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not turn a success into a crash
        return f"<{type(value).__name__} (repr failed: {exc})>"


def _clip(text: str, limit: int = RESULT_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_from_exception(exc: BaseException) -> ErrorInfo:
    tb = "".join(traceback.format_exception(exc))
    return ErrorInfo(type=type(exc).__name__, message=str(exc), traceback=_tail_lines(tb))


def _tail_lines(text: str, lines: int = TRACEBACK_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


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


# --- hooks -------------------------------------------------------------------------------------


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


# --- commands ----------------------------------------------------------------------------------


def command_environment(spec: JobSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a command of ``spec`` runs with (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    env.update(spec.env)
    python_dir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if python_dir and path.split(os.pathsep)[0] != python_dir:
        env["PATH"] = python_dir + os.pathsep + path if path else python_dir
    env["PLANNER_RUN_ID"] = spec.run_id
    env["PLANNER_ATTEMPT"] = str(spec.attempt)
    env["PLANNER_PROCESS"] = spec.process
    env["PLANNER_SCHEDULED"] = spec.scheduled.isoformat()
    for key, value in spec.params.items():
        name = "PLANNER_PARAM_" + "".join(c if c.isalnum() else "_" for c in str(key)).upper()
        env[name] = value if isinstance(value, str) else json.dumps(value)
    return env


class _Tail:
    """The last ``limit`` bytes written to it."""

    def __init__(self, limit: int = OUTPUT_TAIL_BYTES) -> None:
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()  # a reader may still write if a process escaped the group

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._chunks.append(chunk)
            self._size += len(chunk)
            while self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._chunks)
        return data[-self._limit :].decode("utf-8", errors="replace")


def _drain(stream: IO[bytes], tail: _Tail) -> None:
    fd = stream.fileno()
    try:
        while chunk := os.read(fd, 65536):
            tail.write(chunk)
    except OSError:
        pass
    finally:
        stream.close()


def _execute_command(spec: JobSpec) -> _Result:
    command = spec.command
    shell = isinstance(command, str)
    args: str | list[str] = command if isinstance(command, str) else list(command or ())
    try:
        proc = subprocess.Popen(
            args,
            shell=shell,
            cwd=spec.cwd,
            env=command_environment(spec),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own process group: a timeout kills the whole tree
        )
    except OSError as exc:  # missing executable, bad cwd
        return _Result(RunStatus.FAILED, error=_error_from_exception(exc))

    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Tail(), _Tail()
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    # On timeout this kills the command; after a normal exit, the stragglers it left behind
    # (which would also keep our pipes open).
    _terminate_group(proc.pid, spec.kill_grace_s)
    if proc.poll() is None:  # the command left its own group (setsid); kill it directly
        proc.kill()
    code = proc.wait()
    for reader in readers:
        reader.join(_READER_JOIN_S)

    stdout, stderr = out.text(), err.text()
    result = _clip_tail(stdout)
    if timed_out:
        return _Result(
            RunStatus.TIMED_OUT,
            error=ErrorInfo(
                type="Timeout",
                message=f"command did not finish within {spec.timeout_s:g}s; "
                "its process group was killed",
                traceback=_tail_lines(stderr),
            ),
            result=result,
        )
    if code != 0:
        if code < 0:
            message = f"command was killed by signal {_signal_name(-code)} (exit code {code})"
        else:
            message = f"command exited with code {code}"
        return _Result(
            RunStatus.FAILED,
            error=ErrorInfo(type="CommandFailed", message=message, traceback=_tail_lines(stderr)),
            result=result,
        )
    return _Result(RunStatus.SUCCEEDED, result=result)


def _clip_tail(text: str, limit: int = RESULT_MAX_CHARS) -> str | None:
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def _alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.Error:
            continue
    return alive


def _terminate_group(pgid: int, grace_s: float) -> None:
    """SIGTERM every process of group ``pgid``; SIGKILL those still alive after ``grace_s``."""
    members = _group_members(pgid)
    if not members:
        return
    _killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (members := _alive(members)) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling a process's death; there is no portable wait for non-children
    if members:
        _killpg(pgid, signal.SIGKILL)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _now() -> datetime:
    return datetime.now(UTC)
