"""An attempt's log on the worker: bounded while it is written, and published while it runs.

``AttemptLog`` keeps the last ``max_bytes`` written to it (UTF-8), however much is written: a
job that prints 50 GB costs its worker 1 MiB (the default). Its ``text()`` is what is stored in
``attempts.log``: the kept bytes, after one line saying how many earlier bytes were dropped.

The size comes from the planner, in the ``JobSpec`` (``log_max_bytes``), so one setting holds for
in-process and remote workers alike: the Dask config key ``planner.log-max-bytes`` of the planner
process (``DASK_PLANNER__LOG_MAX_BYTES=4MiB`` in its environment, or ``planner: {log-max-bytes:
4MiB}`` in a Dask YAML file), a number of bytes or a size as Dask writes them.

Following a running attempt: ``publishing(log, sink)`` hands, about once a second
(``PUBLISH_INTERVAL_S``), the bytes written since the last time — at most ``CHUNK_MAX_BYTES``
of them, with the count of those skipped — to ``sink``, on one thread per worker process (the
planner's ``run_attempt`` makes ``sink`` a Dask worker event, see ``planner.live.dispatch``).
A quiet attempt publishes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "CHUNK_MAX_BYTES",
    "DEFAULT_LOG_MAX_BYTES",
    "LOG_MAX_BYTES_KEY",
    "PUBLISH_INTERVAL_S",
    "AttemptLog",
    "Tail",
    "configured_log_max_bytes",
    "log_text",
    "publishing",
]

log = logging.getLogger(__name__)

DEFAULT_LOG_MAX_BYTES = 1024 * 1024  # the last 1 MiB of each attempt's log is kept
LOG_MAX_BYTES_KEY = "planner.log-max-bytes"  # Dask config key of the planner process
PUBLISH_INTERVAL_S = 1.0  # how often a running attempt's new log bytes are published
CHUNK_MAX_BYTES = 64 * 1024  # most bytes one publication carries (the rest: skipped, counted)

#: a sink gets the bytes written since its last call, and how many before them it did not get
Sink = Callable[[bytes, int], None]


def configured_log_max_bytes() -> int:
    """``planner.log-max-bytes`` from Dask's config (bytes, or a size such as ``"4 MiB"``)."""
    import dask.config
    from dask.utils import parse_bytes

    value = dask.config.get(LOG_MAX_BYTES_KEY, DEFAULT_LOG_MAX_BYTES)
    try:
        size = parse_bytes(value) if isinstance(value, str) else int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{LOG_MAX_BYTES_KEY} = {value!r} is not a size in bytes") from exc
    if size < 0:
        raise ValueError(f"{LOG_MAX_BYTES_KEY} = {value!r} is negative")
    return size


class Tail:
    """The last ``limit`` bytes written to it, and how many were written in all (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0  # bytes written (and skipped) since it was made
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()  # the writers: a job's thread, a command's readers

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self.total += len(data)
            if self.limit <= 0:
                return
            if len(data) >= self.limit:
                self._chunks.clear()
                data, self._size = data[-self.limit :], 0
            self._chunks.append(data)
            self._size += len(data)
            while self._size - len(self._chunks[0]) >= self.limit:
                self._size -= len(self._chunks.popleft())

    def skip(self, count: int, marker: bytes = b"") -> None:
        """``count`` bytes were written that this tail never saw: ``marker`` stands for them."""
        with self._lock:
            self.total += count
        self.write(marker)
        with self._lock:
            self.total -= len(marker)

    def data(self) -> bytes:
        """The kept bytes: the last ``limit`` written."""
        with self._lock:
            return self._suffix(self.limit)

    def since(self, offset: int, most: int) -> tuple[int, int, bytes]:
        """What was written after the first ``offset`` bytes: ``(total, skipped, data)``, where
        ``data`` is at most the last ``most`` of them and ``skipped`` counts the others."""
        with self._lock:
            new = self.total - offset
            if new <= 0:
                return self.total, 0, b""
            data = self._suffix(min(new, most, self.limit))
            return self.total, new - len(data), data

    def _suffix(self, count: int) -> bytes:
        """The last ``count`` kept bytes (the lock is held)."""
        if count <= 0:
            return b""
        parts: list[bytes] = []
        size = 0
        for chunk in reversed(self._chunks):
            parts.append(chunk)
            size += len(chunk)
            if size >= count:
                break
        return b"".join(reversed(parts))[-count:]


def log_text(data: bytes, dropped: int) -> str:
    """The stored form of a log: ``data`` decoded, after a line saying how many bytes before it
    were dropped (if any; a character the cut split is dropped too)."""
    if not dropped:
        return data.decode("utf-8", errors="replace")
    cut = 0
    while cut < min(3, len(data)) and data[cut] & 0xC0 == 0x80:  # UTF-8 continuation bytes
        cut += 1
    head = f"[… {dropped + cut} earlier bytes of this log were not kept …]\n"
    return head + data[cut:].decode("utf-8", errors="replace")


class AttemptLog(Tail):
    """The log of one attempt: what its job logged and wrote, the last ``max_bytes`` of it."""

    def write_text(self, text: str) -> None:
        self.write(text.encode("utf-8", errors="replace"))

    def text(self) -> str:
        with self._lock:
            data, total = self._suffix(self.limit), self.total
        return log_text(data, total - len(data))


# -- publishing while it runs ---------------------------------------------------------------------


class _Publisher:
    """One thread per worker process: every ``PUBLISH_INTERVAL_S``, each registered log's new
    bytes go to its sink. It waits without waking while no attempt publishes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[
            int, tuple[AttemptLog, Sink, list[int]]
        ] = {}  # id -> (log, sink, [sent])
        self._work = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, attempt_log: AttemptLog, sink: Sink) -> None:
        with self._lock:
            self._entries[id(attempt_log)] = (attempt_log, sink, [0])
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="planner-log-publisher", daemon=True
                )
                self._thread.start()
        self._work.set()

    def remove(self, attempt_log: AttemptLog) -> None:
        with self._lock:
            self._entries.pop(id(attempt_log), None)
            if not self._entries:
                self._work.clear()

    def _run(self) -> None:
        stop = threading.Event()  # never set: a timer, not synchronisation
        while True:
            self._work.wait()
            stop.wait(PUBLISH_INTERVAL_S)
            with self._lock:
                entries = list(self._entries.values())
            for attempt_log, sink, sent in entries:
                total, skipped, data = attempt_log.since(sent[0], CHUNK_MAX_BYTES)
                if total == sent[0]:
                    continue
                sent[0] = total
                try:
                    sink(data, skipped)
                except Exception:  # a closing worker: following is best effort, the log is not
                    log.debug("could not publish an attempt's log", exc_info=True)


_publisher = _Publisher()


@contextmanager
def publishing(attempt_log: AttemptLog, sink: Sink | None) -> Iterator[None]:
    """Publish ``attempt_log``'s new bytes to ``sink`` about once a second during the block."""
    if sink is None:
        yield
        return
    _publisher.add(attempt_log, sink)
    try:
        yield
    finally:
        _publisher.remove(attempt_log)
