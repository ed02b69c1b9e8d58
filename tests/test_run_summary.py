"""``planner run``'s summary agrees with ``planner history``, on a real in-process cluster.

The defects it once had, reproduced: a cancelled attempt the planner gave up waiting for read
``0s`` (history: its real duration); after a restart the counts did not add up (``2 attempts
started; 3 failed``: the attempts an earlier planner left were counted as ended, never as
begun) and the lost ones (``RunLost``) were listed without their reason.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from rich.console import Console

from planner.interfaces.cli.execution import run_report
from planner.interfaces.terminal import RunReport, run_summary_view
from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver, utcnow
from registry.definitions.loader import load_files
from registry.records import AttemptStart, NewRun, Turn
from registry.storage.sqlstore import SqlStore
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _store(tmp_path: Path, text: str) -> SqlStore:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    return store


def _text(report: RunReport) -> str:
    console = Console(width=80, record=True, color_system=None)
    console.print(run_summary_view(report))
    return " ".join(console.export_text().split())


def _agrees_with_history(report: RunReport, store: SqlStore) -> None:
    history = {(a.run_id, a.attempt): a for a in store.history()}
    for row in report.attempts:
        recorded = history[(row.run_id, row.attempt)]
        assert row.status == recorded.status.value
        assert row.duration_s == recorded.duration_s
        assert row.error == recorded.error


def test_a_cancelled_attempt_shows_its_real_duration(tmp_path: Path, client: Client) -> None:
    marker, release = tmp_path / "slow.started", tmp_path / "slow.release"
    store = _store(
        tmp_path,
        f"""
processes:
  slow:
    run: tests.live_jobs:linger
    params: {{marker: '{marker}', release: '{release}'}}
""",
    )
    began = utcnow()
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
    thread = threading.Thread(target=driver.run, daemon=True)
    thread.start()
    try:
        wait_for(marker.exists, what="the job to start")
        wait_for(lambda: any(a.start for a in store.history("slow")), what="its start recorded")
        driver.stop()
        thread.join(30)
        # the job does not honour the cancel: the planner gives up on it after the grace period
        driver.shutdown(cancel=True, grace=0.2)
    finally:
        release.write_text("go")
    [(_, _, _, status, seen)] = driver.summary.runs
    assert (status, seen) == ("cancelled", 0.0)  # what the summary used to print: 0s
    report = run_report(store, driver.summary, since=began)
    _agrees_with_history(report, store)
    [row] = report.attempts
    assert row.status == "cancelled" and row.duration_s is not None and row.duration_s > 0
    assert "1 attempt started; 1 finished: 1 cancelled" in _text(report)
    store.close()


def test_after_a_restart_the_counts_add_up_and_lost_attempts_say_why(
    tmp_path: Path, client: Client
) -> None:
    store = _store(
        tmp_path,
        """
processes:
  lost_job: {run: workflows.jobs.demo:noop, retries: 1, retry_delay: 0}
  broken_job: {run: workflows.jobs.demo:fail, retries: 0}
