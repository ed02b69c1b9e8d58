"""The snapshot of the validated registry (``registry.storage.snapshot``), on SQLite files and real
PostgreSQL: a read of a registry unchanged since a writer validated it validates nothing and gives
exactly what validating the rows gives; any change of the rows (a direct SQL edit too), another
planner's snapshot or one that does not load, and the rows are validated again; read-only
commands never write it; the live planner's refresh is fenced by the lease.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text, update

import registry.definitions.stored
from registry.definitions.loader import load_files
from registry.errors import LeaseLost
from registry.storage import queries, snapshot
from registry.storage.sqlstore import SqlStore
from registry.storage.tables import registry_snapshot

T = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)

REGISTRY = """\
timezone: Europe/Madrid
slots: 3
pools: {warehouse: 2}
ranking: priority
retention: {runs: 90d, logs: 7d, decisions: null}
defaults: {retries: 2, retry_delay: 30s, timeout: 2h}
processes:
  a:
    command: ["python", "-m", "etl", "a"]
    params: {table: orders, nested: {rows: [1, 2.5, null]}}
    cron: "0 3 * * *"
    priority: 100
    reserve: true
  b:
    command: "true"
    ancestors: [a]
    not_before: "03:00"
    refresh_window: 6h
    pool: warehouse
    resources: {memory: 4e9}
    expected_duration: 20m
    retry_backoff: 2.0
    start_at: 2026-01-01T00:00:00
    missed: all
  fan:
    foreach: {x: {n: 1}, y: {n: 2}}
    command: "true"
    params: {n: "{item.n}"}
    every: 15m
    hold: true
  other: {command: "true", max_runs: 3, enabled: false}
"""

# A row that an operator broke with SQL, and the message that makes it invalid.
BREAK_A = "UPDATE processes SET max_active = 0 WHERE name = 'a'"
BROKEN_A = "(key max_active)"


def invoke(url: str, *args: str) -> Result:
    from planner.interfaces.cli import cli

    return CliRunner().invoke(cli, ["--db", url, *args], prog_name="planner")


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the validations of rows (calls of ``validate_stored``) from here on."""
    calls: list[int] = []
    real = registry.definitions.stored.validate_stored

    def counting(settings: Any, processes: Any, sources: Any = None) -> Any:
        calls.append(len(processes))
        return real(settings, processes, sources)

    monkeypatch.setattr(registry.definitions.stored, "validate_stored", counting)
    return calls


