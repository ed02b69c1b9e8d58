"""Capturing what a job's thread logs and writes into its attempt's log.

A worker process runs many attempts at once, one per Dask task thread, so capture is scoped to a
thread: ``capturing(log)`` registers the calling thread for the block, and two things installed
once per process route by thread id:

- a *router* on ``sys.stdout`` and ``sys.stderr``: a write from a registered thread goes to that
  thread's log; every other write goes to the stream that was there before, as it did;
- a *handler* on the root logger: a record emitted on a registered thread is formatted
  (``2026-01-02T03:04:05.678Z INFO name: message``, times in UTC) into that thread's log. Other
  records are left to the process's own handlers; when they have none, Python's last-resort
  handler still prints warnings, as it would without ours. Where the root logger had no handler
  and a level above INFO (Python's default, WARNING), it is set to INFO, so a job's
  ``log.info(...)`` is captured; loggers with a level of their own keep it.

Limits: writes from threads a job starts itself, from C code or subprocesses writing to file
descriptors 1 and 2, and to ``sys.__stdout__`` are not captured (a command's output is: its
pipes are read into the log, see ``planner.live.worker.commands``). With our handler on the root
logger, a later ``logging.basicConfig()`` in that process does nothing unless given ``force``.
If something replaces ``sys.stdout`` meanwhile (a test runner's capture), the next attempt
installs the router again on top of it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from planner.live.worker.logs import AttemptLog

__all__ = ["capturing"]

_install_lock = threading.Lock()
_logs: dict[int, AttemptLog] = {}  # thread ident -> the log its writes and records go to

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``: a registered thread's writes go to its log."""

    def __init__(self, original: TextIO | None) -> None:
        self._original = original

    def write(self, text: str) -> int:
        attempt_log = _logs.get(threading.get_ident())
        if attempt_log is not None:
            attempt_log.write_text(text)
            return len(text)
        if self._original is None:  # no stream at all (pythonw): nothing to pass it to
            return len(text)
        return self._original.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._original is not None and threading.get_ident() not in _logs:
            self._original.flush()

    def isatty(self) -> bool:
        if threading.get_ident() in _logs or self._original is None:
            return False
        return self._original.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer, …: the original's
        return getattr(self._original, name)


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class _Handler(logging.Handler):
    """On the root logger: records of a registered thread go to its log."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(_Formatter(LOG_FORMAT))

    def handle(self, record: logging.LogRecord) -> bool:
        attempt_log = _logs.get(record.thread) if record.thread is not None else None
        if attempt_log is None:
            self._as_without_us(record)
            return False
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return False
        attempt_log.write_text(text + "\n")
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does it
        self.handle(record)

    def _as_without_us(self, record: logging.LogRecord) -> None:
        """A record of another thread: what Python does when no handler takes it, if none does."""
        last_resort = logging.lastResort
        if last_resort is None or record.levelno < last_resort.level:
            return
        logger: Any = logging.Logger.manager.loggerDict.get(record.name)
        if not isinstance(logger, logging.Logger):
            logger = logging.getLogger()
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return
            if not logger.propagate:
                break
            logger = logger.parent
        last_resort.handle(record)


_handler = _Handler()


def _install() -> None:
    """Put the routers on ``sys.stdout``/``sys.stderr`` and the handler on the root logger, if
    they are not there (any more)."""
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)
        root = logging.getLogger()
        if _handler not in root.handlers:
            if not root.handlers and root.level > logging.INFO:
                root.setLevel(logging.INFO)
            root.addHandler(_handler)


@contextmanager
def capturing(attempt_log: AttemptLog) -> Iterator[None]:
    """Route the calling thread's logging records, stdout and stderr into ``attempt_log``."""
    _install()
    ident = threading.get_ident()
    previous = _logs.get(ident)
    _logs[ident] = attempt_log
    try:
        yield
    finally:
        if previous is None:
            _logs.pop(ident, None)
        else:
            _logs[ident] = previous
