"""Running ``command:`` jobs on the worker: a subprocess in its own session and process group.

stdout/stderr are drained by reader threads into bounded tails and into the attempt's log. A
command's result (``ctx.ancestors`` of its descendants, ``history``'s ``result``) is the last line
of its stdout: the JSON value when that line is JSON (``print(json.dumps(...))``, ``echo 42``),
else the line as text; none when it printed nothing (``result_of``). On
exit, timeout, cancel or failure the attempt's processes — its group and every descendant
carrying its marker, see ``planner.live.worker.guardian`` — are terminated (SIGTERM, then SIGKILL
after a grace period), so a command's children do not outlive the attempt; the worker's guardian
does the same if the worker process dies first. See ``planner.live.worker.execute`` for the
whole contract.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from planner.live.worker.attempts import Attempt
from planner.live.worker.guardian import MARKER_VAR, kill_attempt
from planner.live.worker.logs import AttemptLog
from planner.live.worker.outcome import (
    RESULT_MAX_CHARS,
    AttemptResult,
    JobSpec,
    error_from_exception,
    json_result,
    tail_lines,
)
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

#: the environment variable naming the JSON file of the ancestors' results (``ctx.ancestors``)
ANCESTORS_VAR = "PLANNER_ANCESTORS_FILE"
OUTPUT_TAIL_BYTES = 64 * 1024  # bytes of stdout and of stderr kept per command
_READER_JOIN_S = 5.0  # how long to wait for output readers once the process group is gone


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


def _drain(stream: IO[bytes], tail: _Tail, log: AttemptLog | None) -> None:
    fd = stream.fileno()
    try:
        while chunk := os.read(fd, 65536):
            tail.write(chunk)
            if log is not None:  # the attempt's log: both streams, in the order they came
                log.write(chunk)
    except OSError:
        pass
    finally:
        stream.close()


def execute_command(
    spec: JobSpec, attempt: Attempt, log: AttemptLog | None = None
) -> AttemptResult:
    env = command_environment(spec)
    env[MARKER_VAR] = attempt.marker  # inherited by descendants, even in sessions of their own
    with _ancestors_file(spec) as path:
        if path is not None:
            env[ANCESTORS_VAR] = path
        return _run(spec, attempt, log, env)


@contextmanager
def _ancestors_file(spec: JobSpec) -> Iterator[str | None]:
    """The ancestors' results as a JSON file for the command (removed when it ends)."""
    if not spec.ancestors:
        yield None
        return
    handle, path = tempfile.mkstemp(prefix=f"planner-{spec.run_id}-", suffix=".ancestors.json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(spec.ancestors, out)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _run(
    spec: JobSpec, attempt: Attempt, log: AttemptLog | None, env: dict[str, str]
) -> AttemptResult:
    command = spec.command
    shell = isinstance(command, str)
    args: str | list[str] = command if isinstance(command, str) else list(command or ())
    since = time.time()
    try:
        proc = subprocess.Popen(
            args,
            shell=shell,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # own process group: a timeout kills the whole tree
        )
    except OSError as exc:  # missing executable, bad cwd
        return AttemptResult(RunStatus.FAILED, error=error_from_exception(exc))
    attempt.attach(proc.pid, since)  # the guardian knows it now; a cancel that came first kills it

    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Tail(), _Tail()
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out, log), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err, log), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    # On timeout this kills the command; after a normal exit or a cancel, the stragglers it left
    # behind (which would also keep our pipes open).
    kill_attempt(proc.pid, attempt.marker, spec.kill_grace_s, since)
    if proc.poll() is None:  # cannot happen (a session leader stays in its group); to be sure
        proc.kill()
    code = proc.wait()
    for reader in readers:
        reader.join(_READER_JOIN_S)

    stdout, stderr = out.text(), err.text()
    value, result = result_of(stdout)
    if attempt.cancel_reason is not None:
        return AttemptResult(
            RunStatus.CANCELLED,
            error=ErrorInfo(
                type="Cancelled",
                message=f"{attempt.cancel_reason}; the command's processes were killed",
                traceback=tail_lines(stderr),
            ),
            result=result,
            result_json=value,
        )
    if timed_out:
        return AttemptResult(
            RunStatus.TIMED_OUT,
            error=ErrorInfo(
                type="Timeout",
                message=f"command did not finish within {spec.timeout_s:g}s; "
                "its process group was killed",
                traceback=tail_lines(stderr),
            ),
            result=result,
            result_json=value,
        )
    if code != 0:
        if code < 0:
            message = f"command was killed by signal {_signal_name(-code)} (exit code {code})"
        else:
            message = f"command exited with code {code}"
        return AttemptResult(
            RunStatus.FAILED,
            error=ErrorInfo(type="CommandFailed", message=message, traceback=tail_lines(stderr)),
            result=result,
            result_json=value,
        )
    return AttemptResult(RunStatus.SUCCEEDED, result=result, result_json=value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def result_of(stdout: str) -> tuple[Any, str | None]:
    """A command's result from its stdout's tail: (the JSON value of its last line, else that
    line as text; ``None`` when it printed nothing or the value passes ``RESULT_JSON_MAX_CHARS``)
    and, beside a result, the short summary the attempt keeps (the tail's end)."""
    lines = stdout.strip().splitlines()
    if not lines:
        return None, None
    line = lines[-1].strip()
    try:  # NaN and Infinity are not JSON: such a line is text
        value = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python parses
        value = line
    value = json_result(value)
    return (None, None) if value is None else (value, _clip_tail(stdout))


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
