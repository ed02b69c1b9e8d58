"""Retry decisions on the worker: ``retry_on`` by class and bases, then the ``on_error`` hook."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.live.runner import run_planner
from planner.live.worker.execute import JobHooks, JobSpec, execute
from planner.live.worker.outcome import MESSAGE_MAX_CHARS, error_from_exception, exception_kinds
from planner.live.worker.retry_decision import Verdict, decide
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import AttemptRecord, ErrorInfo
from registry.storage.sqlstore import SqlStore


class WarehouseDown(ConnectionRefusedError):
    pass


def verdict(
    exc: BaseException | None,
    *,
    retry_on: tuple[str, ...] = (),
    on_error: str | None = None,
    status: RunStatus = RunStatus.FAILED,
) -> tuple[Verdict, str]:
    error = error_from_exception(exc) if exc is not None else None
    return decide(
        retry_on=retry_on,
        on_error=on_error,
        process="p",
        run_id="p-1",
        attempt=1,
        status=status,
        error=error,
    )


def test_exception_kinds_are_the_class_and_its_bases() -> None:
    kinds = exception_kinds(WarehouseDown("x"))
    assert kinds[:2] == ("WarehouseDown", f"{__name__}.WarehouseDown")
    assert {"ConnectionRefusedError", "ConnectionError", "OSError", "Exception"} <= set(kinds)
    assert "builtins.OSError" not in kinds and "BaseException" in kinds


def test_retry_on_matches_the_class_or_a_base() -> None:
    assert verdict(WarehouseDown("x"), retry_on=("ConnectionError",))[0] is Verdict.RETRY
    assert verdict(WarehouseDown("x"), retry_on=(f"{__name__}.WarehouseDown",))[0] is Verdict.RETRY
    fail, why = verdict(ValueError("bad row"), retry_on=("ConnectionError", "TimeoutError"))
    assert (
        fail is Verdict.FAIL
        and why == "ValueError is not in retry_on (ConnectionError, TimeoutError)"
    )
    assert verdict(None, retry_on=("TimeoutError",), status=RunStatus.TIMED_OUT)[0] is Verdict.RETRY
    assert verdict(ValueError("x"))[0] is Verdict.RETRY  # no retry_on: any failure


def test_a_command_failure_matches_commandfailed() -> None:
    error = ErrorInfo(type="CommandFailed", message="exit 3")
    got = decide(
        retry_on=("CommandFailed",),
        on_error=None,
        process="p",
        run_id="p-1",
        attempt=1,
        status=RunStatus.FAILED,
        error=error,
    )
    assert got[0] is Verdict.RETRY


@pytest.mark.parametrize("word", ["retry", "fail", "cancel"])
def test_on_error_decides(word: str) -> None:
    got, why = verdict(RuntimeError(f"boom {word}"), on_error="tests.live_jobs:on_error_says")
    assert got is Verdict(word)
    assert (why == "") if word == "retry" else why.endswith(f"said {word}")


def test_a_broken_or_vague_hook_counts_as_retry(caplog: pytest.LogCaptureFixture) -> None:
    got, why = verdict(RuntimeError("x"), on_error="tests.live_jobs:on_error_raises")
    assert got is Verdict.RETRY
    assert why == (
        "on_error tests.live_jobs:on_error_raises raised RuntimeError: the hook itself is"
        " broken; retrying"
    )
    assert "on_error hook 'tests.live_jobs:on_error_raises' failed" in caplog.text
    got, why = verdict(RuntimeError("boom maybe"), on_error="tests.live_jobs:on_error_says")
    assert got is Verdict.RETRY and "'maybe'" in why


def test_a_raising_hook_is_noted_in_the_error_and_logged_in_the_attempt_log() -> None:
    """In the worker's ``execute``: the note survives a message cut to its bound."""
    spec = JobSpec(
        process="p",
        run_id="p-1",
        attempt=1,
        scheduled=datetime(2026, 3, 2, tzinfo=UTC),
        run="tests.live_jobs:raise_huge",
        params={"size": MESSAGE_MAX_CHARS * 2},
        hooks=JobHooks(on_error="tests.live_jobs:on_error_raises"),
        final_attempt=False,
    )
    outcome = execute(spec)
    assert outcome.status is RunStatus.FAILED and outcome.retry  # retried anyway
    assert outcome.error is not None and len(outcome.error.message) <= MESSAGE_MAX_CHARS
    assert outcome.error.message.startswith("xxx")
    assert outcome.error.message.endswith(
        "… [on_error tests.live_jobs:on_error_raises raised RuntimeError: the hook itself is"
        " broken; retrying]"
    )
    assert outcome.log is not None
    assert "on_error hook 'tests.live_jobs:on_error_raises' failed for run 'p-1'" in outcome.log
    assert outcome.log.rstrip().endswith("RuntimeError: the hook itself is broken")


