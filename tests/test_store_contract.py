"""The ``Store`` contract, run against every backend (SQLite file and real PostgreSQL).

The ``store`` fixture (tests/conftest.py) is parametrized over the backends; each test gets an empty
database. Times are fixed UTC instants: the store never reads the clock for what it returns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import StatementError

from registry.errors import DefinitionError, IllegalTransition, ProcessNotFound, RunNotFound
from registry.lifecycle import RunStatus
from registry.model import Missed, ProcessDef, Ranking, RegistryDef, Source
from registry.records import ErrorInfo, LoggedDecision, RequestKind
from registry.storage.sqlstore import SqlStore

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def proc(name: str, **fields: Any) -> ProcessDef:
    fields.setdefault("run", "workflows.jobs.etl:extract")
    return ProcessDef(name=name, **fields)


def registry(*processes: ProcessDef, **settings: Any) -> RegistryDef:
    return RegistryDef(processes={p.name: p for p in processes}, **settings)


def snapshot(store: SqlStore) -> tuple[Any, ...]:
    """Everything observable about runs, to check that a refused call wrote nothing."""
    return (store.history(), store.active_runs(), store.load_histories())


def run_to_end(
    store: SqlStore, run_id: str, *, queued: datetime, minutes: float, status: RunStatus
) -> None:
    """Create ``run_id`` and take its first attempt from queued to ``status`` in ``minutes``."""
    process = run_id.rsplit("-", 1)[0]
    store.create_run(run_id=run_id, process=process, scheduled=queued, queued=queued, params={})
    start = queued + timedelta(minutes=1)
    store.attempt_started(run_id, 1, start=start, worker="tcp://w:1")
    store.finish_attempt(run_id, 1, status=status, end=start + timedelta(minutes=minutes))


# -- registry -------------------------------------------------------------------------------------


def test_empty_store_has_an_empty_registry(store: SqlStore) -> None:
    loaded, first_applied = store.load_registry()
    assert loaded == RegistryDef()
    assert first_applied == {}
    assert store.load_histories() == {}


def test_apply_round_trips_every_field(store: SqlStore) -> None:
    rich = ProcessDef(
        name="build",
        command=("python", "-m", "etl"),
        params={"table": "orders", "n": [1, 2]},
        every=timedelta(minutes=15),
        priority=7,
        reserve=True,
        ancestors=("extract",),
        not_before=time(3, 30),
        refresh_window=timedelta(hours=6),
        pool="warehouse",
        max_active=2,
        resources={"memory": 4e9},
        expected_duration=timedelta(minutes=20),
        retries=3,
        retry_delay=timedelta(minutes=1),
        retry_backoff=2.0,
        timeout=timedelta(hours=1),
        hold=True,
        enabled=False,
        start_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        max_runs=10,
        missed=Missed.ALL,
        on_failure="workflows.jobs.alerts:notify",
        source=Source(file="a.yaml", line=12),
    )
    extract = proc("extract", cron="0 3 * * *", not_before=datetime(2026, 2, 1, 4, tzinfo=UTC))
    reg = registry(
        rich,
        extract,
        timezone="Europe/Madrid",
        slots=5,
        pools={"warehouse": 2},
        ranking=Ranking.PRIORITY,
    )
    result = store.apply(reg, now=T0)
    assert (result.added, result.changed, result.removed) == (("build", "extract"), (), ())

    loaded, first_applied = store.load_registry()
    assert loaded == reg
    assert loaded.processes["build"].source == Source(file="a.yaml", line=12)
    assert first_applied == {"build": T0, "extract": T0}


def test_apply_adds_changes_removes_and_keeps_first_applied(store: SqlStore) -> None:
    store.apply(registry(proc("a"), proc("b"), proc("c")), now=at(0))
    result = store.apply(registry(proc("a", priority=5), proc("c"), proc("d")), now=at(10))
    assert result.added == ("d",)
    assert result.changed == ("a",)
    assert result.removed == ("b",)
    loaded, first_applied = store.load_registry()
    assert sorted(loaded.processes) == ["a", "c", "d"]
    assert loaded.processes["a"].priority == 5
    assert first_applied == {"a": at(0), "c": at(0), "d": at(10)}


def test_reapplying_the_same_registry_changes_nothing(store: SqlStore) -> None:
    reg = registry(proc("a", source=Source(file="x.yaml", line=3)), slots=2)
    store.apply(reg, now=at(0))
    revision = store.registry_revision()
    assert store.apply(reg, now=at(5)).unchanged
    assert store.registry_revision() == revision
    # a process that only moved in its file is not "changed", but its new location is kept
    moved = registry(proc("a", source=Source(file="x.yaml", line=9)), slots=2)
    assert store.apply(moved, now=at(6)).unchanged
    assert store.load_registry()[0].processes["a"].source == Source(file="x.yaml", line=9)


def test_removed_process_keeps_its_run_history(store: SqlStore) -> None:
    store.apply(registry(proc("gone")), now=at(0))
    run_to_end(store, "gone-1", queued=at(1), minutes=5, status=RunStatus.SUCCEEDED)
    assert store.apply(registry(), now=at(10)).removed == ("gone",)
    assert [r.run_id for r in store.history("gone")] == ["gone-1"]
    assert store.load_histories()["gone"].successes == 1


def test_apply_is_atomic(store: SqlStore) -> None:
    """A failure in the middle of apply (after an update, a delete and an insert went to the
    database inside the transaction) leaves the registry and its revision as they were."""
    before = registry(proc("a"), proc("b"), proc("c"), slots=1)
    store.apply(before, now=at(0))
    revision = store.registry_revision()

    def fail_on_boom(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.startswith("INSERT INTO processes") and "z_boom" in repr(params):
            raise RuntimeError("disk on fire")

    after = registry(proc("a", priority=9), proc("c"), proc("d"), proc("z_boom"), slots=4)
    event.listen(store.engine, "before_cursor_execute", fail_on_boom)
    try:
        with pytest.raises(RuntimeError, match="disk on fire"):
            store.apply(after, now=at(1))
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_boom)

    assert store.load_registry() == (before, {"a": at(0), "b": at(0), "c": at(0)})
    assert store.registry_revision() == revision
    # and the store is still usable
    assert store.apply(after, now=at(2)).added == ("d", "z_boom")


def test_revision_grows_on_apply_update_and_direct_sql(store: SqlStore) -> None:
    start = store.registry_revision()
    store.apply(registry(proc("a"), proc("b")), now=at(0))
    after_apply = store.registry_revision()
    assert after_apply > start

    store.update_process("a", {"hold": True})
    after_update = store.registry_revision()
    assert after_update > after_apply

    with store.engine.begin() as conn:  # an operator's direct edit
        conn.execute(text("UPDATE processes SET priority = 42 WHERE name = 'b'"))
    after_sql = store.registry_revision()
    assert after_sql > after_update
    assert store.load_registry()[0].processes["b"].priority == 42

    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM processes WHERE name = 'b'"))
    assert store.registry_revision() > after_sql


def test_revision_ignores_run_writes(store: SqlStore) -> None:
    store.apply(registry(proc("a")), now=at(0))
    revision = store.registry_revision()
    run_to_end(store, "a-1", queued=at(1), minutes=1, status=RunStatus.SUCCEEDED)
    store.add_request(RequestKind.TRIGGER, at=at(2), process="a")
    store.save_state("a", {"n": 1})
    assert store.registry_revision() == revision


@pytest.mark.postgres
def test_direct_sql_from_another_search_path_bumps_the_right_counter(pg_url: str) -> None:
    with SqlStore(pg_url) as store:
        store.apply(registry(proc("a")), now=at(0))
        revision = store.registry_revision()
        with store.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        with store.engine.begin() as conn:  # an operator whose session looks elsewhere
            conn.execute(text("SET LOCAL search_path TO public"))
            conn.execute(text(f'UPDATE "{schema}".processes SET hold = true'))
        assert store.registry_revision() == revision + 1
        assert store.load_registry()[0].processes["a"].hold is True


def test_reopening_keeps_data_and_triggers(store_url: str) -> None:
    with SqlStore(store_url) as first:
        first.apply(registry(proc("a")), now=at(0))
        first.create_run(run_id="a-1", process="a", scheduled=at(0), queued=at(0), params={})
        revision = first.registry_revision()
    with SqlStore(store_url) as again:
        assert again.registry_revision() == revision
        assert list(again.load_registry()[0].processes) == ["a"]
        assert [r.run_id for r in again.active_runs()] == ["a-1"]
        with again.engine.begin() as conn:
            conn.execute(text("UPDATE processes SET priority = 3"))
        assert again.registry_revision() > revision


def test_promoted_columns_override_the_document(store: SqlStore) -> None:
    store.apply(registry(proc("a", priority=1, max_active=1)), now=at(0))
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE processes SET priority = 50, hold = true, enabled = false, max_active = 3"
                " WHERE name = 'a'"
            )
        )
    a = store.load_registry()[0].processes["a"]
    assert (a.priority, a.hold, a.enabled, a.max_active) == (50, True, False, 3)
    # applying the YAML again puts the file's values back, and says so
    result = store.apply(registry(proc("a", priority=1, max_active=1)), now=at(1))
    assert result.changed == ("a",)
    a = store.load_registry()[0].processes["a"]
    assert (a.priority, a.hold, a.enabled, a.max_active) == (1, False, True, 1)


def test_update_process_validates_and_writes(store: SqlStore) -> None:
    store.apply(registry(proc("a"), proc("b", ancestors=("a",))), now=at(0))
    changed = store.update_process("b", {"priority": "200", "hold": True})
    assert (changed.priority, changed.hold) == (200, True)
    loaded, first_applied = store.load_registry()
    assert loaded.processes["b"] == changed
    assert first_applied["b"] == at(0)


def test_update_process_errors_write_nothing(store: SqlStore) -> None:
    store.apply(registry(proc("a")), now=at(0))
    revision = store.registry_revision()
    before = store.load_registry()
    with pytest.raises(ProcessNotFound, match="'nope'"):
        store.update_process("nope", {"hold": True})
    with pytest.raises(DefinitionError):
        store.update_process("a", {"retries": "many"})
    with pytest.raises(DefinitionError):
        store.update_process("a", {"ancestors": ["missing"]})
    assert store.load_registry() == before
    assert store.registry_revision() == revision


# -- runs -----------------------------------------------------------------------------------------


def test_run_lifecycle_success(store: SqlStore) -> None:
    store.create_run(
        run_id="a-1", process="a", scheduled=at(0), queued=at(1), params={"x": 1}, request_id=7
    )
    [active] = store.active_runs()
    assert (active.run_id, active.status, active.attempt) == ("a-1", RunStatus.QUEUED, 1)
    assert (active.scheduled, active.started, active.request_id) == (at(0), at(1), 7)
    assert active.params == {"x": 1}
    assert store.run_process("a-1") == "a"

    store.attempt_started("a-1", 1, start=at(2), worker="tcp://w:1")
    assert store.active_runs()[0].status is RunStatus.RUNNING

    store.finish_attempt("a-1", 1, status=RunStatus.SUCCEEDED, end=at(12), result="42 rows")
    assert store.active_runs() == []
    [record] = store.history()
    assert record.status is RunStatus.SUCCEEDED
    assert (record.scheduled, record.queued, record.start, record.end) == (
        at(0),
        at(1),
        at(2),
        at(12),
    )
    assert (record.worker, record.result, record.error) == ("tcp://w:1", "42 rows", None)
    assert record.duration_s == 600.0


def test_finish_without_started_event_records_start_and_worker(store: SqlStore) -> None:
    store.create_run(run_id="a-1", process="a", scheduled=at(0), queued=at(0), params={})
    store.finish_attempt(
        "a-1", 1, status=RunStatus.SUCCEEDED, start=at(1), end=at(3), worker="tcp://w:2"
    )
    [record] = store.history()
    assert (record.start, record.worker, record.duration_s) == (at(1), "tcp://w:2", 120.0)
    assert store.load_histories()["a"].durations == (120.0,)


def test_retry_path(store: SqlStore) -> None:
    store.create_run(run_id="a-1", process="a", scheduled=at(0), queued=at(0), params={"k": "v"})
    store.attempt_started("a-1", 1, start=at(1), worker="w1")
    error = ErrorInfo(type="KeyError", message="'x'", traceback="Traceback...\nKeyError: 'x'")
    store.finish_attempt("a-1", 1, status=RunStatus.FAILED, end=at(2), error=error, retry_at=at(3))
    [waiting] = store.active_runs()
    assert (waiting.status, waiting.attempt, waiting.retry_at) == (RunStatus.RETRYING, 1, at(3))

    store.retry_run("a-1", attempt=2, queued=at(3))
    [queued] = store.active_runs()
    assert (queued.status, queued.attempt, queued.started, queued.retry_at) == (
        RunStatus.QUEUED,
        2,
        at(3),
        None,
    )
    assert queued.params == {"k": "v"}
    store.attempt_started("a-1", 2, start=at(4), worker="w2")
    store.finish_attempt("a-1", 2, status=RunStatus.SUCCEEDED, end=at(5))

    second, first = store.history()
    assert (second.attempt, second.status, second.scheduled) == (2, RunStatus.SUCCEEDED, at(0))
    assert (first.attempt, first.status, first.error) == (1, RunStatus.FAILED, error)
    hist = store.load_histories()["a"]
    assert (hist.last_start, hist.last_outcome, hist.successes) == (at(3), RunStatus.SUCCEEDED, 1)


def test_cancel_while_retrying(store: SqlStore) -> None:
    store.create_run(run_id="a-1", process="a", scheduled=at(0), queued=at(0), params={})
    store.finish_attempt(
        "a-1", 1, status=RunStatus.TIMED_OUT, start=at(0), end=at(1), retry_at=at(5)
    )
    store.cancel_retry("a-1", at=at(2))
    assert store.active_runs() == []
    assert store.load_histories()["a"].last_outcome is RunStatus.CANCELLED
    with pytest.raises(IllegalTransition):
        store.retry_run("a-1", attempt=2, queued=at(3))


def test_illegal_transitions_raise_and_write_nothing(store: SqlStore) -> None:
    store.create_run(run_id="a-1", process="a", scheduled=at(0), queued=at(0), params={})
    store.create_run(run_id="a-2", process="a", scheduled=at(1), queued=at(1), params={})
    store.attempt_started("a-2", 1, start=at(2), worker="w")
    store.finish_attempt("a-2", 1, status=RunStatus.SUCCEEDED, end=at(3))
    before = snapshot(store)

    refused = [
        # an attempt ends exactly once
        lambda: store.finish_attempt("a-2", 1, status=RunStatus.FAILED, end=at(4)),
        lambda: store.finish_attempt("a-2", 1, status=RunStatus.SUCCEEDED, end=at(4)),
        # a finished attempt does not start again; a queued run is not retried
        lambda: store.attempt_started("a-2", 1, start=at(4), worker="w"),
        lambda: store.retry_run("a-1", attempt=2, queued=at(4)),
        # only a retrying run is cancelled before its next attempt
        lambda: store.cancel_retry("a-1", at=at(4)),
        # attempt numbers must be the current one
        lambda: store.attempt_started("a-1", 2, start=at(4), worker="w"),
        lambda: store.finish_attempt("a-1", 3, status=RunStatus.FAILED, end=at(4)),
        # run ids are never reused
        lambda: store.create_run(
            run_id="a-2", process="a", scheduled=at(4), queued=at(4), params={}
        ),
    ]
    for call in refused:
        with pytest.raises(IllegalTransition):
            call()
        assert snapshot(store) == before

    with pytest.raises(ValueError, match="terminal"):
        store.finish_attempt("a-1", 1, status=RunStatus.RUNNING, end=at(4))
    with pytest.raises(RunNotFound, match="'nope-1'"):
        store.attempt_started("nope-1", 1, start=at(4), worker="w")
    with pytest.raises(RunNotFound):
        store.run_process("nope-1")
    assert snapshot(store) == before


def test_double_finish_after_retry_decision_raises(store: SqlStore) -> None:
    store.create_run(run_id="a-1", process="a", scheduled=at(0), queued=at(0), params={})
    store.finish_attempt("a-1", 1, status=RunStatus.FAILED, end=at(1), retry_at=at(2))
    before = snapshot(store)
    with pytest.raises(IllegalTransition):
        store.finish_attempt("a-1", 1, status=RunStatus.FAILED, end=at(1), retry_at=at(2))
    assert snapshot(store) == before


def test_times_come_back_aware_utc(store: SqlStore) -> None:
    madrid_noon = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    store.create_run(
        run_id="a-1", process="a", scheduled=madrid_noon, queued=madrid_noon, params={}
    )
    [record] = store.history()
    assert record.queued == madrid_noon
    assert record.queued.tzinfo is UTC
    with pytest.raises(StatementError, match="naive"):
        store.create_run(
            run_id="a-2", process="a", scheduled=datetime(2026, 1, 1), queued=at(0), params={}
        )


# -- history and load_histories -------------------------------------------------------------------


def test_history_filters(store: SqlStore) -> None:
    run_to_end(store, "a-1", queued=at(0), minutes=1, status=RunStatus.SUCCEEDED)
    run_to_end(store, "b-1", queued=at(10), minutes=1, status=RunStatus.FAILED)
    run_to_end(store, "a-2", queued=at(20), minutes=1, status=RunStatus.SUCCEEDED)
    assert [r.run_id for r in store.history()] == ["a-2", "b-1", "a-1"]
    assert [r.run_id for r in store.history("a")] == ["a-2", "a-1"]
    assert [r.run_id for r in store.history(since=at(10))] == ["a-2", "b-1"]
    assert [r.run_id for r in store.history("a", since=at(5))] == ["a-2"]
    assert [r.run_id for r in store.history(limit=1)] == ["a-2"]
    assert store.history("nobody") == []


def test_load_histories(store: SqlStore) -> None:
    run_to_end(store, "p-1", queued=at(0), minutes=10, status=RunStatus.SUCCEEDED)
    run_to_end(store, "p-2", queued=at(20), minutes=5, status=RunStatus.FAILED)
    hist = store.load_histories()["p"]
    assert (hist.successes, hist.last_outcome) == (1, RunStatus.FAILED)

    store.reset("p", at=at(30))
    hist = store.load_histories()["p"]
    assert (hist.successes, hist.last_outcome) == (0, None)
    assert hist.last_success_end == at(11)  # resets do not hide successes from descendants

    run_to_end(store, "p-3", queued=at(40), minutes=3, status=RunStatus.SUCCEEDED)
    store.create_run(run_id="p-4", process="p", scheduled=at(59), queued=at(60), params={})
    store.attempt_started("p-4", 1, start=at(61), worker="w")
    store.create_run(run_id="q-manual", process="q", scheduled=at(0), queued=at(0), params={})

    histories = store.load_histories()
    assert set(histories) == {"p", "q"}
    hist = histories["p"]
    assert hist.runs_created == 4
    assert (hist.last_fire, hist.last_start) == (at(59), at(60))
    assert (hist.last_end, hist.last_success_end) == (at(44), at(44))
    assert (hist.successes, hist.last_outcome) == (1, RunStatus.SUCCEEDED)
    assert hist.durations == (600.0, 180.0)  # oldest first; failures do not count
    assert [(r.run_id, r.status, r.attempt) for r in hist.active] == [("p-4", RunStatus.RUNNING, 1)]
    assert histories["q"].runs_created == 0  # not a f"{process}-{seq}" id
    assert store.load_histories(durations_kept=1)["p"].durations == (180.0,)


def test_runs_created_is_the_highest_sequence(store: SqlStore) -> None:
    for seq in (1, 10, 9):
        store.create_run(
            run_id=f"etl-x-{seq}", process="etl-x", scheduled=at(seq), queued=at(seq), params={}
        )
    assert store.load_histories()["etl-x"].runs_created == 10


# -- state, requests, decisions -------------------------------------------------------------------


def test_state_save_load_and_reset_are_independent(store: SqlStore) -> None:
    assert store.load_state("a") is None
    store.save_state("a", {"cursor": 5, "seen": ["x"]})
    assert store.load_state("a") == {"cursor": 5, "seen": ["x"]}
    store.reset("a", at=at(0))
    store.save_state("a", {"cursor": 6})
    assert store.load_state("a") == {"cursor": 6}
    run_to_end(store, "a-1", queued=at(-10), minutes=1, status=RunStatus.SUCCEEDED)
    assert store.load_histories()["a"].successes == 0  # the reset survived save_state


def test_requests(store: SqlStore) -> None:
    assert store.pending_requests() == []
    first = store.add_request(
        RequestKind.TRIGGER, at=at(0), process="a", params={"day": "2026-03-01"}, force=True
    )
    second = store.add_request(RequestKind.CANCEL, at=at(1), run_id="a-1")
    third = store.add_request(RequestKind.RESET, at=at(2), process="b")
    pending = store.pending_requests()
    assert [r.id for r in pending] == [first, second, third]
    trigger, cancel, reset = pending
    assert (trigger.kind, trigger.process, trigger.force, trigger.created) == (
        RequestKind.TRIGGER,
        "a",
        True,
        at(0),
    )
    assert trigger.params == {"day": "2026-03-01"}
    assert (cancel.kind, cancel.run_id, cancel.params, cancel.force) == (
        RequestKind.CANCEL,
        "a-1",
        {},
        False,
    )
    assert reset.kind is RequestKind.RESET

    store.mark_handled([first, third], at=at(3))
    assert [r.id for r in store.pending_requests()] == [second]
    store.mark_handled([], at=at(4))
    store.mark_handled([second], at=at(4))
    assert store.pending_requests() == []


def test_decision_log(store: SqlStore) -> None:
    logged = [
        LoggedDecision(at=at(0), process="a", decision="wait", reasons=(("ancestors", "b"),)),
        LoggedDecision(at=at(0), process="b", decision="start", reasons=()),
        LoggedDecision(
            at=at(1), process="a", decision="start", reasons=(("slots", ""), ("pool", "wh"))
        ),
    ]
    store.log_decisions(logged)
    store.log_decisions([])
    assert store.decisions() == [logged[2], logged[1], logged[0]]
    assert store.decisions("a") == [logged[2], logged[0]]
    assert store.decisions("a", limit=1) == [logged[2]]


# -- several processes on one SQLite file ---------------------------------------------------------


@pytest.fixture
def two_stores(sqlite_url: str) -> Iterator[tuple[SqlStore, SqlStore]]:
    first, second = SqlStore(sqlite_url), SqlStore(sqlite_url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_sqlite_uses_wal(two_stores: tuple[SqlStore, SqlStore]) -> None:
    writer, _ = two_stores
    with writer.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_two_stores_on_one_sqlite_file(two_stores: tuple[SqlStore, SqlStore]) -> None:
    writer, reader = two_stores
    writer.apply(registry(proc("a")), now=at(0))
    assert reader.registry_revision() == writer.registry_revision()
    assert list(reader.load_registry()[0].processes) == ["a"]

    # a reader in the middle of a long read transaction does not block the writer (WAL)
    with reader.engine.connect() as conn, conn.begin():
        assert conn.execute(text("SELECT COUNT(*) FROM runs")).scalar_one() == 0
        writer.create_run(run_id="a-1", process="a", scheduled=at(1), queued=at(1), params={})
        writer.attempt_started("a-1", 1, start=at(2), worker="w")
    # every write is committed when the call returns: the other store sees it at once
    assert [r.status for r in reader.active_runs()] == [RunStatus.RUNNING]
    writer.finish_attempt("a-1", 1, status=RunStatus.SUCCEEDED, end=at(3))
    assert reader.active_runs() == []
    assert reader.load_histories()["a"].successes == 1
    # and the other way round: the CLI's request reaches the planner
    request = reader.add_request(RequestKind.TRIGGER, at=at(4), process="a")
    assert [r.id for r in writer.pending_requests()] == [request]


def test_concurrent_writers_on_one_sqlite_file(two_stores: tuple[SqlStore, SqlStore]) -> None:
    """Two stores write at the same time; BEGIN IMMEDIATE plus the busy timeout serialise them."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(store: SqlStore, process: str) -> None:
        try:
            barrier.wait()
            for seq in range(1, 31):
                run_id = f"{process}-{seq}"
                store.create_run(
                    run_id=run_id, process=process, scheduled=at(seq), queued=at(seq), params={}
                )
                store.finish_attempt(
                    run_id, 1, status=RunStatus.SUCCEEDED, start=at(seq), end=at(seq + 1)
                )
                store.load_histories()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(store, name))
        for store, name in zip(two_stores, ("a", "b"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    histories = two_stores[0].load_histories()
    assert {name: h.successes for name, h in histories.items()} == {"a": 30, "b": 30}
    assert {name: h.runs_created for name, h in histories.items()} == {"a": 30, "b": 30}


def test_batch_commits_all_writes_together(store: SqlStore) -> None:
    store.apply(registry(proc("a")), now=at(0))
    with store.batch():
        store.create_run(run_id="a-1", process="a", scheduled=at(1), queued=at(1), params={})
        # the batch sees its own writes before they are committed
        assert [r.run_id for r in store.active_runs()] == ["a-1"]
        store.attempt_started("a-1", 1, start=at(2), worker="w")
    (active,) = store.active_runs()
    assert active.status is RunStatus.RUNNING


def test_batch_rolls_back_everything_on_error(store: SqlStore) -> None:
    store.apply(registry(proc("a")), now=at(0))
    with pytest.raises(IllegalTransition), store.batch():
        store.create_run(run_id="a-1", process="a", scheduled=at(1), queued=at(1), params={})
        store.create_run(run_id="a-1", process="a", scheduled=at(1), queued=at(1), params={})
    assert store.active_runs() == []
    assert store.history() == []


def test_reset_forgets_the_last_start(store: SqlStore) -> None:
    store.apply(registry(proc("a")), now=at(0))
    run_to_end(store, "a-1", queued=at(1), minutes=1, status=RunStatus.FAILED)
    store.reset("a", at=at(10))
    history = store.load_histories()["a"]
    assert history.last_start is None
    assert history.last_outcome is None and history.successes == 0
