"""The Python API: processes defined in code are validated like YAML (every problem, with the
line that built them), applied atomically, then triggered and read back, on real databases."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from planner import Database, Process, Registry
from planner.live.runner import run_planner
from registry.errors import DefinitionError, InvalidRequest, ProcessNotFound
from registry.lifecycle import RunStatus
from registry.model import Retention
from registry.storage.sqlstore import SqlStore


def test_python_values_validate_like_their_yaml() -> None:
    registry = Registry(timezone="Europe/Madrid", slots=2, pools={"warehouse": 1})
    registry.add(
        Process("extract", run="workflows.jobs.demo:noop", cron="0 3 * * *", priority=100),
        Process(
            "report",
            run="workflows.jobs.demo:noop",
            ancestors=("extract",),
            not_before=time(4, 30),
            refresh_window=timedelta(hours=6),
            pool="warehouse",
            retry_on=["ConnectionError"],
        ),
    )
    defined = registry.validate()
    report = defined.processes["report"]
    assert defined.timezone == "Europe/Madrid" and defined.slots == 2
    assert report.ancestors == ("extract",) and report.not_before == time(4, 30)
    assert report.refresh_window == timedelta(hours=6) and report.retry_on == ("ConnectionError",)
    assert report.source is not None and report.source.file == __file__


def test_every_problem_is_reported_with_the_line_that_built_it() -> None:
    line = 0

    def here() -> int:
        import inspect

        frame = inspect.currentframe()
        assert frame is not None and frame.f_back is not None
        return frame.f_back.f_lineno

    registry = Registry()
    line = here() + 1
    registry.add(Process("a", run="workflows.jobs.demo:noop", cron="not a cron"))
    registry.add(Process("b", command="true", ancestors=["nope"], priority="high"))
    registry.add(Process("a", command="true"))
    with pytest.raises(DefinitionError) as caught:
        registry.validate()
    problems = caught.value.problems
    where = {(p.process, p.line) for p in problems}
    assert ("a", line) in where and ("b", line + 1) in where
    text = str(caught.value)
    assert "cron" in text and "'nope'" in text and "priority" in text
    assert "duplicate process 'a'" in text
    assert all(p.file == __file__ for p in problems)


def test_apply_is_atomic_and_replaces_the_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    first = Registry(Process("x", run="workflows.jobs.demo:noop"))
    assert first.apply(url).added == ("x",)
    before = sqlite3.connect(tmp_path / "planner.db").execute("SELECT * FROM processes").fetchall()
    broken = Registry(Process("y", run="workflows.jobs.demo:noop", every="soon"))
    with pytest.raises(DefinitionError):
        broken.apply(url)
    after = sqlite3.connect(tmp_path / "planner.db").execute("SELECT * FROM processes").fetchall()
    assert after == before  # nothing applied
    result = Registry(Process("y", run="workflows.jobs.demo:noop")).apply(url)
    assert result.added == ("y",) and result.removed == ("x",)


@pytest.mark.integration
def test_trigger_and_read_history_from_python(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    job = Process("job", run="tests.live_jobs:touch", params={"marker": "daily"}, max_runs=5)
    Registry(job).apply(url)
    with Database(url) as db:
        assert db.trigger("job", params={"marker": "2026-12-01"}).request is not None
        with pytest.raises(ProcessNotFound):
            db.trigger("nope")
        store = SqlStore(url)
        try:
            run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
        finally:
            store.close()
        (attempt,) = db.history("job")
        assert attempt.status is RunStatus.SUCCEEDED
        assert db.run(attempt.run_id).params == {"marker": "2026-12-01"}
        assert db.history(status="failed") == []
        (figures,) = db.stats(since=datetime.now(UTC) - timedelta(hours=1))
        assert figures.process == "job" and figures.succeeded == 1
        assert db.hold("job").done and not db.hold("job").done
        assert db.set("job", priority=7).priority == 7


def test_trigger_at_takes_iso_text_and_naive_times_in_the_registry_zone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    Registry(Process("x", run="workflows.jobs.demo:noop"), timezone="Europe/Madrid").apply(url)
    madrid = ZoneInfo("Europe/Madrid")
    with Database(url) as db:
        naive = db.trigger("x", at=datetime(2100, 1, 2, 3, 4))
        assert db.trigger("x", at="2100-07-02T03:04").done
        assert db.trigger("x", at=datetime(2100, 1, 2, 3, 4, tzinfo=UTC)).done
        assert " at 2100-01-02T03:04:00+01:00" in naive.message
        with pytest.raises(InvalidRequest, match=r"'tomorrow' is not .*ISO-8601"):
            db.trigger("x", at="tomorrow")
        with pytest.raises(InvalidRequest, match="at: a datetime or ISO-8601 text"):
            db.trigger("x", at=20990102)  # type: ignore[arg-type]
        dues = [r.due for r in db.store.pending_requests()]
    assert dues == [
        datetime(2100, 1, 2, 3, 4, tzinfo=madrid).astimezone(UTC),
        datetime(2100, 7, 2, 3, 4, tzinfo=madrid).astimezone(UTC),  # summer time: +02:00
        datetime(2100, 1, 2, 3, 4, tzinfo=UTC),
    ]  # the refused ones wrote nothing


def test_apply_says_which_settings_changed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    job = Process("x", run="workflows.jobs.demo:noop")
    assert Registry(job, slots=2).apply(url).settings == ()  # the first apply sets them
    result = Registry(job, slots=3, retention={"runs": "90d"}).apply(url)
    assert [(c.field, c.before, c.after) for c in result.settings] == [
        ("slots", 2, 3),
        ("retention", Retention(), Retention(runs=timedelta(days=90))),
    ]
    assert not result.unchanged and result.added == result.changed == ()
    assert Registry(job, slots=3, retention={"runs": "90d"}).apply(url).unchanged
