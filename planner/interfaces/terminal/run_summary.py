"""What ``planner run`` prints when it stops: the attempts it saw end, as ``history`` has them.

A ``RunReport`` is built by the command from the driver's ``Summary`` (which attempts this planner
started and saw end) and the store's records of those attempts, so the durations, statuses and
errors here are the ones ``planner history`` shows — a cancelled attempt's real duration, not the
instant the planner gave up on it. Counts add up: the attempts that ended are the ones this planner
started plus the ones it took over from an earlier planner (re-attached, or lost with its cluster:
``RunLost``), and those it started that had not ended are said to be left running. Every failed
or timed-out attempt is listed with its error. A large run (past ``ATTEMPTS_LISTED`` attempts) has
a row per process — a template's processes together — and status, failures first, at most
``ROWS_LISTED`` rows; the rest are counted by status with their first processes, and ``planner
history`` lists every attempt: 10,000 processes are a screen, not 10,000 rows.

Pure rendering: ``run_summary_view(report)`` in, a rich renderable out. The lines are built one
concern per function (``_counts_line``, ``_failure_lines``…), each over ``report.attempts``, so
that the summary grouped by process and status of a large run replaces the table alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text

from planner.interfaces.terminal.fit import Col, FitTable
from planner.interfaces.terminal.style import FAILED, plural, seconds_text, status_text
from registry.errors import name_list
from registry.records import ErrorInfo

__all__ = ["FinishedAttempt", "RunReport", "run_summary_view"]

#: an error message is cut past this many characters in the summary (``planner history`` has it)
MESSAGE_SHOWN = 300
#: past this many attempts the summary has a row per process and status, not per attempt
ATTEMPTS_LISTED = 20
#: rows of that table (failures first) before the rest are counted by status
ROWS_LISTED = 20
#: failed attempts listed one by one (then counted)
FAILURES_LISTED = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishedAttempt:
    """An attempt that ended while this planner ran, as the store recorded it."""

    process: str
    run_id: str
    attempt: int
    status: str
    duration_s: float | None = None
    error: ErrorInfo | None = None
    #: started by an earlier planner; this one re-attached it or found it lost
    inherited: bool = False
    template: str | None = None  # the template the process is an item of


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    """What one ``planner run`` did."""

    attempts: tuple[FinishedAttempt, ...] = ()  # in the order they ended
    started: int = 0  # attempts this planner started
    ahead: int = 0  # of which chained: handed to Dask before their ancestor ended
    retries_cancelled: tuple[str, ...] = ()  # runs cancelled while waiting for a next attempt

    @property
    def inherited(self) -> int:
        return sum(a.inherited for a in self.attempts)

    @property
    def left_running(self) -> int:
        """Attempts this planner started that had not ended when it stopped."""
        return max(self.started - (len(self.attempts) - self.inherited), 0)

    @property
    def failed(self) -> list[FinishedAttempt]:
        return [a for a in self.attempts if a.status in FAILED]


def run_summary_view(report: RunReport, *, wide: bool = False) -> Group:
    lines: list[RenderableType] = []
    if len(report.attempts) > ATTEMPTS_LISTED:
        lines += _grouped_table(report.attempts, wide=wide)
    elif report.attempts:
        lines.append(_attempts_table(report.attempts, wide=wide))
    lines.append(Text(_counts_line(report)))
    if report.left_running:
        left = plural(report.left_running, "attempt")
        lines.append(Text(f"{left} still running, left to the next planner"))
    if report.retries_cancelled:
        runs = plural(len(report.retries_cancelled), "run")
        lines.append(
            Text(f"{runs} cancelled while waiting to retry: {', '.join(report.retries_cancelled)}")
        )
    lines += _failure_lines(report.failed)
    return Group(*lines)


def _grouped_table(attempts: Sequence[FinishedAttempt], *, wide: bool) -> list[RenderableType]:
    """A row per process (a template's processes together) and status: how many attempts,
    and their total and longest duration; failures first, at most ``ROWS_LISTED`` rows, the
    others counted by status with their first processes."""
    groups: dict[tuple[str, str], list[float]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for a in attempts:
        process = a.process
        if a.template is not None:
            process = f"{a.template}.*"
        key = (process, a.status)
        counts[key] += 1
        if a.duration_s is not None:
            groups.setdefault(key, []).append(a.duration_s)
    table = FitTable(
        [
            Col("process", keep=55),
            Col("status"),
            Col("attempts"),
            Col("longest", keep=60),
            Col("total", keep=40),
        ],
        title="finished attempts",
        wide=wide,
    )
    rows = sorted(counts.items(), key=lambda row: (row[0][1] not in FAILED, row[0]))
    for (process, status), n in rows[:ROWS_LISTED]:
        durations = groups.get((process, status), [])
        table.add_row(
            process,
            status_text(status),
            f"{n:,}",
            seconds_text(max(durations)) if durations else "",
            seconds_text(sum(durations)) if durations else "",
        )
    if len(rows) <= ROWS_LISTED:
        return [table, Text("(one row per process and status; `planner history` lists them all)")]
    rest = rows[ROWS_LISTED:]
    by_status: dict[str, list[str]] = {}
    tally: Counter[str] = Counter()
    for (process, status), n in rest:
        by_status.setdefault(status, []).append(process)
        tally[status] += n
    said = "; ".join(
        f"{tally[status]:,} {status} ({name_list(names)})" for status, names in by_status.items()
    )
    more = f"… and {len(rest):,} more rows: {said}; `planner history` lists every attempt"
    return [table, Text(more)]


def _attempts_table(attempts: Sequence[FinishedAttempt], *, wide: bool) -> FitTable:
    table = FitTable(
        [
            Col("process", keep=55),
            Col("run id"),
            Col("attempt", keep=30),
            Col("status"),
            Col("duration", keep=60),
        ],
        title="finished attempts",
        wide=wide,
    )
    for a in attempts:
        table.add_row(
            a.process, a.run_id, str(a.attempt), status_text(a.status), seconds_text(a.duration_s)
        )
    return table


def _counts_line(report: RunReport) -> str:
    """``3 attempts started (1 handed to Dask ahead), 1 taken over from an earlier planner;
    4 finished: 1 failed, 3 succeeded``."""
    text = f"{plural(report.started, 'attempt')} started"
    if report.ahead:
        text += f" ({report.ahead:,} handed to Dask ahead)"
    if report.inherited:
        text += f", {report.inherited:,} taken over from an earlier planner"
    if not report.attempts:
        return f"{text}; none finished"
    counts = Counter(a.status for a in report.attempts)
    tally = ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))
    return f"{text}; {len(report.attempts):,} finished: {tally}"


def _failure_lines(failed: Sequence[FinishedAttempt]) -> list[RenderableType]:
    """Each failed or timed-out attempt with its error (``RunLost`` included)."""
    if not failed:
        return []
    lines: list[RenderableType] = [
        Text(f"{plural(len(failed), 'attempt')} failed:", style="bold red")
    ]
    for a in failed[:FAILURES_LISTED]:
        why = f"{a.error.type}: {_message(a.error.message)}" if a.error else "no error recorded"
        earlier = " (started by an earlier planner)" if a.inherited else ""
        attempt = f"{a.process} {a.run_id} attempt {a.attempt} {a.status}"
        lines.append(Text(f"  {attempt}: {why}{earlier}"))
    if len(failed) > FAILURES_LISTED:
        more = len(failed) - FAILURES_LISTED
        lines.append(Text(f"  … and {more:,} more (`planner history --status failed`)"))
    return lines


def _message(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= MESSAGE_SHOWN else first[: MESSAGE_SHOWN - 1] + "…"