def test_retry_on_is_asked_before_on_error() -> None:
    got, _ = verdict(
        ValueError("boom retry"), retry_on=("OSError",), on_error="tests.live_jobs:on_error_says"
    )
    assert got is Verdict.FAIL


# -- over real failures, on a real cluster ------------------------------------------------------


@pytest.mark.integration
def test_retry_on_and_on_error_decide_over_real_failures(tmp_path: Path) -> None:
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        """
defaults: {retries: 2, retry_delay: 0}
processes:
  not_listed:
    run: tests.live_jobs:raise_named
    params: {kind: ValueError}
    retry_on: [ConnectionError]
  by_base:
    run: tests.live_jobs:raise_named
    params: {kind: ConnectionRefusedError}
    retry_on: [OSError]
  hook_cancels:
    run: tests.live_jobs:raise_named
    params: {kind: RuntimeError, verdict: cancel}
    on_error: tests.live_jobs:on_error_says
  hook_fails:
    run: tests.live_jobs:raise_named
    params: {kind: RuntimeError, verdict: fail}
    on_error: tests.live_jobs:on_error_says
  hook_retries:
    run: tests.live_jobs:raise_named
    params: {kind: RuntimeError, verdict: retry}
    on_error: tests.live_jobs:on_error_says
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([registry_file]), now=datetime.now(UTC))
    run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
    attempts: dict[str, list[AttemptRecord]] = {}
    for a in sorted(store.history(), key=lambda a: a.attempt):
        attempts.setdefault(a.process, []).append(a)
    shape = {p: [a.status.value for a in tries] for p, tries in attempts.items()}
    assert shape == {
        "not_listed": ["failed"],
        "by_base": ["failed", "failed", "failed"],
        "hook_cancels": ["cancelled"],
        "hook_fails": ["failed"],
        "hook_retries": ["failed", "failed", "failed"],
    }
    (not_listed,) = attempts["not_listed"]
    assert not_listed.error is not None
    assert (
        "ValueError is not in retry_on (ConnectionError); not retried" in not_listed.error.message
    )
    assert store.run("hook_cancels-1").status is RunStatus.CANCELLED
    assert store.run("hook_fails-1").status is RunStatus.FAILED
    store.close()


@pytest.mark.integration
def test_a_raising_on_error_hook_is_in_the_attempt_log_and_error_on_worker_processes(
    tmp_path: Path,
) -> None:
    """On worker processes (as on a remote cluster) the hook's failure travels with the attempt:
    its traceback is in the attempt's log and its reason in the attempt's error."""
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        """
processes:
  broken_hook:
    run: tests.live_jobs:raise_named
    params: {kind: RuntimeError}
    retries: 1
    retry_delay: 0
    on_error: tests.live_jobs:on_error_raises
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    try:
        store.apply(load_files([registry_file]), now=datetime.now(UTC))
        run_planner(store, processes=True, n_workers=1, until_idle=True, dashboard_address=":0")
        tries = sorted(store.history("broken_hook"), key=lambda a: a.attempt)
        assert [a.status for a in tries] == [RunStatus.FAILED, RunStatus.FAILED]  # retried
        first = tries[0].error
        assert first is not None and first.type == "RuntimeError"
        assert first.message == (
            "failing on purpose, retry [on_error tests.live_jobs:on_error_raises raised"
            " RuntimeError: the hook itself is broken; retrying]"
        )
        last = tries[1].error  # the final attempt asks no hook: its error is the job's own
        assert last is not None and last.message == "failing on purpose, retry"
        log = store.attempt_log("broken_hook-1", 1).log or ""
        assert (
            "ERROR planner.live.worker.retry_decision: on_error hook"
            " 'tests.live_jobs:on_error_raises' failed for run 'broken_hook-1' attempt 1" in log
        )
        assert "RuntimeError: the hook itself is broken" in log  # with its traceback
    finally:
        store.close()
