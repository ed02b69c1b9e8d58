"""Finding and killing an attempt's processes, and the guardian that does it when a worker dies.

An attempt's processes
----------------------
A command is started as the leader of a session and process group of its own. Its processes are
that group, plus every process whose environment holds ``PLANNER_ATTEMPT_KEY=<marker>`` (a value
unique to the attempt, which descendants inherit), so that a grandchild that started a session of
its own (``setsid``, a daemonising server) is found too. ``kill_attempt`` sends SIGTERM to all of
them, SIGKILL to those still alive after a grace period, and looks again until none is left.

Limits (no cgroups): a descendant exec'd with a cleared or replaced environment (``env -i``) that
also left the process group escapes, and so does one running as another user (its environment
cannot be read).

The guardian
------------
A command must not outlive the worker process that started it: its attempt is over then (the
planner retries it, so an orphan would run the work twice). The kernel does not see to that,
because the command is in a session of its own — and a worker process can end at any time: it
``os._exit``s as soon as the planner that owns an in-process ``LocalCluster`` dies (distributed's
parent-alive pipe), and a nanny kills and restarts it. So each worker process starts, on its first
command, a guardian: this file run as a script (``python -I guardian.py``; it imports only the
standard library and psutil, never the planner package), in a session of its own so that a signal
to the worker's process group spares it. The worker tells it over its stdin which attempts run
(``track MARKER PGID GRACE SINCE`` / ``untrack MARKER``); when that pipe reaches end-of-file —
the worker process ended, however it ended — the guardian kills every attempt still tracked and
exits. A remote cluster's worker outlives its planner, and so does its work.

Watching the worker covers the planner: a planner's in-process workers end when it does (with
``--local-threads`` the worker *is* the planner process). ``PR_SET_PDEATHSIG`` is not used: it
needs a ``preexec_fn``, which is unsafe in a multi-threaded Dask worker and reaches only the
command's first process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

import psutil

MARKER_VAR = "PLANNER_ATTEMPT_KEY"
_POLL_S = 0.02  # polling a process's death: there is no portable wait for non-children
_SINCE_MARGIN_S = 2.0  # psutil's create_time is derived from boot time and clock ticks


def attempt_processes(pgid: int | None, marker: str, since: float = 0.0) -> list[psutil.Process]:
    """Live processes of group ``pgid`` or whose environment holds ``marker``.

    Only processes created after ``since`` (epoch seconds; the attempt's start) have their
    environment read, which keeps the scan cheap on a busy host.
    """
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():  # psutil caches each process's create_time: cheap
        try:
            if proc.pid == me:
                continue
            in_group = pgid is not None and os.getpgid(proc.pid) == pgid
            if not in_group:
                created = proc.create_time()
                if created < since - _SINCE_MARGIN_S or proc.environ().get(MARKER_VAR) != marker:
                    continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def kill_attempt(pgid: int | None, marker: str, grace_s: float, since: float = 0.0) -> None:
    """SIGTERM the attempt's processes; SIGKILL those left after ``grace_s``, until none is left."""
    procs = attempt_processes(pgid, marker, since)
    if not procs:
        return
    _signal(pgid, procs, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (procs := _alive(procs)) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    for _ in range(10):  # a process may fork while we kill: look again
        procs = attempt_processes(pgid, marker, since)
        if not procs:
            return
        _signal(pgid, procs, signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        while (procs := _alive(procs)) and time.monotonic() < deadline:
            time.sleep(_POLL_S)


def _signal(pgid: int | None, procs: Iterable[psutil.Process], sig: signal.Signals) -> None:
    if pgid is not None:  # the group as a whole too: it catches a member forked since the scan
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def _alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.Error:
            continue
    return alive


# -- the worker's side ---------------------------------------------------------------------------


class Guardian:
    """A worker process's handle on its guardian, started on first use (and again if it died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._tracked: dict[str, str] = {}  # marker -> its track line, replayed to a new guardian

    def track(self, marker: str, pgid: int, grace_s: float, since: float) -> None:
        line = f"track {marker} {pgid} {grace_s:g} {since:.3f}\n"
        with self._lock:
            self._tracked[marker] = line
            self._send(line)

    def untrack(self, marker: str) -> None:
        with self._lock:
            if self._tracked.pop(marker, None) is not None:
                self._send(f"untrack {marker}\n")

    def _send(self, line: str) -> None:
        for _ in range(2):
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
                replay = [t for t in self._tracked.values() if t != line]
            else:
                replay = []
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write("".join([*replay, line]).encode())
                self._proc.stdin.flush()
                return
            except OSError:  # it died between poll and write: start another
                self._proc = None

    @staticmethod
    def _start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # spared by a signal to the worker's group
        )


# -- the guardian process ------------------------------------------------------------------------


def main() -> None:
    """Read ``track``/``untrack`` lines until end-of-file, then kill what is still tracked."""
    tracked: dict[str, tuple[int, float, float]] = {}
    fd = sys.stdin.fileno()
    pending = b""
    while chunk := os.read(fd, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            match line.decode().split():
                case ["track", marker, pgid, grace, since]:
                    tracked[marker] = (int(pgid), float(grace), float(since))
                case ["untrack", marker]:
                    tracked.pop(marker, None)
    # the worker process is gone: so is every attempt it ran
    killers = [
        threading.Thread(target=kill_attempt, args=(pgid, marker, grace, since))
        for marker, (pgid, grace, since) in tracked.items()
    ]
    for killer in killers:
        killer.start()
    for killer in killers:
        killer.join()


if __name__ == "__main__":
    main()
