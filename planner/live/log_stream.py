"""An attempt's log while it runs: streamed from the worker, written to the store as it comes.

The whole log travels with the attempt's outcome when it ends (``planner.live.worker.logs``);
this module is for ``planner logs --follow`` and the page while it still runs:

- on the worker, ``logs.publishing(log, sink)`` hands what was written to the attempt's log
  since the last time to ``sink`` about once a second (at most ``logs.CHUNK_MAX_BYTES``), and
  ``send_chunk`` logs it under ``LOG_TOPIC`` on the Dask worker — a topic of its own, so the
  scheduler's event log (``distributed.admin.low-level-log-length`` events per topic) bounds it
  apart from the planner's other events;
- in the planner, ``LogChunk``s arrive through the dispatcher's inbox; ``PartialLogs`` keeps the
  last ``limit`` characters of each attempt in flight, and the loop writes those that grew to
  the store when it polls, at most every ``WRITE_INTERVAL_S`` (one statement per attempt that
  changed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from planner.live.worker.logs import DEFAULT_LOG_MAX_BYTES

__all__ = [
    "LOG_TOPIC",
    "LogChunk",
    "PartialLogs",
    "chunk_from_event",
    "send_chunk",
]

LOG_TOPIC = "dask-planner-logs"
WRITE_INTERVAL_S = 1.0
LARGE_LOG = 64 * 1024
LARGE_WRITE_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class LogChunk:
    run_id: str
    attempt: int
    text: str


def send_chunk(worker: Any, run_id: str, attempt: int, data: bytes, skipped: int) -> None:
    """A ``logs.Sink``: what an attempt's log gained, as an event of ``LOG_TOPIC``."""
    text = data.decode("utf-8", errors="replace")
    if skipped:
        text = f"[… {skipped} bytes not streamed …]\n{text}"
    worker.log_event(LOG_TOPIC, {"run_id": run_id, "attempt": attempt, "text": text})


def chunk_from_event(event: tuple[float, Any]) -> LogChunk | None:
    msg = event[1]
    if not isinstance(msg, dict) or not isinstance(msg.get("text"), str):
        return None
    return LogChunk(
        run_id=str(msg.get("run_id")), attempt=int(msg.get("attempt", 0)), text=msg["text"]
    )


class PartialLogs:
    """The logs of attempts in flight, as far as they came; written to the store now and then."""

    def __init__(self, limit: int = DEFAULT_LOG_MAX_BYTES) -> None:
        self.limit = limit
        self._logs: dict[tuple[str, int], str] = {}
        self._changed: set[tuple[str, int]] = set()
        self._next_write = 0.0
        self._written: dict[tuple[str, int], float] = {}  # when each was last written

    def add(self, chunk: LogChunk) -> None:
        key = (chunk.run_id, chunk.attempt)
        self._logs[key] = (self._logs.get(key, "") + chunk.text)[-self.limit :]
        self._changed.add(key)

    def ended(self, run_id: str, attempt: int) -> None:
        """The attempt ended: its whole log comes with its outcome."""
        self._logs.pop((run_id, attempt), None)
        self._changed.discard((run_id, attempt))
        self._written.pop((run_id, attempt), None)

    def due(self) -> dict[tuple[str, int], str]:
        """The logs that grew, if it is time to write them (then they count as written). A
        log is rewritten whole, so one past ``LARGE_LOG`` characters is written at most every
        ``LARGE_WRITE_INTERVAL_S``: a chatty job does not rewrite a megabyte every second."""
        now = time.monotonic()
        if not self._changed or now < self._next_write:
            return {}
        self._next_write = now + WRITE_INTERVAL_S
        grown = {}
        for key in list(self._changed):
            text = self._logs.get(key)
            if text is None:
                self._changed.discard(key)
                continue
            if len(text) > LARGE_LOG and now - self._written.get(key, 0.0) < LARGE_WRITE_INTERVAL_S:
                continue  # later, with what it gains meanwhile
            grown[key] = text
            self._written[key] = now
            self._changed.discard(key)
        return grown
