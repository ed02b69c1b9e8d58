"""Conditions on a real in-process cluster (``planner run``'s own wiring) and on real databases.

``ask`` is the one place a condition is evaluated; ``ConditionWatcher`` asks it off the loop
when the core says so. A SQL condition runs against a real PostgreSQL table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from planner.live.conditions import ask
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.model import ProcessDef
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.waiting import wait_for

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_jobs() -> Iterator[None]:
    live_jobs.reset()
    yield
    live_jobs.reset()


def _cond(condition: object, **params: object) -> ProcessDef:
    return ProcessDef(name="p", run="workflows.jobs.demo:noop", condition=condition, params=params)  # type: ignore[arg-type]


def test_a_callable_condition_is_truthy_or_not_and_an_error_counts_as_false(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ready"
    sensor = _cond("tests.live_jobs:marker_exists", marker=str(marker))
    assert ask(sensor, NOW) == (False, "false (it returned False)")
    marker.write_text("")
    assert ask(sensor, NOW) == (True, "")
    value, detail = ask(_cond("tests.live_jobs:broken_condition"), NOW)
    assert not value and detail == "error: OSError: the source is unreachable"
    value, detail = ask(_cond("tests.live_jobs:nope"), NOW)
    assert not value and detail.startswith("error: AttributeError")


@pytest.mark.postgres
def test_a_sql_condition_on_a_real_postgresql_table(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(pg_url)
    query = "SELECT count(*) > 0 FROM staging_orders WHERE day = CURRENT_DATE"
    try:
        missing, detail = ask(_cond({"sql": query, "db": pg_url}), NOW)
        assert not missing and detail.startswith("error: ProgrammingError")  # no table yet
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE staging_orders (day date NOT NULL)"))
        assert ask(_cond({"sql": query, "db": pg_url}), NOW) == (False, "false (it returned False)")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO staging_orders VALUES (CURRENT_DATE)"))
        # ``db`` may name an environment variable that holds the URL
        monkeypatch.setenv("ETL_DB", pg_url)
        assert ask(_cond({"sql": query, "db": "ETL_DB"}), NOW) == (True, "")
        monkeypatch.delenv("ETL_DB")
        unset, detail = ask(_cond({"sql": query, "db": "ETL_DB"}), NOW)
        assert not unset and "'ETL_DB'" in detail and "not set" in detail
    finally:
        engine.dispose()


@pytest.mark.integration
def test_no_start_before_the_condition_turns_true_when_a_file_appears(tmp_path: Path) -> None:
    marker = tmp_path / "source-ready"
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"""
processes:
  load:
    run: tests.live_jobs:touch
    params: {{marker: "{marker}"}}
    condition: tests.live_jobs:marker_exists
    condition_interval: 0.2s
  report:
    run: workflows.jobs.demo:noop
    ancestors: [load]
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([registry]), now=datetime.now(UTC))
    done: list[object] = []
    planner = threading.Thread(
        target=lambda: done.append(
            run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
        ),
        daemon=True,
    )
    planner.start()
    try:
        # asked, false, and asked again at its interval: nothing starts meanwhile
        wait_for(lambda: live_jobs.CALLS["asked:load"] >= 3, timeout=60, what="three asks")
        assert store.history() == [] and planner.is_alive()  # a sensor keeps --until-idle up
        appeared = datetime.now(UTC)
        marker.write_text("")
        planner.join(120)
        assert not planner.is_alive() and done
        runs = {a.process: a for a in store.history()}
        assert {p: a.status for p, a in runs.items()} == {
            "load": RunStatus.SUCCEEDED,
            "report": RunStatus.SUCCEEDED,
        }
        assert runs["load"].start is not None and runs["load"].start >= appeared
        assert live_jobs.CALLS[f"ran:{marker}"] == 1
    finally:
        store.close()


def test_a_wish_older_than_its_answer_is_dropped_not_spun_on() -> None:
    from datetime import timedelta

    from planner.live.conditions import ConditionWatcher

    posted: list[object] = []
    watcher = ConditionWatcher(posted.append, lambda: NOW)
    sensor = _cond("tests.live_jobs:marker_exists", marker="/nonexistent")
    watcher._answered["p"] = NOW  # answered while the loop took a step with an older wish
    watcher.update({"p": (NOW - timedelta(seconds=1), sensor)})
    assert watcher.step(NOW) is None  # nothing left to wait for: the thread sleeps
    assert posted == []  # and it was not asked again
    watcher.update({"p": (NOW + timedelta(seconds=30), sensor)})  # the core's next wish
    assert watcher.step(NOW) == 30.0
