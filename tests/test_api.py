"""The HTTP API over real HTTP against a live planner (real LocalCluster, real SQLite), and
``planner serve`` as a real process: reads, the operations, tokens, errors."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from distributed import Client, LocalCluster

from registry.lifecycle import RunStatus
from tests import live_jobs
from tests.live_api import AUTH, apply, live_planner, serving
from tests.test_restart import REPO, _planner, _start
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

DAG = """
processes:
  a: {run: workflows.jobs.demo:sleep, params: {seconds: 0}}
  b: {run: workflows.jobs.demo:noop, ancestors: [a]}
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=4, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(autouse=True)
def _fresh_jobs() -> None:
    live_jobs.reset()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error document of ``response``, checked to be the one JSON shape with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    assert doc["error"]["message"]
    return dict(doc["error"])


def succeeded(http: httpx.Client, process: str, count: int = 1) -> bool:
    runs = http.get("/runs", params={"process": process, "status": "succeeded"}).json()["runs"]
    return len(runs) >= count


def test_reads_of_a_live_planner(tmp_path: Path, client: Client) -> None:
    with live_planner(tmp_path, client, DAG) as live:
        http = live.http
        wait_for(lambda: succeeded(http, "b"), 60, "a then b to succeed")

        status = http.get("/status").json()
        assert status["processes"] == 2 and status["active"] == [] and status["failures"] == []
        assert status["planner"]["alive"] is False  # this driver holds no lease (no runner)

        listing = http.get("/processes").json()["processes"]
        assert [p["process"] for p in listing] == ["a", "b"]
        assert listing[1]["valid"] and listing[1]["definition"]["ancestors"] == ["a"]

        b = http.get("/processes/b").json()
        assert b["definition"]["run"] == "workflows.jobs.demo:noop" and b["state"] is None
        assert http.get("/processes/a").json()["definition"]["params"] == {"seconds": 0}
        assert b["explanation"]["decision"] == "wait"
        # done, and a's success is older than b's start: as the live planner sees it
        assert [r["code"] for r in b["explanation"]["reasons"]] == ["done", "ancestors"]

        history = http.get("/runs").json()
        assert history["more"] is False
        assert [(r["process"], r["status"]) for r in history["runs"]] == [
            ("b", "succeeded"),
            ("a", "succeeded"),
        ]
        keys = {"process", "run_id", "attempt", "status", "scheduled", "start", "end"}
        assert keys | {"duration_s", "worker", "error"} <= set(history["runs"][0])
        cut = http.get("/runs", params={"limit": 1}).json()
        assert len(cut["runs"]) == 1 and cut["more"] is True
        assert http.get("/runs", params={"status": "failed"}).json() == {"runs": [], "more": False}
        assert (
            http.get("/runs", params={"since": "1h", "process": "a"}).json()["runs"][0]["run_id"]
            == "a-1"
        )

        run = http.get("/runs/a-1").json()
        assert (run["process"], run["status"], len(run["attempts"])) == ("a", "succeeded", 1)

        stats = http.get("/stats").json()
        assert {p["process"]: p["succeeded"] for p in stats["processes"]} == {"a": 1, "b": 1}

        logs = http.get("/runs/a-1/logs").json()
        assert logs["run_id"] == "a-1" and [a["attempt"] for a in logs["attempts"]] == [1]
        assert set(logs["attempts"][0]) == {"attempt", "status", "log"}
        error_of(http.get("/runs/a-1/logs", params={"attempt": 9}), 404)
        error_of(http.get("/runs/nope-1/logs"), 404)


