"""A backfill of a process with ancestors: each of its runs obeys the ancestors rule as any
trigger does, so the first starts on the ancestors' last success and each later one waits
for a fresher one (the SPEC: "each ancestor has a successful run that finished after P's last
start"). Backfilling the root instead lets its descendants follow its runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.core.events import RunFinished, Step, TriggerRequested
from planner.core.planner import Planner
from planner.interfaces.cli import cli
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.storage.sqlstore import SqlStore
from tests.factories import at, finish, proc, reasons_of, registry, started

FIRES = [at(2, day=-3), at(2, day=-2), at(2, day=-1)]


def _backfill(process: str, now: datetime) -> list[TriggerRequested]:
    return [
        TriggerRequested(process=process, at=now, request_id=n, scheduled=fire)
        for n, fire in enumerate(FIRES, 1)
    ]


def test_each_backfilled_run_after_the_first_waits_for_a_fresh_ancestor_success() -> None:
    p = Planner(
        registry(proc("root"), proc("child", cron="0 2 * * *", ancestors=["root"]), slots=4),
        now=at(0),
    )
    assert started(p.handle(at(0))) == ["root"]
    finish(p, "root", at(0, 1))
    step = p.handle(at(0, 5), *_backfill("child", at(0, 5)))
    assert [(s.process, s.scheduled) for s in step.starts] == [("child", FIRES[0])]
    step = finish(p, "child", at(0, 10))
    assert started(step) == []  # the next fire waits: root has not succeeded since
    assert "root" in reasons_of(p, "child")["ancestors"]
    # a fresh success of the ancestor lets the next backfilled run start, and only that one
    step = p.handle(at(1), TriggerRequested(process="root", at=at(1), request_id=9))
    assert started(step) == ["root"]
    step = finish(p, "root", at(1, 1))
    assert [(s.process, s.scheduled) for s in step.starts] == [("child", FIRES[1])]
    assert started(finish(p, "child", at(1, 5))) == []


def _drain(p: Planner, step: Step) -> list[tuple[str, datetime]]:
    """Finish every run the planner starts, one a minute, oldest first, until none is left;
    what started, in order: (process, scheduled)."""
    flights, order = list(step.starts), []
    minute = 0
    while flights:
        start = flights.pop(0)
        order.append((start.process, start.scheduled))
        minute += 1
        when = at(0, minute)
        ended = RunFinished(run_id=start.run_id, status=RunStatus.SUCCEEDED, at=when)
        flights += p.handle(when, ended).starts
    return order


@pytest.mark.parametrize(("slots", "reports"), [(4, 3), (1, 1)])
def test_backfilling_the_root_its_descendants_follow_as_capacity_allows(
    slots: int, reports: int
) -> None:
    """A descendant with ``refresh_window`` is due again after each success of its ancestor:
    with a slot free it runs after each backfilled run of the root; when the root's runs (a
    recurrent process, ranked first) take the only slot, it runs once, after the last."""
    p = Planner(
        registry(
            proc("root", cron="0 2 * * *"),
            proc("report", ancestors=["root"], refresh_window=1),
            slots=slots,
        ),
        now=at(0),
    )
    order = _drain(p, p.handle(at(0), *_backfill("root", at(0))))
    assert [when for name, when in order if name == "root"] == FIRES
    assert [name for name, _ in order].count("report") == reports
    assert order[-1][0] == "report"  # after the last root run


@pytest.mark.integration
def test_a_backfill_below_an_ancestor_runs_one_fire_per_fresh_ancestor_success(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        "processes:\n"
        "  root: {run: workflows.jobs.demo:noop}\n"
        # yearly: applied now, it does not fire on its own while the test runs
        "  child: {run: workflows.jobs.demo:noop, cron: '0 2 1 1 *', ancestors: [root]}\n"
    )
    store = SqlStore(url)
    store.apply(load_files([registry_file]), now=datetime.now(UTC))
    runner = CliRunner()

    def until_idle() -> list[datetime]:
        """Run a planner until idle; the scheduled times of child's runs so far."""
        run_planner(store, processes=False, until_idle=True, dashboard_address=":0")
        return sorted(a.scheduled for a in store.history("child"))

    assert until_idle() == []  # root runs once; child is not due before its first fire
    args = ["--db", url, "backfill", "child", "--from", "2021-01-01", "--to", "2023-12-31"]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "each run after the first waits for a success of 'root'" in out.output
    fires = [datetime(year, 1, 1, 2, tzinfo=UTC) for year in (2021, 2022, 2023)]
    assert until_idle() == fires[:1]  # the others wait for root
    assert len(store.pending_requests()) == 2
    explained = json.loads(
        runner.invoke(cli, ["--db", url, "explain", "child", "--format", "json"]).output
    )
    codes = {r["code"] for r in explained["reasons"]}
    assert "ancestors" in codes, explained
    assert runner.invoke(cli, ["--db", url, "trigger", "root"]).exit_code == 0
    assert until_idle() == fires[:2]  # one more fire per fresh success of root
    assert all(a.status is RunStatus.SUCCEEDED for a in store.history("child"))
    assert len(store.pending_requests()) == 1
    store.close()
