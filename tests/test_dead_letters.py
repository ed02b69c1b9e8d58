"""Dead letters: ``history --status failed`` lists the runs that ended without succeeding (by
their final status, not an attempt's), ``retry`` remembers the run it retries, and a run is
not retried twice while a retry of it waits, runs or succeeded — in the store (SQLite and
PostgreSQL), over the real command line and a real planner, and over real HTTP (409).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from planner.interfaces.cli import cli
from planner.live.runner import run_planner
from registry.definitions.loader import load_files
from registry.errors import Conflict
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef
from registry.storage.sqlstore import SqlStore
from tests import live_jobs
from tests.live_api import AUTH, serving

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
DEAD = {RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED}


def _run(
    store: SqlStore,
    run_id: str,
    outcomes: Sequence[RunStatus],
    *,
    when: datetime = T0,
    request_id: int | None = None,
) -> None:
    """A run of ``p`` whose attempts end in ``outcomes``, each but the last retried."""
    store.create_run(
        run_id=run_id,
        process="p",
        scheduled=T0,
        queued=when,
        params={"day": "03-01"},
        request_id=request_id,
    )
    for n, status in enumerate(outcomes, 1):
        at = when + timedelta(minutes=n)
        if n > 1:
            store.retry_run(run_id, attempt=n, queued=at)
        store.attempt_started(run_id, n, start=at, worker="tcp://w:1")
        last = n == len(outcomes)
        store.finish_attempt(
            run_id, n, status=status, end=at, retry_at=None if last else at + timedelta(1)
        )


def test_the_dead_letters_are_runs_by_their_final_status(store: SqlStore) -> None:
    store.apply(RegistryDef(processes={"p": ProcessDef(name="p", command="true")}), now=T0)
    _run(store, "p-1", [RunStatus.FAILED, RunStatus.SUCCEEDED])  # a retry saved it
    _run(store, "p-2", [RunStatus.FAILED, RunStatus.FAILED], when=T0 + timedelta(hours=1))
    _run(store, "p-3", [RunStatus.TIMED_OUT], when=T0 + timedelta(hours=2))
    _run(store, "p-4", [RunStatus.CANCELLED], when=T0 + timedelta(hours=3))

    dead = store.runs_in_status(DEAD)
    assert [(a.run_id, a.attempt, a.status) for a in dead] == [
        ("p-4", 1, RunStatus.CANCELLED),
        ("p-3", 1, RunStatus.TIMED_OUT),
        ("p-2", 2, RunStatus.FAILED),  # its latest attempt, once
    ]
    assert dead[0].params == {"day": "03-01"}
    assert [a.run_id for a in store.runs_in_status({RunStatus.SUCCEEDED})] == ["p-1"]
    assert [a.run_id for a in store.runs_in_status(DEAD, limit=1)] == ["p-4"]
    since = T0 + timedelta(hours=2)
    assert [a.run_id for a in store.runs_in_status(DEAD, since=since)] == ["p-4", "p-3"]
    assert store.runs_in_status(DEAD, "nobody") == []


def test_a_run_is_retried_again_only_once_its_retries_gave_up(store: SqlStore) -> None:
    store.apply(RegistryDef(processes={"p": ProcessDef(name="p", command="true")}), now=T0)
    _run(store, "p-1", [RunStatus.FAILED])
    at = T0 + timedelta(hours=1)
    first = store.add_retry("p-1", at=at)
    (request,) = store.pending_requests()
    assert (request.id, request.run_id, request.process) == (first, "p-1", "p")
    assert (request.params, request.scheduled) == ({"day": "03-01"}, T0)
    with pytest.raises(Conflict, match=rf"'p-1' was already retried: request {first}, waiting"):
        store.add_retry("p-1", at=at)

    # a planner starts the retry's run: it is in flight
    store.create_run(
        run_id="p-2", process="p", scheduled=T0, queued=at, params={}, request_id=first
    )
    store.mark_handled([first], at=at)
    with pytest.raises(Conflict, match=r"already retried: 'p-2' \(queued\); let that retry end"):
        store.add_retry("p-1", at=at)
    store.attempt_started("p-2", 1, start=at, worker="tcp://w:1")
    store.finish_attempt("p-2", 1, status=RunStatus.FAILED, end=at)
    second = store.add_retry("p-1", at=at)  # that retry gave up: the run may be retried again
    store.create_run(
        run_id="p-3", process="p", scheduled=T0, queued=at, params={}, request_id=second
    )
    store.mark_handled([second], at=at)
    store.attempt_started("p-3", 1, start=at, worker="tcp://w:1")
    store.finish_attempt("p-3", 1, status=RunStatus.SUCCEEDED, end=at)
    with pytest.raises(Conflict) as refused:
        store.add_retry("p-1", at=at)
    assert str(refused.value) == "run 'p-1' was already retried: 'p-3' (succeeded)"
    assert store.pending_requests() == []  # the refused ones wrote nothing

    links = [(r.of, r.run_id, r.status) for r in store.retries(["p-1"])]
    assert links == [("p-1", "p-2", RunStatus.FAILED), ("p-1", "p-3", RunStatus.SUCCEEDED)]
    assert [(r.of, r.run_id) for r in store.retries(["p-3"])] == [("p-1", "p-3")]
    assert store.retries(["p-9"]) == []


def test_a_retry_is_found_whatever_the_clocks_of_the_shell_and_the_planner(
    store: SqlStore,
) -> None:
    """The retry's request carries the time of the shell that asked, its run the time of the
    planner that started it: a planner whose clock is behind still counts as having retried
    the run, and a second retry is refused."""
    store.apply(RegistryDef(processes={"p": ProcessDef(name="p", command="true")}), now=T0)
    _run(store, "p-1", [RunStatus.FAILED])
    asked = T0 + timedelta(hours=1)
    request = store.add_retry("p-1", at=asked)
    behind = asked - timedelta(minutes=2)  # the planner's clock
    store.create_run(
        run_id="p-2", process="p", scheduled=T0, queued=behind, params={}, request_id=request
    )
    store.mark_handled([request], at=behind)
    assert [(r.of, r.run_id) for r in store.retries(["p-1"])] == [("p-1", "p-2")]
    with pytest.raises(Conflict, match=r"already retried: 'p-2' \(queued\)"):
        store.add_retry("p-1", at=asked)


# -- over the command line, a real planner and real HTTP -------------------------------------------


def _cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args])


def _dead_letters(url: str) -> list[tuple[str, str]]:
    out = _cli(url, "history", "--status", "failed", "--format", "json")
    assert out.exit_code == 0, out.output
    return [(r["run_id"], r["status"]) for r in json.loads(out.output)["runs"]]


def _until_idle(store: SqlStore) -> None:
    run_planner(store, processes=False, until_idle=True, dashboard_address=":0")


@pytest.fixture(autouse=True)
def _fresh_jobs() -> None:
    live_jobs.reset()


@pytest.mark.integration
def test_history_of_failed_runs_is_the_list_retry_works_from(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    marker = tmp_path / "fixed"
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(
        "processes:\n"
        "  flaky: {run: tests.live_jobs:flaky, params: {name: dead-letters}, retries: 1}\n"
        f"  broken: {{run: tests.live_jobs:fails_until, params: {{marker: '{marker}'}}}}\n"
        "  slow: {command: 'sleep 60', timeout: 1s}\n"
    )
    store = SqlStore(url)
    store.apply(load_files([registry_file]), now=datetime.now(UTC))
    _until_idle(store)
    assert store.run("flaky-1").status is RunStatus.SUCCEEDED  # on its second attempt

    # the run a retry saved is not a dead letter; the timed-out one is
    assert sorted(_dead_letters(url)) == [("broken-1", "failed"), ("slow-1", "timed_out")]
    only = _cli(url, "history", "--status", "timed_out", "--format", "json")
    assert [r["run_id"] for r in json.loads(only.output)["runs"]] == ["slow-1"]
    refused = _cli(url, "retry", "flaky-1")
    assert refused.exit_code == 1 and "succeeded: nothing to retry" in refused.output

    marker.write_text("")
    asked = _cli(url, "retry", "broken-1")
    assert asked.exit_code == 0 and "as a new run of 'broken'" in asked.output, asked.output
    twice = _cli(url, "retry", "broken-1")
    assert twice.exit_code == 1, twice.output
    assert "'broken-1' was already retried: request" in twice.output
    assert _cli(url, "retry", "slow-1").exit_code == 0  # a timed-out run is retried too
    status = json.loads(_cli(url, "status", "--format", "json").output)
    retry_of = {t["process"]: t["retry_of"] for t in status["planner"]["triggers"]}
    assert retry_of == {"broken": "broken-1", "slow": "slow-1"}
    assert "retry of broken-1" in _cli(url, "status").output

    _until_idle(store)
    assert store.run("broken-2").status is RunStatus.SUCCEEDED
    assert store.run("broken-2").params == store.run("broken-1").params
    assert store.run("slow-2").status is RunStatus.TIMED_OUT
    assert sorted(_dead_letters(url)) == [
        ("broken-1", "failed"),
        ("slow-1", "timed_out"),
        ("slow-2", "timed_out"),
    ]
    text = _cli(url, "history", "--status", "failed").output
    assert "broken-1 retried as broken-2 (succeeded)" in text, text
    assert "slow-1 retried as slow-2 (timed_out)" in text
    again = _cli(url, "retry", "broken-1")
    assert again.exit_code == 1
    assert "'broken-1' was already retried: 'broken-2' (succeeded)" in again.output
    store.close()

    # the HTTP API lists the same dead letters and refuses the retry the same way, as a conflict
    with serving(url) as (_api, http):
        listed = http.get("/runs", params={"status": "failed"}).json()["runs"]
        assert sorted((r["run_id"], r["status"]) for r in listed) == sorted(_dead_letters(url))
        response = http.post("/runs/broken-1/retry", headers=AUTH)
        assert response.status_code == 409, response.text
        error: dict[str, Any] = response.json()["error"]
        assert "already retried: 'broken-2' (succeeded)" in error["message"]
        assert http.post("/runs/slow-2/retry", headers=AUTH).status_code == 200
