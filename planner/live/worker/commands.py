"""Running ``command:`` jobs on the worker: a subprocess in its own process group.

stdout/stderr are drained by reader threads into bounded tails; on exit, timeout or failure the
whole group is terminated (SIGTERM, then SIGKILL after a grace period), so a command's children do
not outlive the attempt. See ``planner.live.worker.execute`` for the whole contract.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import IO

import psutil

from planner.live.worker.outcome import (
    RESULT_MAX_CHARS,
    AttemptResult,
    JobSpec,
    error_from_exception,
    tail_lines,
)
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo

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


def _drain(stream: IO[bytes], tail: _Tail) -> None:
    fd = stream.fileno()
    try:
        while chunk := os.read(fd, 65536):
            tail.write(chunk)
    except OSError:
        pass
    finally:
        stream.close()


def execute_command(spec: JobSpec) -> AttemptResult:
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
        return AttemptResult(RunStatus.FAILED, error=error_from_exception(exc))

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
        return AttemptResult(
            RunStatus.TIMED_OUT,
            error=ErrorInfo(
                type="Timeout",
                message=f"command did not finish within {spec.timeout_s:g}s; "
                "its process group was killed",
                traceback=tail_lines(stderr),
            ),
            result=result,
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
        )
    return AttemptResult(RunStatus.SUCCEEDED, result=result)


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
