"""``Store.last_results(processes)``: what a starting planner loads for ``ctx.ancestors`` — the
JSON result of the latest success of each process asked for (the ancestors of some process), and
of no other, on SQLite and PostgreSQL, with a cost that does not grow with the run history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import AttemptEnd, NewRun, Turn
from registry.storage.sqlstore import SqlStore

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ran(
    store: SqlStore,
    process: str,
    seq: int,
    *,
    ended: float,
    status: RunStatus = RunStatus.SUCCEEDED,
    result: Any = None,
) -> None:
    """One run of ``process``, queued and ended (``ended`` minutes after T0) with ``result``."""
    run_id = f"{process}-{seq}"
    store.record_turn(
        Turn(
            at=at(ended),
            created=[NewRun(run_id=run_id, process=process, scheduled=at(0), queued=at(0))],
        )
    )
    end = AttemptEnd(
        run_id=run_id, attempt=1, status=status, start=at(0), end=at(ended), result_json=result
    )
    store.record_turn(Turn(at=at(ended), ended=[end]))


@pytest.fixture
def statements(store: SqlStore) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) the store sends while the test runs."""
    seen: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", note)
    yield seen
    event.remove(store.engine, "before_cursor_execute", note)


def test_the_latest_success_of_each_process_asked_for(store: SqlStore) -> None:
    ran(store, "a", 1, ended=1, result={"rows": 1})
    ran(store, "a", 2, ended=5, result={"rows": 2})
    ran(store, "a", 3, ended=9, status=RunStatus.FAILED, result={"rows": 3})  # not a success
    ran(store, "b", 1, ended=2, result=None)  # succeeded, returned nothing
    ran(store, "c", 1, ended=3, status=RunStatus.FAILED)  # never succeeded
    ran(store, "leaf", 1, ended=4, result={"big": "x" * 100})  # not asked for
    found = store.last_results(["a", "b", "c", "unknown"])
    assert found == {"a": {"rows": 2}, "b": None}
    assert "c" not in found and "leaf" not in found


def test_asking_for_nothing_reads_nothing(
    store: SqlStore, statements: list[tuple[str, Any]]
) -> None:
    ran(store, "a", 1, ended=1, result=1)
    statements.clear()
    assert store.last_results([]) == {}
    assert not [s for s, _ in statements if "attempts" in s]


def test_one_statement_for_the_names_however_long_the_history(
    store: SqlStore, statements: list[tuple[str, Any]]
) -> None:
    for seq in range(1, 31):
        ran(store, "a", seq, ended=seq, result=seq)
        ran(store, "leaf", seq, ended=seq, result=seq)
    statements.clear()
    assert store.last_results(["a", "leaf"]) == {"a": 30, "leaf": 30}
    assert len([s for s, _ in statements if "attempts" in s]) == 1


def test_many_names_are_read_in_one_statement(
    store: SqlStore, statements: list[tuple[str, Any]]
) -> None:
    names = [f"p{i:04d}" for i in range(1_200)]
    ran(store, "p0007", 1, ended=1, result="seven")
    ran(store, "p1100", 1, ended=1, result="eleven hundred")
    statements.clear()
    assert store.last_results(names) == {"p0007": "seven", "p1100": "eleven hundred"}
    assert len([s for s, _ in statements if "attempts" in s]) == 1


def test_sqlite_seeks_each_process_by_index(
    sqlite_url: str,
) -> None:
    """The plan of the query on SQLite: no scan of the attempts table (so the start-up cost
    follows the number of ancestors, not the number of attempts ever recorded)."""
    store = SqlStore(sqlite_url)
    try:
        for seq in range(1, 6):
            ran(store, "a", seq, ended=seq, result=seq)
        seen: list[tuple[str, Any]] = []

        def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            seen.append((statement, parameters))

        event.listen(store.engine, "before_cursor_execute", note)
        try:
            store.last_results(["a", "b"])
        finally:
            event.remove(store.engine, "before_cursor_execute", note)
        [(statement, parameters)] = [(s, p) for s, p in seen if "attempts" in s]
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        details = [str(row[-1]) for row in plan]
        assert not [d for d in details if d.startswith("SCAN") and "attempts" in d], details
        assert any("ix_attempts_process_status_end" in d for d in details), details
    finally:
        store.close()


def test_a_starting_planner_keeps_the_results_of_ancestors_only(tmp_path: Path) -> None:
    """What the live driver loads at start-up: ``a`` (an ancestor of ``b``) and not ``leaf``."""
    from distributed import Client, LocalCluster

    from planner.live.dispatch import Dispatcher
    from planner.live.loop import LiveDriver

    path = tmp_path / "r.yaml"
    path.write_text(
        "processes:\n"
        "  a: {run: workflows.jobs.demo:noop}\n"
        "  b: {run: workflows.jobs.demo:noop, ancestors: [a]}\n"
        "  leaf: {run: workflows.jobs.demo:noop}\n"
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    try:
        store.apply(load_files([path]), now=at(0))
        ran(store, "a", 1, ended=1, result={"rows": 3})
        ran(store, "leaf", 1, ended=1, result={"big": "x" * 1_000})
        with (
            LocalCluster(
                processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            driver = LiveDriver(store, Dispatcher(client, remote=False), clock=lambda: at(2))
            assert driver.results == {"a": {"rows": 3}}
    finally:
        store.close()