@pytest.fixture
def no_validation(applied: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the registry is applied, validating rows fails the test."""
    monkeypatch.setattr(registry.definitions.stored, "validate_stored", _refuse)


@pytest.fixture
def applied(store: SqlStore, tmp_path: Path) -> Iterator[SqlStore]:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    store.apply(load_files([path]), now=T - timedelta(days=1))
    yield store


def sql(store: SqlStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


def validated(store: SqlStore) -> snapshot.Loaded:
    """What validating the rows gives, now."""
    with store.engine.connect() as conn:
        return queries.load_registry(conn)


def stored_row(store: SqlStore) -> tuple[int, str, bytes] | None:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(
                registry_snapshot.c.revision, registry_snapshot.c.identity, registry_snapshot.c.data
            )
        ).first()
    return None if row is None else (int(row.revision), row.identity, bytes(row.data))


def sources(loaded: snapshot.Loaded) -> dict[str, Any]:
    """``source`` is left out of ``ProcessDef``'s equality: compared on its own."""
    return {name: p.source for name, p in loaded[0].processes.items()}


# -- a read of an unchanged registry validates nothing ------------------------------------------


def test_after_apply_a_read_is_the_snapshot_and_equals_validating_the_rows(
    applied: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = validated(applied)
    assert set(expected[0].processes) == {"a", "b", "fan.x", "fan.y", "other"}
    row = stored_row(applied)
    assert row is not None and row[:2] == (applied.registry_revision(), snapshot.identity())

    monkeypatch.setattr(registry.definitions.stored, "validate_stored", _refuse)
    loaded = applied.load_registry()
    assert loaded == expected
    assert sources(loaded) == sources(expected)
    assert loaded[0].processes["fan.x"].template == "fan"
    with SqlStore(applied.url, create=False) as other:  # another process, say a CLI command
        assert other.load_registry() == expected


def test_plan_status_explain_and_show_read_the_snapshot(
    applied: SqlStore, no_validation: None
) -> None:
    for args in (("plan", "--format", "json"), ("status",), ("explain", "b"), ("show", "a")):
        result = invoke(applied.url, *args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    decisions = json.loads(
        invoke(applied.url, "plan", "--at", T.isoformat(), "--format", "json").stdout
    )["decisions"]
    assert {d["process"] for d in decisions} == {"a", "b", "fan.x", "fan.y", "other"}


def test_a_snapshot_keeps_invalid_rows_and_broken_settings(
    applied: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql(applied, BREAK_A)
    sql(applied, """UPDATE settings SET document = '{"timezone": "Mars/Base", "slots": 2}'""")
    expected = applied.load_registry(refresh=True)  # validated, and kept
    assert BROKEN_A in expected[0].invalid["a"] and expected[0].problems
    monkeypatch.setattr(registry.definitions.stored, "validate_stored", _refuse)
    loaded = applied.load_registry()
    assert loaded == expected and sources(loaded) == sources(expected)
    assert "unknown timezone 'Mars/Base'" in loaded[0].problems[0]


def test_apply_and_set_leave_a_snapshot_of_the_revision_they_leave(
    applied: SqlStore, validations: list[int], tmp_path: Path
) -> None:
    revision = applied.registry_revision()
    applied.update_process("b", {"priority": 7})  # the snapshot was fresh: read, not validated
    assert validations == [5]  # once, after the write: the rows as they now are
    assert applied.registry_revision() > revision
    row = stored_row(applied)
    assert row is not None and row[0] == applied.registry_revision()
    assert applied.load_registry()[0].processes["b"].priority == 7
    assert validations == [5]

    applied.update_process("b", {"priority": 7})  # nothing to write: nothing to validate
    assert validations == [5]
    changed = (tmp_path / "registry.yaml").read_text().replace("priority: 100", "priority: 99")
    (tmp_path / "registry.yaml").write_text(changed)
    applied.apply(load_files([tmp_path / "registry.yaml"]), now=T)
    assert validations == [5, 5]
    assert applied.load_registry()[0].processes["a"].priority == 99
    assert validations == [5, 5]
    assert stored_row(applied) is not None
    assert stored_row(applied)[0] == applied.registry_revision()  # type: ignore[index]


def test_an_apply_that_changes_nothing_validates_nothing(
    applied: SqlStore, validations: list[int], tmp_path: Path
) -> None:
    before = stored_row(applied)
    applied.apply(load_files([tmp_path / "registry.yaml"]), now=T)
    assert validations == []
    assert stored_row(applied) == before


# -- any change of the rows, and the rows are validated again ----------------------------------


def test_a_direct_sql_edit_is_seen_at_the_next_read(
    applied: SqlStore, validations: list[int]
) -> None:
    sql(applied, "UPDATE processes SET priority = 42 WHERE name = 'b'")
    loaded = applied.load_registry()
    assert validations == [5]
    assert loaded == validated(applied)
    assert loaded[0].processes["b"].priority == 42


def test_a_bad_sql_edit_is_refused_for_that_process_alone(
    applied: SqlStore, validations: list[int]
) -> None:
    sql(applied, BREAK_A)
    registry_, _ = applied.load_registry()
    assert validations == [5]
    assert BROKEN_A in registry_.invalid["a"]
    assert set(registry_.processes) == {"b", "fan.x", "fan.y", "other"}
    decisions = json.loads(
        invoke(applied.url, "plan", "--at", T.isoformat(), "--format", "json").stdout
    )["decisions"]
    reasons = {d["process"]: d["reasons"] for d in decisions}
    assert reasons["a"][0]["code"] == "invalid"
    assert reasons["b"] == [{"code": "ancestors", "detail": "a (invalid)"}]


def test_a_snapshot_of_another_planner_is_ignored(
    applied: SqlStore, validations: list[int]
) -> None:
    with applied.engine.begin() as conn:
        conn.execute(update(registry_snapshot).values(identity="0" * 64))
    assert applied.load_registry() == validated(applied)
    assert validations == [5, 5]  # the read, and the check


@pytest.mark.parametrize(
    "data", [b"not a pickle", pickle.dumps({"a": 1}), pickle.dumps(("x", {}))[:-3]]
)
def test_a_snapshot_that_does_not_load_is_ignored(
    applied: SqlStore, validations: list[int], data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with applied.engine.begin() as conn:
        conn.execute(update(registry_snapshot).values(data=data))
    with caplog.at_level(logging.WARNING, logger="registry.storage.snapshot"):
        loaded = applied.load_registry()
    assert validations == [5]
    assert loaded == validated(applied)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "ignoring the registry snapshot"
    ]


def test_a_stale_snapshot_is_not_written(applied: SqlStore) -> None:
    before = stored_row(applied)
    revision = applied.registry_revision()
    stale = validated(applied)
    sql(applied, "UPDATE processes SET priority = 1 WHERE name = 'b'")
    with applied.engine.begin() as conn:
        assert not snapshot.write(conn, stale, revision=revision)
    assert stored_row(applied) == before


def test_a_registry_that_does_not_pickle_is_applied_without_a_snapshot(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(loaded: Any) -> bytes:
        raise TypeError("cannot pickle 'mappingproxy' object")

    monkeypatch.setattr(snapshot, "_dumps", refuse)
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    assert store.apply(load_files([path]), now=T).added
    assert stored_row(store) is None
    assert store.load_registry() == validated(store)


# -- who writes it ------------------------------------------------------------------------------


def test_read_only_commands_never_write_the_snapshot(
    applied: SqlStore, validations: list[int]
) -> None:
    sql(applied, "UPDATE processes SET priority = 3 WHERE name = 'b'")
    before = stored_row(applied)
    for args in (("plan",), ("status",), ("explain", "b"), ("show", "b")):
        result = invoke(applied.url, *args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    applied.load_registry()
    assert stored_row(applied) == before
    assert len(validations) == 5  # each of them validated the rows

    applied.load_registry(refresh=True)  # the live planner's reload keeps it
    row = stored_row(applied)
    assert row is not None and row[0] == applied.registry_revision()
    applied.load_registry()
    assert len(validations) == 6


def test_the_refresh_of_a_planner_that_lost_its_lease_writes_nothing(applied: SqlStore) -> None:
    timeout = timedelta(seconds=10)
    assert applied.acquire_lease("first", now=T, timeout=timeout) is not None
    sql(applied, "UPDATE processes SET priority = 3 WHERE name = 'b'")
    with SqlStore(applied.url) as second:
        assert second.acquire_lease("second", now=T + timedelta(minutes=1), timeout=timeout)
        before = stored_row(applied)
        with pytest.raises(LeaseLost):
            applied.load_registry(refresh=True)
        assert stored_row(applied) == before
        second.load_registry(refresh=True)
    row = stored_row(applied)
    assert row is not None and row[0] == applied.registry_revision()


def test_a_new_database_reads_without_a_snapshot(store: SqlStore) -> None:
    assert stored_row(store) is None
    loaded, first_applied = store.load_registry()
    assert loaded.processes == {} and first_applied == {}
    assert stored_row(store) is None


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the rows were validated again")


def test_set_on_a_stale_snapshot_validates_once_when_it_writes_nothing(
    applied: SqlStore, validations: list[int]
) -> None:
    sql(applied, "UPDATE processes SET priority = 3 WHERE name = 'other'")
    applied.update_process("b", {"priority": 0})  # validated to revise it; nothing to write
    assert validations == [5]
    row = stored_row(applied)
    assert row is not None and row[0] == applied.registry_revision()  # that validation, kept
    assert applied.load_registry()[0].processes["other"].priority == 3
    assert validations == [5]