""",
    )
    # what a planner killed while lost_job-1 ran leaves behind (its cluster died with it)
    then = utcnow() - timedelta(seconds=30)
    store.record_turn(
        Turn(
            at=then,
            created=[NewRun(run_id="lost_job-1", process="lost_job", scheduled=then, queued=then)],
        )
    )
    store.record_turn(
        Turn(
            at=then,
            started=[
                AttemptStart(
                    run_id="lost_job-1", attempt=1, start=then + timedelta(seconds=1), worker="w"
                )
            ],
        )
    )
    began = utcnow()
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
    summary = driver.run(until_idle=True)
    report = run_report(store, summary, since=began)
    _agrees_with_history(report, store)
    assert summary.started == 2  # lost_job's second attempt and broken_job's first
    assert [(r.run_id, r.attempt, r.inherited) for r in report.attempts if r.inherited] == [
        ("lost_job-1", 1, True)
    ]
    text = _text(report)
    assert (
        "2 attempts started, 1 taken over from an earlier planner; "
        "3 finished: 2 failed, 1 succeeded"
    ) in text
    assert "2 attempts failed:" in text
    assert (
        "lost_job lost_job-1 attempt 1 failed: RunLost: the planner stopped and the cluster no"
        " longer knows this attempt (started by an earlier planner)"
    ) in text
    assert "broken_job broken_job-1 attempt 1 failed: RuntimeError: this job always fails" in text
    lost = next(r for r in report.attempts if r.inherited)
    assert lost.duration_s is not None and lost.duration_s >= 29  # as history has it
    store.close()


def test_a_large_run_is_summed_up_per_process_and_status() -> None:
    from planner.interfaces.terminal.run_summary import FinishedAttempt

    attempts = [
        FinishedAttempt(
            process=f"extract.t{n}",
            run_id=f"extract.t{n}-1",
            attempt=1,
            status="succeeded",
            duration_s=1.0,
            template="extract",
        )
        for n in range(500)
    ] + [
        FinishedAttempt(
            process="load", run_id=f"load-{n}", attempt=1, status="failed", duration_s=2.0
        )
        for n in range(30)
    ]
    text = _text(RunReport(attempts=tuple(attempts), started=530))
    assert "extract.* │ succeeded │ 500" in text and "load │ failed │ 30" in text
    assert "extract.t7" not in text  # one row per process and status, not per attempt
    assert "… and 10 more (`planner history --status failed`)" in text
    assert "530 attempts started; 530 finished: 30 failed, 500 succeeded" in text


def test_a_run_of_10_000_processes_is_a_screen_not_10_000_rows() -> None:
    from planner.interfaces.terminal.run_summary import ROWS_LISTED, FinishedAttempt

    attempts = [
        FinishedAttempt(process=f"p{n:05d}", run_id=f"p{n:05d}-1", attempt=1, status="succeeded")
        for n in range(10_000)
    ] + [
        FinishedAttempt(process=f"q{n}", run_id=f"q{n}-1", attempt=1, status="timed_out")
        for n in range(3)
    ]
    console = Console(width=100, record=True, color_system=None)
    console.print(run_summary_view(RunReport(attempts=tuple(attempts), started=10_003)))
    lines = [" ".join(line.split()) for line in console.export_text().splitlines()]
    rows = [line.split(" │ ")[:2] for line in lines if " │ " in line]
    assert len(rows) == ROWS_LISTED
    failures_first = [["q0", "timed_out"], ["q1", "timed_out"], ["q2", "timed_out"]]
    assert rows[:4] == [*failures_first, ["p00000", "succeeded"]]
    more = 10_003 - ROWS_LISTED
    assert (
        f"… and {more:,} more rows: {more:,} succeeded (p00017, p00018, p00019, p00020, p00021,"
        " … and 9978 more); `planner history` lists every attempt"
    ) in " ".join(lines)
    assert "10,003 attempts started; 10,003 finished: 10,000 succeeded, 3 timed_out" in (
        " ".join(lines)
    )
    assert len(lines) < 60


class _FailsOnceOnAnEnd(SqlStore):
    """A store whose first write of an attempt's end meets an outage (nothing of it commits)."""

    failed = False

    def record_turn(self, turn: Turn) -> None:
        if turn.ended and not self.failed:
            self.failed = True
            from sqlalchemy.exc import OperationalError

            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        super().record_turn(turn)


def test_an_end_written_after_an_outage_is_listed_once_among_the_recent_attempts(
    tmp_path: Path, client: Client
) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("processes:\n  quick: {run: workflows.jobs.demo:noop}\n")
    store = _FailsOnceOnAnEnd(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([path]), now=utcnow())
    driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
    driver.run(until_idle=True)
    assert store.failed  # the outage happened, and the end was written after it
    assert [(r["process"], r["status"]) for r in driver.recent] == [("quick", "succeeded")]
    assert [a.status.value for a in store.history("quick")] == ["succeeded"]
    store.close()
