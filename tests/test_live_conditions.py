"""Conditions on a real in-process cluster (``planner run``'s own wiring) and on real databases.

``ask`` is the one place a condition is evaluated; ``ConditionWatcher`` asks it off the loop
when the core says so: while it is false, every ``condition_interval``, and once more before a
start that a true answer waited for. A SQL condition runs against a real PostgreSQL table, alone
and under a running planner.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from planner.core.events import ConditionAnswered
from planner.core.readiness import CONDITION_FRESH
from planner.live.conditions import ask
from planner.live.loop import LiveDriver
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


def _driver(drivers: list[LiveDriver]) -> LiveDriver:
    """The driver ``run_planner`` gave ``on_ready``, once it is there."""
    wait_for(lambda: drivers, timeout=60, what="the planner to drive")
    return drivers[0]


def _answer_after(driver: LiveDriver, name: str, after: datetime | None) -> ConditionAnswered:
    """The core's answer of ``name``'s condition, once it holds one given after ``after``."""

    def newer() -> ConditionAnswered | None:
        with driver.lock:
            answer = driver.core.states[name].condition
        return answer if answer is not None and (after is None or answer.at > after) else None

    found = wait_for(newer, timeout=60, what=f"an answer of {name}'s condition after {after}")
    assert found is not None
    return found


@pytest.mark.integration
def test_a_true_answer_that_waited_for_a_slot_is_asked_again_before_the_start(
    tmp_path: Path,
) -> None:
    """True, then the source goes away while the process waits for a slot: asked again before
    the start (its interval is an hour), it answers false, and nothing starts."""
    marker = tmp_path / "source-ready"
    marker.write_text("")
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"""
slots: 1
processes:
  blocker:
    run: tests.live_jobs:gate
    params: {{name: blocker}}
    priority: 10
  load:
    run: tests.live_jobs:touch
    params: {{marker: "{marker}"}}
    condition: tests.live_jobs:marker_exists
    condition_interval: 1h
"""
    )
    store = SqlStore(f"sqlite:///{tmp_path}/planner.db")
    store.apply(load_files([registry]), now=datetime.now(UTC))
    drivers: list[LiveDriver] = []
    planner = threading.Thread(
        target=run_planner,
        args=(store,),
        kwargs={
            "processes": False,
            "dashboard_address": ":0",
            "on_ready": lambda driver, _conn: drivers.append(driver),
        },
        daemon=True,
    )
    planner.start()
    try:
        assert live_jobs.STARTED["blocker"].wait(60)
        driver = _driver(drivers)
        first = _answer_after(driver, "load", None)
        assert first.value  # true, but the one slot is busy
        marker.unlink()  # the source goes away while it waits
        # asked again while it waits, before its true answer is too old to start on, not in
        # an hour
        wait_for(lambda: live_jobs.CALLS["asked:load"] >= 2, timeout=60, what="a second ask")
        again = _answer_after(driver, "load", first.at)
        assert not again.value and (again.at - first.at) >= CONDITION_FRESH / 2
        live_jobs.RELEASE["blocker"].set()  # the slot frees
        wait_for(
            lambda: [a.status for a in store.history("blocker")] == [RunStatus.SUCCEEDED],
            timeout=60,
            what="the blocker's end to be recorded",
        )
        with driver.lock:
            (reason,) = driver.core.states["load"].reasons
        assert reason.code.value == "condition" and reason.detail.startswith("false")
        assert store.history("load") == [] and live_jobs.CALLS[f"ran:{marker}"] == 0
        assert live_jobs.CALLS["asked:load"] == 2
    finally:
        live_jobs.RELEASE["blocker"].set()
        if drivers:
            drivers[0].stop()
        planner.join(60)
        store.close()
    assert not planner.is_alive()


@pytest.mark.postgres
@pytest.mark.integration
def test_a_planner_starts_a_run_once_a_row_appears_in_a_postgresql_table(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end on PostgreSQL (the planner's own tables and the condition's): a SQL condition
    answers false while the table has no row for today, then true once one is inserted."""
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE staging_orders (day date NOT NULL)"))
    monkeypatch.setenv("ETL_DB", pg_url)  # ``db`` names the variable holding the URL
    marker = tmp_path / "loaded"
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        f"""
processes:
  load:
    run: tests.live_jobs:touch
    params: {{marker: "{marker}"}}
    condition:
      sql: "SELECT count(*) > 0 FROM staging_orders WHERE day = CURRENT_DATE"
      db: ETL_DB
    condition_interval: 0.2s
  report:
    run: workflows.jobs.demo:noop
    ancestors: [load]
"""
    )
    store = SqlStore(pg_url)
    store.apply(load_files([registry]), now=datetime.now(UTC))
    drivers: list[LiveDriver] = []
    done: list[object] = []
    planner = threading.Thread(
        target=lambda: done.append(
            run_planner(
                store,
                processes=False,
                until_idle=True,
                dashboard_address=":0",
                on_ready=lambda driver, _conn: drivers.append(driver),
            )
        ),
        daemon=True,
    )
    planner.start()
    try:
        driver = _driver(drivers)
        first = _answer_after(driver, "load", None)
        # false, and asked again at its interval: nothing starts meanwhile
        again = _answer_after(driver, "load", first.at)
        assert (first.value, again.value) == (False, False)
        assert again.detail == "false (it returned False)"
        assert store.history() == [] and planner.is_alive()
        inserted = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO staging_orders VALUES (CURRENT_DATE)"))
        planner.join(120)
        assert not planner.is_alive() and done
        runs = {a.process: a for a in store.history()}
        assert {p: a.status for p, a in runs.items()} == {
            "load": RunStatus.SUCCEEDED,
            "report": RunStatus.SUCCEEDED,
        }
        assert runs["load"].start is not None and runs["load"].start >= inserted
        assert live_jobs.CALLS[f"ran:{marker}"] == 1
    finally:
        if drivers:
            drivers[0].stop()
        planner.join(60)
        store.close()
        engine.dispose()