def test_runs_carry_params_and_results_and_logs_their_text(
    tmp_path: Path, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest's handlers keep the root logger at WARNING here (a worker process has none)
    caplog.set_level(logging.INFO, logger="tests.chatty")
    yaml_text = """
processes:
  talk: {run: tests.live_jobs:chatty, params: {name: talk, lines: 2}}
  shell: {command: "echo shell says hi; echo '{\\"ok\\": true}'"}
"""
    with live_planner(tmp_path, client, yaml_text) as live:
        http = live.http
        wait_for(lambda: succeeded(http, "talk") and succeeded(http, "shell"), 60, "both runs")
        runs = {r["run_id"]: r for r in http.get("/runs").json()["runs"]}
        assert runs["talk-1"]["params"] == {"name": "talk", "lines": 2}
        assert runs["talk-1"]["result"] == {"rows": 2, "name": "talk"}
        assert (runs["shell-1"]["params"], runs["shell-1"]["result"]) == ({}, {"ok": True})
        one = http.get("/runs/talk-1").json()
        assert one["params"] == {"name": "talk", "lines": 2}
        assert one["attempts"][0]["result"] == {"rows": 2, "name": "talk"}

        [talk] = http.get("/runs/talk-1/logs").json()["attempts"]
        assert talk["attempt"] == 1 and talk["status"] == "succeeded"
        for line in (
            "talk stdout line 1",
            "INFO tests.chatty: talk logging line 0",
            "talk on stderr",
        ):
            assert line in talk["log"], talk["log"]
        [shell] = http.get("/runs/shell-1/logs", params={"attempt": 1}).json()["attempts"]
        assert shell["log"] == 'shell says hi\n{"ok": true}\n'


def test_trigger_then_the_run_happens(tmp_path: Path, client: Client) -> None:
    with live_planner(tmp_path, client, DAG) as live:
        http = live.http
        wait_for(lambda: succeeded(http, "b"), 60, "the first runs")
        response = http.post(
            "/processes/a/trigger", json={"params": {"seconds": 0.01}}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        done = response.json()
        assert done["done"] is True and isinstance(done["request"], int)
        assert done["message"] == f"request {done['request']}: trigger 'a'"
        wait_for(lambda: succeeded(http, "a", 2), 60, "the triggered run")
        (second,) = [r for r in live.store.history("a") if r.run_id == "a-2"]
        assert second.status is RunStatus.SUCCEEDED
        assert live.store.pending_requests() == []  # the run carried the trigger


def test_hold_and_release(tmp_path: Path, client: Client) -> None:
    yaml_text = """
processes:
  a: {run: tests.live_jobs:gate, params: {name: a}}
  b: {run: workflows.jobs.demo:noop, ancestors: [a]}
"""
    with live_planner(tmp_path, client, yaml_text) as live:
        http = live.http
        assert live_jobs.STARTED["a"].wait(60)
        held = http.post("/processes/b/hold", headers=AUTH).json()
        assert held == {
            "done": True,
            "message": "held 'b'",
            "request": None,
            "waits": None,
            "note": None,
        }
        again = http.post("/processes/b/hold", headers=AUTH).json()
        assert (again["done"], again["message"]) == (False, "'b' is already held")
        wait_for(
            lambda: any(c == "hold" for d in live.store.decisions("b") for c, _ in d.reasons),
            30,
            "the planner to see the hold",
        )
        live_jobs.RELEASE["a"].set()
        wait_for(lambda: succeeded(http, "a"), 60, "a to end")
        explanation = http.get("/processes/b").json()["explanation"]
        assert [r["code"] for r in explanation["reasons"]] == ["hold"]
        assert http.get("/runs", params={"process": "b"}).json()["runs"] == []
        assert http.post("/processes/b/release", headers=AUTH).json()["done"] is True
        assert http.post("/processes/b/release", headers=AUTH).json()["done"] is False
        wait_for(lambda: succeeded(http, "b"), 60, "b to run once released")


def test_reset_conflicts_while_in_flight_then_cancel(tmp_path: Path, client: Client) -> None:
    marker = tmp_path / "started"
    yaml_text = f"""
processes:
  long: {{run: tests.live_jobs:until_cancelled, params: {{marker: "{marker}"}}}}
"""
    with live_planner(tmp_path, client, yaml_text) as live:
        http = live.http
        wait_for(marker.exists, 60, "the job to start")
        conflict = error_of(http.post("/processes/long/reset", headers=AUTH), 409)
        assert conflict["code"] == "conflict"
        assert "cannot reset 'long' while its run 'long-1' is in flight" in conflict["message"]
        wait_for(lambda: http.get("/runs/long-1").json()["status"] == "running", 30, "its start")

        cancel = http.post("/runs/long-1/cancel", headers=AUTH).json()
        assert cancel["done"] is True and cancel["message"].endswith("cancel 'long-1' of 'long'")
        wait_for(lambda: http.get("/runs/long-1").json()["status"] == "cancelled", 60, "the cancel")
        moot = http.post("/runs/long-1/cancel", headers=AUTH).json()
        assert moot == {
            "done": False,
            "message": "run 'long-1' of 'long' has already ended (cancelled): nothing to cancel",
            "request": None,
            "waits": None,
            "note": None,
        }
        reset = http.post("/processes/long/reset", headers=AUTH)
        assert reset.status_code == 200 and reset.json()["done"] is True


def test_retry_and_a_trigger_for_later(tmp_path: Path, client: Client) -> None:
    yaml_text = """
processes:
  broken: {run: workflows.jobs.demo:fail, params: {message: once}}
  fine: {run: workflows.jobs.demo:noop}
"""
    with live_planner(tmp_path, client, yaml_text) as live:
        http = live.http
        wait_for(
            lambda: (
                http.get("/runs", params={"status": "failed"}).json()["runs"]
                and succeeded(http, "fine")
            ),
            60,
            "the first runs",
        )
        refused = error_of(http.post("/runs/fine-1/retry", headers=AUTH), 409)
        assert "succeeded: nothing to retry" in refused["message"]
        again = http.post("/runs/broken-1/retry", headers=AUTH).json()
        assert again["done"] is True and "as a new run of 'broken'" in again["message"]
        wait_for(
            lambda: (
                http.get("/runs/broken-2").status_code == 200
                and http.get("/runs/broken-2").json()["status"] == "failed"
            ),
            60,
            "the retried run",
        )
        later = http.post(
            "/processes/fine/trigger", json={"at": "2099-01-02T03:04:00"}, headers=AUTH
        ).json()
        assert later["done"] is True and " at 2099-01-02T03:04:00+00:00" in later["message"]
        assert [r.due for r in live.store.pending_requests()] == [
            datetime(2099, 1, 2, 3, 4, tzinfo=UTC)
        ]
        assert [t["process"] for t in http.get("/status").json()["planner"]["triggers"]] == ["fine"]


def test_unknown_processes_and_runs_are_404(tmp_path: Path) -> None:
    with serving(apply(tmp_path, DAG)) as (_api, http):
        for method, path in [
            ("GET", "/processes/nope"),
            ("GET", "/runs/nope-1"),
            ("GET", "/runs/nope-1/logs"),
            ("GET", "/runs?process=nope"),
            ("GET", "/stats?process=nope"),
            ("GET", "/nothing/here"),
            ("POST", "/processes/nope/trigger"),
            ("POST", "/processes/nope/hold"),
            ("POST", "/processes/nope/reset"),
            ("PATCH", "/processes/nope"),
            ("POST", "/runs/nope-1/cancel"),
            ("POST", "/runs/nope-1/retry"),
            ("POST", "/runs/a-99/retry"),
        ]:
            body = {"priority": 1} if method == "PATCH" else None
            response = http.request(method, path, json=body, headers=AUTH)
            assert error_of(response, 404)["code"] == "not_found", path
        assert "'nope'" in error_of(http.get("/processes/nope"), 404)["message"]


def test_writes_need_the_token(tmp_path: Path) -> None:
    url = apply(tmp_path, DAG)
    with serving(url) as (_api, http):
        missing = http.post("/processes/a/hold")
        assert error_of(missing, 401)["code"] == "unauthorized"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = http.post("/processes/a/hold", headers={"Authorization": "Bearer nope"})
        assert error_of(wrong, 401)["message"] == "wrong token"
        basic = http.post("/processes/a/hold", headers={"Authorization": "Basic eDp5"})
        error_of(basic, 401)
        # a bad body is still 401 without the token: nothing is read before it
        error_of(http.post("/processes/a/trigger", json={"params": []}), 401)
        assert http.get("/processes/a").status_code == 200  # reads need none
    with serving(url, token=None) as (_api, http):
        refused = error_of(http.post("/processes/a/hold", headers=AUTH), 403)
        assert refused["code"] == "forbidden" and "PLANNER_API_TOKEN" in refused["message"]
        error_of(http.post("/runs/a-1/cancel"), 403)
        assert http.get("/status").status_code == 200


def test_bad_bodies_are_400(tmp_path: Path) -> None:
    with serving(apply(tmp_path, DAG)) as (_api, http):
        trigger = "/processes/a/trigger"
        for body in [
            {"params": [1, 2]},
            {"params": {"x": 1}, "surprise": True},
            {"force": "very"},
            {"at": "tomorrow"},
            {"at": "2030-02-30T00:00:00Z"},
        ]:
            assert error_of(http.post(trigger, json=body, headers=AUTH), 400)["code"] == (
                "bad_request"
            ), body
        raw = {**AUTH, "content-type": "application/json"}
        nan = http.post(trigger, content=b'{"params": {"x": NaN}}', headers=raw)
        assert "finite" in error_of(nan, 400)["message"]
        error_of(http.post(trigger, content=b"{not json", headers=raw), 400)
        bad_value = http.patch("/processes/a", json={"priority": "abc"}, headers=AUTH)
        assert "priority" in error_of(bad_value, 400)["message"]
        error_of(http.patch("/processes/a", json={}, headers=AUTH), 400)
        error_of(http.patch("/processes/a", json=[1], headers=AUTH), 400)
        error_of(http.get("/runs", params={"limit": 0}), 400)
        error_of(http.get("/runs", params={"status": "bogus"}), 400)
        error_of(http.get("/runs", params={"since": "yesterday-ish"}), 400)


def test_every_real_date_is_a_time_and_an_impossible_one_is_400(tmp_path: Path) -> None:
    with serving(apply(tmp_path, DAG)) as (_api, http):
        for since in (
            "2026-11-30T00:00",
            "2026-12-31",
            "2026-01-31 23:59:59.5",
            "2028-02-29T10:00:00+01:00",  # a leap day
            "2000-02-29",
        ):
            for path in ("/runs", "/stats"):
                response = http.get(path, params={"since": since})
                assert response.status_code == 200, (path, since, response.text)
        for at, shown in (
            ("2027-01-30T10:00", "2027-01-30T10:00:00+00:00"),
            ("2099-12-31T23:59:59Z", "2099-12-31T23:59:59+00:00"),
            ("2096-02-29T06:00:00+01:00", "2096-02-29T05:00:00+00:00"),
        ):
            response = http.post("/processes/a/trigger", json={"at": at}, headers=AUTH)
            assert response.status_code == 200, (at, response.text)
            assert response.json()["message"].endswith(f" at {shown}"), response.json()
        impossible = (
            "2026-02-30",
            "2027-02-29T00:00",
            "2026-04-31T00:00",
            "1900-02-29",
            "2026-13-01",
        )
        for day in impossible:
            for path in ("/runs", "/stats"):
                refused = error_of(http.get(path, params={"since": day}), 400)
                assert refused["message"].startswith(f"query.since: {day!r} is not a duration")
            refused = http.post("/processes/a/trigger", json={"at": day}, headers=AUTH)
            message = error_of(refused, 400)["message"]
            assert (
                message
                == f"at: {day!r} is not an ISO-8601 date or time that exists (years 1900-2099)"
            )
        # the refused ones wrote nothing
        assert len(http.get("/status").json()["planner"]["triggers"]) == 3


def test_patch_changes_a_process_as_set_does(tmp_path: Path) -> None:
    url = apply(tmp_path, DAG)
    with serving(url) as (_api, http):
        response = http.patch(
            "/processes/b", json={"priority": 200, "retry_delay": "5m"}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["process"] == "b" and doc["definition"]["priority"] == 200
        assert doc["definition"]["retry_delay"] == 300.0
        assert http.get("/processes/b").json()["definition"]["priority"] == 200
        restored = http.patch("/processes/b", json={"priority": None}, headers=AUTH).json()
        assert restored["definition"]["priority"] == 0


def test_planner_serve_serves_the_api_and_the_page(tmp_path: Path) -> None:
    url = apply(tmp_path, DAG)
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "PLANNER_API_TOKEN"}
    server = _start(_planner("--db", url, "serve", "--port", "0", "--page-port", "0"), log, env)
    try:
        wait_for(lambda: "planner page:" in log.read_text(), 60, "serve to start")
        pairs = [line.split(": ", 1) for line in log.read_text().splitlines() if ": " in line]
        lines = {key: rest for key, rest in pairs}
        api = lines["api"]
        assert api.startswith("http://127.0.0.1:") and api.endswith("/api/v1")
        assert httpx.get(f"{api}/processes", timeout=10).json()["processes"][0]["process"] == "a"
        refused = httpx.post(f"{api}/processes/a/hold", headers=AUTH, timeout=10)
        assert error_of(refused, 403)["code"] == "forbidden"
        assert httpx.get(lines["planner page"], timeout=10).status_code == 200
        metrics = httpx.get(api.removesuffix("/api/v1") + "/metrics", timeout=10).text
        assert "planner_leader 0.0" in metrics.splitlines()
        schema = httpx.get(f"{api}/openapi.json", timeout=10).json()
        assert "/api/v1/processes/{name}/trigger" in schema["paths"]
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait(30) == 0, log.read_text()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def test_planner_serve_refuses_a_missing_database(tmp_path: Path) -> None:
    done = subprocess.run(
        _planner("--db", f"sqlite:///{tmp_path}/none.db", "serve", "--port", "0"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "no database at" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_the_page_of_planner_serve_reads_the_database(tmp_path: Path) -> None:
    from bokeh.document import Document

    from planner.interfaces.page.page import PlannerPage
    from planner.interfaces.page.watch import StoreWatch
    from registry.storage.sqlstore import SqlStore

    store = SqlStore(apply(tmp_path, DAG))
    try:
        snap = StoreWatch(store).snapshot()
        assert snap["in_flight"] == 0 and snap["running"] == [] and snap["recent"] == []
        queue = {q["process"]: [r["code"] for r in q["reasons"]] for q in snap["queue"]}
        assert queue == {"a": [], "b": ["ancestors"]}  # a would start now; b waits for it
        assert {n["process"]: n["state"] for n in snap["nodes"]} == {"a": "ready", "b": "waiting"}
        PlannerPage(Document()).update(snap)  # the page takes it as a live driver's snapshot
    finally:
        store.close()
