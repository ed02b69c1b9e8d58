"""Hot changes and bad rows must not crash the planner (issue 8: "it survives bad data").

A process removed and applied again continues its run numbering (run ids never collide); a row of
``processes`` or ``settings`` that an operator broke with SQL makes that one process ``invalid``
(or that one setting fall back to its default) while the rest keeps planning, in ``run`` as in
``plan``, ``status`` and ``explain``. Real SQLite files, and real PostgreSQL where the server can
hold the bad value at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from planner.core.events import RegistryChanged, RunFinished
from planner.core.planner import Planner
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.factories import at, finish, proc, reasons_of, registry, started

T = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)

DAG = """\
processes:
  a: {command: "true", priority: 1}
  b: {command: "true", ancestors: [a]}
  other: {command: "true"}
"""


def invoke(url: str, *args: str) -> Result:
    from planner.interfaces.cli import cli

    return CliRunner().invoke(cli, ["--db", url, *args], prog_name="planner")


@pytest.fixture
def applied(store_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    path = tmp_path / "dag.yaml"
    path.write_text(DAG)
    with SqlStore(store_url) as store:
        store.apply(load_files([path]), now=T - timedelta(days=1))
        yield store


def sql(store: SqlStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


def plan(url: str) -> dict[str, list[dict[str, str]]]:
    result = invoke(url, "plan", "--format", "json")
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return {d["process"]: d["reasons"] for d in json.loads(result.stdout)["decisions"]}


# -- run numbering ------------------------------------------------------------------------------


def test_a_process_removed_and_added_again_continues_its_run_numbering() -> None:
    p = Planner(registry(proc("x"), proc("y"), slots=2), now=at(0))
    assert started(p.handle(at(0))) == ["x", "y"]
    finish(p, "x", at(0, 1))
    p.handle(at(0, 2), RegistryChanged(registry=registry(proc("y"), slots=2)))
    step = p.handle(at(0, 3), RegistryChanged(registry=registry(proc("x"), proc("y"), slots=2)))
    assert [s.run_id for s in step.starts] == ["x-2"]  # not x-1 again


def test_run_numbering_survives_removal_a_restart_and_re_adding(sqlite_url: str) -> None:
    """The case that killed the planner: "run 'x-1': cannot go from 'succeeded' to 'queued'"."""
    with SqlStore(sqlite_url) as store:
        store.apply(registry(proc("x"), proc("y"), slots=2), now=at(0))
        p = Planner(store.load_registry()[0], now=at(0), histories=store.load_histories())
        [start, _] = p.handle(at(0)).starts
        store.create_run(run_id=start.run_id, process="x", scheduled=at(0), queued=at(0), params={})
        store.finish_attempt(start.run_id, 1, status=RunStatus.SUCCEEDED, end=at(0, 1))
        p.handle(at(0, 1), RunFinished(run_id="x-1", status=RunStatus.SUCCEEDED, at=at(0, 1)))
        store.apply(registry(proc("y"), slots=2), now=at(0, 2))
        # a planner started while x is out of the registry knows x only from its history
        p = Planner(store.load_registry()[0], now=at(0, 3), histories=store.load_histories())
        store.apply(registry(proc("x"), proc("y"), slots=2), now=at(0, 4))
        reg, applied = store.load_registry()
        step = p.handle(at(0, 4), RegistryChanged(registry=reg, applied_at=applied))
        [again] = [s for s in step.starts if s.process == "x"]
        assert again.run_id == "x-2"
        store.create_run(run_id="x-2", process="x", scheduled=at(0, 4), queued=at(0, 4), params={})


# -- a bad row of processes ---------------------------------------------------------------------

# (statement, the key its message names); each also works on PostgreSQL's typed columns
BOTH = [
    ("UPDATE processes SET document = '{}' WHERE name = 'a'", "needs 'run'"),
    (
        'UPDATE processes SET document = \'{"command": "true", "cron": "every day"}\' '
        "WHERE name = 'a'",
        "invalid cron expression 'every day' (key cron)",
    ),
    ("UPDATE processes SET max_active = 0 WHERE name = 'a'", "(key max_active)"),
    ("UPDATE processes SET max_active = -1 WHERE name = 'a'", "(key max_active)"),
    (
        'UPDATE processes SET document = \'{"command": "true", "every": -5}\' WHERE name = \'a\'',
        "(key every)",
    ),
    (
        "UPDATE processes SET document = "
        '\'{"command": "true", "ancestors": ["b"]}\' WHERE name = \'a\'',
        "dependency cycle a -> b -> a",
    ),
]
SQLITE_ONLY = [  # PostgreSQL's column types refuse these writes themselves
    ("UPDATE processes SET priority = 'abc' WHERE name = 'a'", "(key priority)"),
    ("UPDATE processes SET document = 'not json' WHERE name = 'a'", "not valid JSON"),
    ("UPDATE processes SET priority = 1e30 WHERE name = 'a'", "(key priority)"),
]


def _check_invalid_a(url: str, message: str) -> None:
    decisions = plan(url)
    [reason] = decisions["a"]
    assert reason["code"] == "invalid"
    assert reason["detail"].startswith("process 'a': ") and message in reason["detail"]
    assert decisions["other"] == []  # the rest of the registry keeps planning
    if "cycle" in message:
        assert decisions["b"][0]["code"] == "invalid"  # every process on the cycle
    else:
        assert decisions["b"] == [{"code": "ancestors", "detail": "a (invalid)"}]
    status = invoke(url, "status")
    assert status.exit_code == 0 and "invalid: process 'a'" in status.stdout
    explained = invoke(url, "explain", "a")
    assert explained.exit_code == 0 and "invalid" in explained.stdout


@pytest.mark.parametrize(("statement", "message"), BOTH + SQLITE_ONLY)
def test_a_bad_row_is_one_invalid_process_on_sqlite(
    sqlite_url: str, tmp_path: Path, statement: str, message: str
) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text(DAG)
    with SqlStore(sqlite_url) as store:
        store.apply(load_files([path]), now=T)
        sql(store, statement)
    _check_invalid_a(sqlite_url, message)


@pytest.mark.postgres
@pytest.mark.parametrize(("statement", "message"), BOTH)
def test_a_bad_row_is_one_invalid_process_on_postgresql(
    pg_url: str, tmp_path: Path, statement: str, message: str
) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text(DAG)
    with SqlStore(pg_url) as store:
        store.apply(load_files([path]), now=T)
        sql(
            store,
            statement.replace("SET document = '", "SET document = CAST('").replace(
                "' WHERE", "' AS JSON) WHERE"
            )
            if "document" in statement
            else statement,
        )
    _check_invalid_a(pg_url, message)


def test_a_bad_setting_falls_back_to_its_default(applied: SqlStore) -> None:
    sql(
        applied,
        'UPDATE settings SET document = \'{"timezone": "Mars/Base", "slots": -1}\''
        if applied.engine.dialect.name == "sqlite"
        else "UPDATE settings SET document = "
        'CAST(\'{"timezone": "Mars/Base", "slots": -1}\' AS JSON)',
    )
    reg, _ = applied.load_registry()
    assert (reg.timezone, reg.slots) == ("UTC", None)
    assert sorted(reg.processes) == ["a", "b", "other"]
    assert any("unknown timezone 'Mars/Base'" in p for p in reg.problems)
    assert any("(slots); using its default" in p for p in reg.problems)
    url = applied.url
    assert plan(url)["a"] == []
    status = invoke(url, "status")
    assert "registry problem: settings: unknown timezone 'Mars/Base'" in status.stdout


def test_settings_that_are_not_json_fall_back_to_the_defaults(sqlite_url: str) -> None:
    with SqlStore(sqlite_url) as store:
        store.apply(registry(proc("a"), timezone="Europe/Madrid"), now=T)
        sql(store, "UPDATE settings SET document = 'oops'")
        reg, _ = store.load_registry()
    assert reg.timezone == "UTC" and list(reg.processes) == ["a"]
    assert reg.problems[0].startswith("settings: the document is not valid JSON")


def test_a_broken_row_is_logged_once_not_at_every_load(
    applied: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    sql(applied, "UPDATE processes SET max_active = 0 WHERE name = 'a'")
    with caplog.at_level(logging.WARNING, logger="registry.storage.sqlstore"):
        for _ in range(3):
            applied.load_registry()
    assert [r.getMessage() for r in caplog.records] == [
        "registry in the database: process 'a': input should be greater than or equal to 1, "
        "got 0 (key max_active)"
    ]


def test_apply_repairs_a_broken_row_and_set_names_it(applied: SqlStore, tmp_path: Path) -> None:
    sql(applied, "UPDATE processes SET max_active = 0 WHERE name = 'a'")
    held = invoke(applied.url, "hold", "a")
    assert held.exit_code == 1 and "process 'a': input should be" in held.stderr
    path = tmp_path / "dag.yaml"  # written by the fixture
    assert applied.apply(load_files([path]), now=T).changed == ("a",)
    reg, _ = applied.load_registry()
    assert reg.invalid == {} and reg.processes["a"].max_active == 1


# -- the core: hot changes that make a process invalid ------------------------------------------


def test_a_process_turning_invalid_keeps_its_run_accounted_and_blocks_its_descendants() -> None:
    good = registry(proc("a"), proc("b", ancestors=["a"]), proc("c"), slots=1)
    p = Planner(good, now=at(0))
    assert started(p.handle(at(0))) == ["a"]
    bad = registry(proc("b", ancestors=["a"]), proc("c"), slots=1)
    bad = type(bad)(
        processes=bad.processes, slots=1, invalid={"a": "process 'a': invalid cron (key cron)"}
    )
    step = p.handle(at(0, 1), RegistryChanged(registry=bad))
    assert step.starts == ()  # a's run still holds the only slot
    assert p.in_flight == 1
    step = finish(p, "a", at(0, 2))  # its run ends: counted, not retried, not started again
    assert started(step) == ["c"]
    assert reasons_of(p, "a") == {"invalid": "process 'a': invalid cron (key cron)"}
    assert reasons_of(p, "b") == {"ancestors": "a (invalid)"}
    finish(p, "c", at(0, 3))
    step = p.handle(at(0, 4), RegistryChanged(registry=good))  # repaired
    # a's success while it was invalid counts: b has a fresh ancestor, a single a is done
    assert started(step) == ["b"]
    assert reasons_of(p, "a") == {"done": "single process already succeeded"}


# -- the live driver: hot changes while it runs -------------------------------------------------


@pytest.mark.integration
def test_the_live_planner_survives_removal_re_adding_and_a_bad_row(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    from planner.live.dispatch import Dispatcher
    from planner.live.loop import LiveDriver, utcnow

    both = tmp_path / "both.yaml"
    both.write_text(
        "processes:\n  x: {run: workflows.jobs.demo:noop}\n  y: {run: workflows.jobs.demo:noop}\n"
    )
    only_y = tmp_path / "y.yaml"
    only_y.write_text("processes:\n  y: {run: workflows.jobs.demo:noop}\n")
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
        SqlStore(f"sqlite:///{tmp_path}/planner.db") as store,
    ):
        store.apply(load_files([both]), now=utcnow())
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
        driver.run(until_idle=True)
        store.apply(load_files([only_y]), now=utcnow())
        driver.run(until_idle=True)  # x leaves the registry
        store.apply(load_files([both]), now=utcnow())  # x is back ...
        sql(store, "UPDATE processes SET max_active = 0 WHERE name = 'y'")  # ... y is broken
        summary = driver.run(until_idle=True)
        assert summary.statuses["succeeded"] == 3
        runs = sorted((a.run_id, a.status.value) for a in store.history())
        assert runs == [("x-1", "succeeded"), ("x-2", "succeeded"), ("y-1", "succeeded")]
        assert driver.core.states["y"].reasons[0].code.value == "invalid"
