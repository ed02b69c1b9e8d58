"""The store's side of attempt logs and results, on SQLite and PostgreSQL: what a turn writes
(log, JSON result), what the running planner writes while an attempt runs
(``write_partial_logs``), and the reads ``planner logs``/``show``/``history`` and the HTTP API
build on (``attempt_log``, ``run``, ``history`` with params and a status filter)."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from planner.live.worker import JobOutcome, JobSpec, execute
from registry.errors import RunNotFound
from registry.lifecycle import RunStatus
from registry.records import AttemptEnd, AttemptStart, ErrorInfo, NewRun, NextAttempt, Turn
from registry.storage.sqlstore import SqlStore
from tests.test_turn_writes import counting

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _started(store: SqlStore, run_id: str, params: dict[str, object]) -> None:
    process = run_id.rsplit("-", 1)[0]
    new = NewRun(run_id=run_id, process=process, scheduled=at(0), queued=at(0), params=params)
    store.record_turn(Turn(at=at(0), created=[new]))
    start = AttemptStart(run_id=run_id, attempt=1, start=at(1), worker="tcp://w:1")
    store.record_turn(Turn(at=at(1), started=[start]))


def test_a_turn_stores_the_log_and_the_json_result(store: SqlStore) -> None:
    _started(store, "a-1", {"table": "orders"})
    result = {"rows": 3, "tables": ["orders"], "ok": True}
    end = AttemptEnd(
        run_id="a-1",
        attempt=1,
        status=RunStatus.SUCCEEDED,
        end=at(2),
        result=repr(result),
        result_json=result,
        log="line one\nline two — ünïcode\n",
    )
    store.record_turn(Turn(at=at(2), ended=[end]))
    record = store.attempt_log("a-1")
    assert record.log == "line one\nline two — ünïcode\n"
    assert record.result_json == result and record.result_document == result
    assert record.params == {"table": "orders"}
    [listed] = store.history("a")
    assert listed.log is None  # history never reads logs
    assert listed.result_json == result and listed.params == {"table": "orders"}


def test_a_value_that_is_not_json_is_shown_as_its_repr(store: SqlStore) -> None:
    _started(store, "b-1", {})
    end = AttemptEnd(
        run_id="b-1", attempt=1, status=RunStatus.SUCCEEDED, end=at(2), result="<object at 0x1>"
    )
    store.record_turn(Turn(at=at(2), ended=[end]))
    assert store.attempt_log("b-1").result_document == {"repr": "<object at 0x1>"}


def test_partial_logs_are_written_while_running_and_never_over_an_end(store: SqlStore) -> None:
    _started(store, "c-1", {})
    _started(store, "d-1", {})
    with counting(store) as statements:
        store.write_partial_logs({("c-1", 1): "so far\n", ("d-1", 1): "d so far\n"})
    assert statements.count("UPDATE") == 1  # one statement for all of them
    assert store.attempt_log("c-1").log == "so far\n"
    # c ends with the whole log from its outcome; d's outcome has none (lost): it keeps its own
    ends = [
        AttemptEnd(
            run_id="c-1", attempt=1, status=RunStatus.SUCCEEDED, end=at(3), log="so far\nall\n"
        ),
        AttemptEnd(
            run_id="d-1",
            attempt=1,
            status=RunStatus.FAILED,
            end=at(3),
            error=ErrorInfo(type="RunLost", message="gone"),
        ),
    ]
    store.record_turn(Turn(at=at(3), ended=ends))
    assert store.attempt_log("c-1").log == "so far\nall\n"
    assert store.attempt_log("d-1").log == "d so far\n"
    store.write_partial_logs({("c-1", 1): "a late chunk\n"})  # the attempt ended: ignored
    assert store.attempt_log("c-1").log == "so far\nall\n"


def test_a_turn_that_changes_a_running_attempt_keeps_its_partial_log(store: SqlStore) -> None:
    new = NewRun(run_id="e-1", process="e", scheduled=at(0), queued=at(0))
    store.record_turn(Turn(at=at(0), created=[new]))
    store.write_partial_logs({("e-1", 1): "before the start was written\n"})
    start = AttemptStart(run_id="e-1", attempt=1, start=at(1), worker="tcp://w:1")
    store.record_turn(Turn(at=at(1), started=[start]))
    record = store.attempt_log("e-1")
    assert record.status is RunStatus.RUNNING
    assert record.log == "before the start was written\n"


def test_attempt_log_and_run_name_what_they_cannot_find(store: SqlStore) -> None:
    _started(store, "f-1", {"n": 1})
    store.record_turn(
        Turn(
            at=at(2),
            ended=[
                AttemptEnd(
                    run_id="f-1",
                    attempt=1,
                    status=RunStatus.FAILED,
                    end=at(2),
                    log="first\n",
                    retry_at=at(3),
                )
            ],
        )
    )
    store.record_turn(Turn(at=at(3), retried=[NextAttempt(run_id="f-1", attempt=2, queued=at(3))]))
    assert store.attempt_log("f-1").attempt == 2  # the latest by default
    assert store.attempt_log("f-1", 1).log == "first\n"
    run = store.run("f-1")
    assert (run.process, run.status, run.attempt, run.params) == (
        "f",
        RunStatus.QUEUED,
        2,
        {"n": 1},
    )
    with pytest.raises(RunNotFound):
        store.attempt_log("f-1", 3)
    with pytest.raises(RunNotFound):
        store.attempt_log("nobody-1")
    with pytest.raises(RunNotFound):
        store.run("nobody-1")


def test_history_filters_by_status(store: SqlStore) -> None:
    for run_id, status in (("g-1", RunStatus.SUCCEEDED), ("g-2", RunStatus.FAILED)):
        _started(store, run_id, {})
        store.record_turn(
            Turn(at=at(2), ended=[AttemptEnd(run_id=run_id, attempt=1, status=status, end=at(2))])
        )
    assert [a.run_id for a in store.history("g", status=RunStatus.FAILED)] == ["g-2"]
    assert len(store.history("g", limit=1)) == 1


# -- on the worker: two attempts at once in one process ----------------------------------------

_SAID: dict[str, threading.Event] = {"one": threading.Event(), "two": threading.Event()}


def talk_in_turn(me: str, other: str) -> str:
    """Print and log, then wait until the other attempt has too, then print again."""
    print(f"{me} first")
    logging.getLogger("tests.turns").warning("%s logs", me)
    _SAID[me].set()
    assert _SAID[other].wait(30)
    print(f"{me} last", file=sys.stderr)
    return me


def test_two_attempts_running_at_once_keep_their_logs_apart() -> None:
    outcomes: dict[str, JobOutcome] = {}

    def attempt(me: str, other: str) -> None:
        spec = JobSpec(
            process=me,
            run_id=f"{me}-1",
            attempt=1,
            scheduled=at(0),
            run="tests.test_attempt_records:talk_in_turn",
            params={"me": me, "other": other},
        )
        outcomes[me] = execute(spec)

    threads = [
        threading.Thread(target=attempt, args=("one", "two")),
        threading.Thread(target=attempt, args=("two", "one")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for me, other in (("one", "two"), ("two", "one")):
        log = outcomes[me].log or ""
        assert (
            f"{me} first" in log
            and f"{me} last" in log
            and f"WARNING tests.turns: {me} logs" in log
        )
        assert other not in log
        assert outcomes[me].result_json == me
