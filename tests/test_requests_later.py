"""Requests for other times: ``trigger --at`` (a later start) and ``backfill`` (past fires).

In the core a trigger is due from its ``at``; a backfill's trigger carries its fire time as the
run's ``scheduled`` and is satisfied only by its own run. Live, a backfill of three daily fires
runs three runs with those scheduled times.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.core.events import StartKind, TriggerRequested
from planner.core.planner import Planner
from planner.core.schedule import fires_between, zone
from planner.interfaces.cli import cli
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.factories import at, finish, proc, reasons_of, registry, started

D = timedelta(days=1)


def test_a_trigger_for_later_waits_until_its_time() -> None:
    p = Planner(registry(proc("x")), now=at(0))
    p.handle(at(0))
    finish(p, "x", at(0, 1))  # done: a single process runs once
    step = p.handle(at(0, 2), TriggerRequested(process="x", at=at(0, 2), due=at(5), request_id=7))
    assert started(step) == [] and step.next_wakeup == at(5)
    assert reasons_of(p, "x")["not_due"] == f"#7 at {at(5).isoformat()}"
    step = p.handle(at(5))
    assert started(step) == ["x"] and step.starts[0].kind is StartKind.TRIGGER
    assert step.starts[0].request_id == 7 and step.starts[0].scheduled == at(5)


def test_a_later_trigger_is_not_taken_by_a_run_that_starts_before_it() -> None:
    p = Planner(registry(proc("r", every=3600)), now=at(0))
    step = p.handle(at(0), TriggerRequested(process="r", at=at(0), due=at(2, 30), request_id=1))
    assert [s.request_id for s in step.starts] == [None]  # the 00:00 fire, not the trigger
    finish(p, "r", at(0, 1))
    assert [s.request_id for s in p.handle(at(1)).starts] == [None]  # the 01:00 fire
    finish(p, "r", at(1, 1))
    assert [s.request_id for s in p.handle(at(2)).starts] == [None]
    finish(p, "r", at(2, 1))
    step = p.handle(at(2, 30))  # the trigger's own run, between fires
    assert [(s.request_id, s.kind) for s in step.starts] == [(1, StartKind.TRIGGER)]


def test_backfill_triggers_run_each_with_its_fire_time_and_are_not_merged() -> None:
    p = Planner(registry(proc("daily", cron="0 0 * * *")), now=at(0, 30))
    fires = [at(0, day=-3), at(0, day=-2), at(0, day=-1)]
    events = [
        TriggerRequested(process="daily", at=at(0, 30), request_id=n, scheduled=fire)
        for n, fire in enumerate(fires, 1)
    ]
    scheduled = []
    step = p.handle(at(0, 30), *events)
    for n in range(3):
        assert [s.request_id for s in step.starts] == [n + 1]
        scheduled.append(step.starts[0].scheduled)
        step = finish(p, "daily", at(1, n))
    assert scheduled == fires and step.starts == ()


def test_fires_between_cron_and_every_grids() -> None:
    utc = zone("UTC")
    cron = fires_between(
        cron="0 3 * * *", every=None, tz=utc, anchor=at(0), start=at(0), end=at(3, day=2), limit=9
    )
    assert cron == [at(3), at(3, day=1), at(3, day=2)]
    grid = fires_between(
        cron=None,
        every=timedelta(hours=6),
        tz=utc,
        anchor=at(1),
        start=at(0, day=-1),
        end=at(0),
        limit=9,
    )
    assert grid == [at(1, day=-1), at(7, day=-1), at(13, day=-1), at(19, day=-1)]
    with pytest.raises(ValueError, match="more than 2 fires"):
        fires_between(
            cron="* * * * *", every=None, tz=utc, anchor=at(0), start=at(0), end=at(1), limit=2
        )


@pytest.mark.integration
def test_a_backfill_of_three_daily_fires_runs_three_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    registry_file = tmp_path / "daily.yaml"
    registry_file.write_text(
        "processes:\n"
        "  daily: {run: workflows.jobs.demo:noop, cron: '0 2 * * *'}\n"
        "  report: {run: workflows.jobs.demo:noop, ancestors: [daily], refresh_window: 1s}\n"
    )
    store = SqlStore(url)
    store.apply(load_files([registry_file]), now=datetime.now(UTC))
    runner = CliRunner()
    args = ["--db", url, "backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-03T23:59"]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "3 runs requested" in out.output
    plan = json.loads(runner.invoke(cli, ["--db", url, "plan", "--format", "json"]).output)
    assert [d["decision"] for d in plan["decisions"] if d["process"] == "daily"] == ["start"]
    status = runner.invoke(cli, ["--db", url, "status", "--format", "json"])
    assert status.exit_code == 0 and status.output.count('"daily"') >= 3, status.output

    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (
            run_planner(store, processes=False, until_idle=True, dashboard_address=":0"),
            done.set(),
        ),
        daemon=True,
    )
    thread.start()
    assert done.wait(120)
    daily = sorted(
        (a for a in store.history() if a.process == "daily"), key=lambda a: a.start or a.queued
    )
    assert [a.scheduled for a in daily] == [datetime(2026, 11, d, 2, tzinfo=UTC) for d in (1, 2, 3)]
    assert all(a.status is RunStatus.SUCCEEDED for a in daily)
    assert store.pending_requests() == []
    # a backfill of a single process is refused, with what to do instead
    bad = runner.invoke(cli, [*args[:3], "report", *args[4:]])
    assert bad.exit_code == 1 and "planner trigger report" in bad.output
    store.close()


@pytest.mark.integration
def test_retry_runs_a_failed_run_again_with_its_params_and_scheduled_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    marker = tmp_path / "fixed"
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        "processes:\n"
        f"  load: {{run: tests.live_jobs:fails_until, params: {{marker: '{marker}'}}}}\n"
    )
    store = SqlStore(url)
    store.apply(load_files([registry_file]), now=datetime.now(UTC))
    run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
    (failed,) = store.history()
    assert failed.status is RunStatus.FAILED and failed.run_id == "load-1"

    runner = CliRunner()
    listed = runner.invoke(cli, ["--db", url, "history", "--format", "json"])
    assert '"failed"' in listed.output
    marker.write_text("")
    out = runner.invoke(cli, ["--db", url, "retry", "load-1"])
    assert out.exit_code == 0 and "as a new run of 'load'" in out.output, out.output
    run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
    again = store.run("load-2")
    assert again.status is RunStatus.SUCCEEDED
    assert again.params == store.run("load-1").params == {"marker": str(marker)}
    assert again.scheduled == failed.scheduled
    # a run that succeeded, or one that does not exist, is refused
    assert runner.invoke(cli, ["--db", url, "retry", "load-2"]).exit_code == 1
    assert runner.invoke(cli, ["--db", url, "retry", "load-9"]).exit_code == 1
    store.close()


def test_trigger_at_is_a_durable_request_for_later(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        "timezone: Europe/Madrid\nprocesses:\n  x: {run: workflows.jobs.demo:noop}\n"
    )
    store = SqlStore(url)
    store.apply(load_files([registry_file]), now=datetime.now(UTC))
    runner = CliRunner()
    later = (datetime.now(UTC) + timedelta(hours=3)).astimezone(zone("Europe/Madrid"))
    naive = later.replace(tzinfo=None, microsecond=0).isoformat()
    out = runner.invoke(cli, ["--db", url, "trigger", "x", "--at", naive])
    assert out.exit_code == 0, out.output
    assert f"trigger 'x' at {later.replace(microsecond=0).isoformat()}" in out.output
    (request,) = store.pending_requests()
    assert request.due == later.replace(microsecond=0).astimezone(UTC)
    # until then the process starts on its own as usual: the trigger waits for its time
    plan = json.loads(runner.invoke(cli, ["--db", url, "plan", "--format", "json"]).output)
    assert [d["decision"] for d in plan["decisions"]] == ["start"]
    bad = runner.invoke(cli, ["--db", url, "trigger", "x", "--at", "tomorrow"])
    assert bad.exit_code == 1 and "ISO-8601" in bad.output
    store.close()


def test_status_shows_when_a_pending_trigger_is_due_and_what_a_backfill_stands_for(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    (tmp_path / "r.yaml").write_text(
        "processes:\n  daily: {run: workflows.jobs.demo:noop, cron: '0 2 * * *'}\n"
    )
    store = SqlStore(url)
    store.apply(load_files([tmp_path / "r.yaml"]), now=datetime.now(UTC))
    store.close()
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--db", url, "trigger", "daily", "--at", "2100-01-01T05:00"]).exit_code
        == 0
    )
    args = ["--db", url, "backfill", "daily", "--from", "2026-11-01", "--to", "2026-11-01T23:00"]
    assert runner.invoke(cli, args).exit_code == 0
    doc = json.loads(runner.invoke(cli, ["--db", url, "status", "--format", "json"]).output)
    triggers = doc["planner"]["triggers"]
    assert [(t["due"], t["scheduled"]) for t in triggers] == [
        ("2100-01-01T05:00:00+00:00", None),
        (None, "2026-11-01T02:00:00+00:00"),
    ]
    table = runner.invoke(cli, ["--db", url, "status"]).output
    assert "due 2100-01-01 05:00" in table and "backfill of 11-01 02:00" in table, table
