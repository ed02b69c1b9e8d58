"""``Store.record_turn``: one live-loop turn in one transaction and a bounded number of statements,
with the same checks and the same rows as the one-run methods. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from registry.errors import IllegalTransition, RunNotFound
from registry.lifecycle import RunStatus
from registry.records import (
    AttemptEnd,
    AttemptStart,
    ErrorInfo,
    NewRun,
    NextAttempt,
    RequestKind,
    Turn,
)
from registry.storage.sqlstore import SqlStore
from registry.storage.turn_writes import CHUNK

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@contextmanager
def counting(store: SqlStore) -> Iterator[list[str]]:
    """The SQL statements (one per ``execute``/``executemany`` call) issued inside the block."""
    seen: list[str] = []

    def before(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


def created(n: int, *, offset: int = 0) -> list[NewRun]:
    return [
        NewRun(run_id=f"p{i}-1", process=f"p{i}", scheduled=at(0), queued=at(0), params={"i": i})
        for i in range(offset, offset + n)
    ]


def lifecycle_turns(n: int) -> list[Turn]:
    """n runs: created, started, one succeeds, the others fail and are retried, then cancelled."""
    runs = created(n)
    ids = [r.run_id for r in runs]
    return [
        Turn(at=at(0), created=runs),
        Turn(
            at=at(1),
            started=[AttemptStart(run_id=i, attempt=1, start=at(1), worker="w") for i in ids],
        ),
        Turn(
            at=at(2),
            ended=[AttemptEnd(run_id=ids[0], attempt=1, status=RunStatus.SUCCEEDED, end=at(2))]
            + [
                AttemptEnd(
                    run_id=i,
                    attempt=1,
                    status=RunStatus.FAILED,
                    end=at(2),
                    error=ErrorInfo(type="ValueError", message="bad", traceback="tb"),
                    retry_at=at(3),
                )
                for i in ids[1:]
            ],
            states={"p0": {"watermark": 2}},
        ),
        Turn(
            at=at(3),
            retried=[NextAttempt(run_id=i, attempt=2, queued=at(3)) for i in ids[1:-1]],
            cancelled_retries=[ids[-1]],
        ),
    ]


def one_by_one(store: SqlStore, turn: Turn) -> None:
    """The same turn through the one-run methods (the reference)."""
    with store.batch():
        for s in turn.started:
            store.attempt_started(s.run_id, s.attempt, start=s.start, worker=s.worker)
        for e in turn.ended:
            store.finish_attempt(
                e.run_id,
                e.attempt,
                status=e.status,
                end=e.end,
                start=e.start,
                worker=e.worker,
                error=e.error,
                result=e.result,
                retry_at=e.retry_at,
            )
        for run_id in turn.cancelled_retries:
            store.cancel_retry(run_id, at=turn.at)
        for process, state in turn.states.items():
            store.save_state(process, state)
        for c in turn.created:
            store.create_run(
                run_id=c.run_id,
                process=c.process,
                scheduled=c.scheduled,
                queued=c.queued,
                params=c.params,
                request_id=c.request_id,
            )
        for r in turn.retried:
            store.retry_run(r.run_id, attempt=r.attempt, queued=r.queued)
        store.mark_handled(turn.handled, at=turn.at)


def observable(store: SqlStore) -> tuple[object, ...]:
    states = {f"p{i}": store.load_state(f"p{i}") for i in range(3)}
    return (store.history(), store.active_runs(), store.load_histories(), states)


def test_a_turn_writes_what_the_one_run_methods_write(tmp_path: Path) -> None:
    batched, reference = (SqlStore(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        for turn in lifecycle_turns(5):
            batched.record_turn(turn)
            one_by_one(reference, turn)
        assert observable(batched) == observable(reference)
        statuses = {r.run_id: r.status for r in batched.history()}
        assert statuses["p0-1"] is RunStatus.SUCCEEDED
        active = {(r.run_id, r.attempt, r.status) for r in batched.active_runs()}
        assert ("p1-1", 2, RunStatus.QUEUED) in active
        assert not any(run_id == "p4-1" for run_id, _, _ in active)  # its retry was cancelled
        assert batched.load_state("p0") == {"watermark": 2}
    finally:
        batched.close()
        reference.close()


@pytest.mark.parametrize("n", [3, 60])
def test_statements_per_turn_do_not_grow_with_its_runs(store: SqlStore, n: int) -> None:
    counts = []
    for turn in lifecycle_turns(n):
        with counting(store) as seen:
            store.record_turn(turn)
        counts.append(len(seen))
    # BEGIN, one read, an insert and an update each for runs and attempts, one upsert for the
    # states (COMMIT is not a statement): whatever n is
    assert max(counts) <= 7, counts


def test_statements_stay_bounded_at_scale(store: SqlStore) -> None:
    turn = Turn(at=at(0), created=created(2 * CHUNK + 10))
    with counting(store) as seen:
        store.record_turn(turn)
    # BEGIN, chunked reads (3 chunks), one insert per table
    assert len(seen) <= 1 + 3 + 2, seen
    assert len(store.active_runs()) == 2 * CHUNK + 10


def test_an_illegal_change_refuses_the_whole_turn(store: SqlStore) -> None:
    store.record_turn(Turn(at=at(0), created=created(2)))
    before = observable(store)
    bad = Turn(
        at=at(1),
        started=[AttemptStart(run_id="p0-1", attempt=1, start=at(1), worker="w")],
        ended=[AttemptEnd(run_id="p1-1", attempt=2, status=RunStatus.SUCCEEDED, end=at(1))],
        created=created(1, offset=2),
    )
    with pytest.raises(IllegalTransition):
        store.record_turn(bad)
    assert observable(store) == before  # not even the legal start was written


def test_a_run_created_twice_or_unknown_is_refused(store: SqlStore) -> None:
    store.record_turn(Turn(at=at(0), created=created(1)))
    with pytest.raises(IllegalTransition):
        store.record_turn(Turn(at=at(1), created=created(1)))
    with pytest.raises(RunNotFound):
        store.record_turn(
            Turn(
                at=at(1),
                started=[AttemptStart(run_id="nope-1", attempt=1, start=at(1), worker="w")],
            )
        )


def test_a_turn_marks_the_triggers_it_satisfies_handled(store: SqlStore) -> None:
    request = store.add_request(RequestKind.TRIGGER, at=at(0), process="p0")
    run = NewRun(run_id="p0-1", process="p0", scheduled=at(0), queued=at(0), request_id=request)
    store.record_turn(Turn(at=at(1), created=[run], handled=[request]))
    assert store.pending_requests() == []


def test_a_retry_after_an_end_in_the_same_turn(store: SqlStore) -> None:
    """A zero retry delay: the attempt ends and the next one is queued in one turn."""
    store.record_turn(Turn(at=at(0), created=created(1)))
    store.record_turn(
        Turn(
            at=at(1),
            ended=[
                AttemptEnd(
                    run_id="p0-1",
                    attempt=1,
                    status=RunStatus.FAILED,
                    start=at(0.5),
                    worker="w",
                    end=at(1),
                    retry_at=at(1),
                )
            ],
            retried=[NextAttempt(run_id="p0-1", attempt=2, queued=at(1))],
        )
    )
    (active,) = store.active_runs()
    assert (active.run_id, active.attempt, active.status) == ("p0-1", 2, RunStatus.QUEUED)
    first = next(a for a in store.history() if a.attempt == 1)
    assert first.status is RunStatus.FAILED and first.duration_s == pytest.approx(0.5)


def test_a_confirmed_chained_run_counts_as_queued_when_it_was_confirmed(store: SqlStore) -> None:
    """A chained run is recorded ``pending`` when it is handed to Dask, before its ancestor
    ends; it starts when the planner confirms it, after that end. Its attempt's ``queued`` is
    the confirmation, so a planner rebuilt from the records (after a restart, or ``plan`` in
    another shell) sees the ancestor's success as older than its last start — as the planner
    that ran it did — and does not take the ancestor for fresh again."""
    store.record_turn(
        Turn(at=at(0), created=[NewRun(run_id="a-1", process="a", scheduled=at(0), queued=at(0))])
    )
    chained = NewRun(run_id="b-1", process="b", scheduled=at(1), queued=at(1), pending=True)
    store.record_turn(Turn(at=at(1), created=[chained]))
    store.record_turn(
        Turn(
            at=at(3),
            ended=[
                AttemptEnd(
                    run_id="a-1", attempt=1, status=RunStatus.SUCCEEDED, start=at(0), end=at(2)
                )
            ],
            confirmed=["b-1"],
        )
    )
    b = store.load_histories()["b"]
    a = store.load_histories()["a"]
    assert a.last_success_end == at(2)
    assert b.last_start == at(3) and b.last_start > a.last_success_end
    (attempt,) = [h for h in store.history() if h.run_id == "b-1"]
    assert attempt.queued == at(3) and attempt.status is RunStatus.QUEUED
