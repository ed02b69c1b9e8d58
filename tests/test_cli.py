"""The ``planner`` command line: exit codes, JSON shapes, and what each command writes.

Most tests drive the click group in-process with ``CliRunner`` against a SQLite file in
``tmp_path``, and check writes through the store API. A few run the real console script in a
subprocess (``planner`` next to the interpreter, else ``python -m planner.interfaces.cli``) from
the repository root, so that ``workflows.jobs.demo`` targets import as they do for users.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import planner.interfaces.cli.app
from planner.interfaces.cli import cli
from registry.definitions.loader import load_files
from registry.lifecycle import RunStatus
from registry.records import ErrorInfo, LoggedDecision, RequestKind
from registry.storage.sqlstore import SqlStore

REPO = Path(__file__).resolve().parent.parent

DAG = """\
timezone: Europe/Madrid
slots: 2
processes:
  extract:
    run: workflows.jobs.demo:noop
    priority: 10
    expected_duration: 5m
  load:
    run: workflows.jobs.demo:noop
    ancestors: [extract]
    expected_duration: 10m
  report:
    run: workflows.jobs.demo:noop
    ancestors: [load]
    expected_duration: 1m
"""

BAD = """\
processes:
  a:
    run: workflows.jobs.demo:noop
    retries: lots
  b:
    run: workflows.jobs.demo:noop
    ancestors: [nobody]
"""

T = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # 06:00 in Madrid


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/p.db"


@pytest.fixture
def dag_file(tmp_path: Path) -> Path:
    path = tmp_path / "dag.yaml"
    path.write_text(DAG)
    return path


@pytest.fixture
def store(url: str, dag_file: Path) -> Iterator[SqlStore]:
    """A store with ``DAG`` applied."""
    s = SqlStore(url)
    s.apply(load_files([dag_file]), now=T - timedelta(days=1))
    yield s
    s.close()


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], prog_name="planner")


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def user_error(result: Result) -> Result:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result


def record_run(
    store: SqlStore,
    process: str,
    seq: int,
    *,
    at: datetime,
    outcomes: tuple[RunStatus, ...] = (RunStatus.SUCCEEDED,),
) -> str:
    """A run through the store API: one attempt per outcome, each 30 s, failures retried."""
    run_id = f"{process}-{seq}"
    store.create_run(run_id=run_id, process=process, scheduled=at, queued=at, params={})
    for attempt, status in enumerate(outcomes, start=1):
        if attempt > 1:
            store.retry_run(run_id, attempt=attempt, queued=at)
        store.attempt_started(run_id, attempt, start=at, worker="tcp://w:1")
        failed = status is not RunStatus.SUCCEEDED
        store.finish_attempt(
            run_id,
            attempt,
            status=status,
            end=at + timedelta(seconds=30),
            error=ErrorInfo(type="RuntimeError", message="boom", traceback="tb")
            if failed
            else None,
            retry_at=at + timedelta(minutes=1) if failed and attempt < len(outcomes) else None,
        )
        at += timedelta(minutes=1)
    return run_id


# -- validate / apply / schema / graph ----------------------------------------------------------


def test_validate_good_file(url: str, dag_file: Path, tmp_path: Path) -> None:
    result = ok(invoke(url, "validate", str(dag_file)))
    assert result.stdout.strip() == "ok: 3 processes in 1 file"
    assert not (tmp_path / "p.db").exists()  # validate never touches the database


def test_validate_bad_file_lists_every_problem_with_file_and_line(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = user_error(invoke(url, "validate", str(bad)))
    assert f"{bad}:4: process 'a':" in result.stderr
    assert f"{bad}:7: process 'b': unknown ancestor 'nobody'" in result.stderr
    assert "2 problems" in result.stderr
    assert result.stdout == ""


def test_apply_reports_added_changed_removed(url: str, dag_file: Path, tmp_path: Path) -> None:
    assert ok(invoke(url, "apply", str(dag_file))).stdout.splitlines() == [
        "added: extract, load, report"
    ]
    assert ok(invoke(url, "apply", str(dag_file))).stdout.strip() == "no changes"
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        DAG.replace("priority: 10", "priority: 20").split("  report:")[0]
        + "  audit:\n    run: workflows.jobs.demo:noop\n"
    )
    assert ok(invoke(url, "apply", str(changed))).stdout.splitlines() == [
        "added: audit",
        "changed: extract",
        "removed: report",
    ]
    with SqlStore(url) as s:
        registry, _ = s.load_registry()
    assert sorted(registry.processes) == ["audit", "extract", "load"]
    assert registry.processes["extract"].priority == 20


def test_apply_of_a_bad_file_applies_nothing(url: str, dag_file: Path, tmp_path: Path) -> None:
    ok(invoke(url, "apply", str(dag_file)))
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = user_error(invoke(url, "apply", str(dag_file), str(bad)))
    assert f"{bad}:4" in result.stderr
    with SqlStore(url) as s:
        assert sorted(s.load_registry()[0].processes) == ["extract", "load", "report"]


def test_schema_is_json_schema(url: str) -> None:
    schema = json.loads(ok(invoke(url, "schema")).stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "processes" in schema["properties"]


@pytest.mark.parametrize(
    ("fmt", "edges"),
    [
        ("dot", ['"extract" -> "load";', '"load" -> "report";']),
        ("mermaid", ["p0 --> p1", "p1 --> p2"]),  # ids by sorted name: extract, load, report
    ],
)
def test_graph_from_files(url: str, dag_file: Path, fmt: str, edges: list[str]) -> None:
    out = ok(invoke(url, "graph", str(dag_file), "--format", fmt)).stdout
    for edge in edges:
        assert edge in out
    assert "extract" in out and "single" in out


def test_graph_from_the_database(url: str, store: SqlStore) -> None:
    assert '"extract" -> "load";' in ok(invoke(url, "graph")).stdout


# -- plan / simulate / explain ------------------------------------------------------------------


def test_plan_json_shape(url: str, store: SqlStore) -> None:
    doc = json.loads(ok(invoke(url, "plan", "--at", "2026-03-02T06:00", "--format", "json")).stdout)
    assert set(doc) == {"at", "decisions"}
    assert doc["at"] == "2026-03-02T06:00:00+01:00"  # naive --at is in the registry's timezone
    for d in doc["decisions"]:
        assert set(d) == {"process", "decision", "reasons"}
        for reason in d["reasons"]:
            assert set(reason) == {"code", "detail"}
    by_name = {d["process"]: d for d in doc["decisions"]}
    assert by_name["extract"] == {"process": "extract", "decision": "start", "reasons": []}
    assert by_name["load"]["decision"] == "wait"
    assert [r["code"] for r in by_name["load"]["reasons"]] == ["ancestors"]


def test_plan_uses_the_recorded_history(url: str, store: SqlStore) -> None:
    record_run(store, "extract", 1, at=T)
    doc = json.loads(
        ok(invoke(url, "plan", "--at", "2026-03-02T07:00+01:00", "--format", "json")).stdout
    )
    decisions = {d["process"]: d for d in doc["decisions"]}
    assert decisions["load"]["decision"] == "start"
    assert [r["code"] for r in decisions["extract"]["reasons"]] == ["done"]


def test_plan_shows_a_trigger_no_planner_has_picked_up_yet(url: str, store: SqlStore) -> None:
    record_run(store, "extract", 1, at=T)
    ok(invoke(url, "trigger", "extract"))
    doc = json.loads(
        ok(invoke(url, "plan", "--at", "2026-03-02T07:00+01:00", "--format", "json")).stdout
    )
    decisions = {d["process"]: d for d in doc["decisions"]}
    assert decisions["extract"]["decision"] == "start"  # done, but triggered


def test_plan_table_and_slots(url: str, store: SqlStore) -> None:
    out = ok(invoke(url, "plan", "--slots", "1", "--at", "now")).stdout
    assert "extract" in out and "start" in out and "ancestors" in out
    user_error(invoke(url, "plan", "--slots", "0"))
    user_error(invoke(url, "plan", "--at", "yesterday-ish"))
    user_error(invoke(url, "plan", "--format", "xml"))


def test_simulate_json_shape_is_exact_and_deterministic(
    url: str, dag_file: Path, tmp_path: Path
) -> None:
    args = ("simulate", str(dag_file), "--start", "2026-03-02T06:00", "--for", "1h")
    first = ok(invoke(url, *args, "--format", "json")).stdout
    assert ok(invoke(url, *args, "--format", "json")).stdout == first
    doc = json.loads(first)
    assert set(doc) == {"start", "end", "slots", "runs"}
    assert (doc["start"], doc["end"], doc["slots"]) == (
        "2026-03-02T06:00:00+01:00",
        "2026-03-02T07:00:00+01:00",
        2,
    )
    assert [(r["process"], r["start"], r["end"], r["status"]) for r in doc["runs"]] == [
        ("extract", "2026-03-02T06:00:00+01:00", "2026-03-02T06:05:00+01:00", "succeeded"),
        ("load", "2026-03-02T06:05:00+01:00", "2026-03-02T06:15:00+01:00", "succeeded"),
        ("report", "2026-03-02T06:15:00+01:00", "2026-03-02T06:16:00+01:00", "succeeded"),
    ]
    for run in doc["runs"]:
        assert {"process", "start", "end", "status"} <= set(run)
    assert not (tmp_path / "p.db").exists()  # no database access at all


def test_simulate_with_durations_file(url: str, dag_file: Path, tmp_path: Path) -> None:
    durations = tmp_path / "durations.yaml"
    durations.write_text("extract: 90\nload: {duration: 2m, status: failed}\n")
    doc = json.loads(
        ok(
            invoke(
                url,
                "simulate",
                str(dag_file),
                "--start",
                "2026-03-02T06:00:00+01:00",
                "--durations",
                str(durations),
                "--format",
                "json",
            )
        ).stdout
    )
    runs = [(r["process"], r["end"], r["status"]) for r in doc["runs"]]
    assert runs == [
        ("extract", "2026-03-02T06:01:30+01:00", "succeeded"),
        ("load", "2026-03-02T06:03:30+01:00", "failed"),
    ]
    durations.write_text("nobody: 5m\n")
    result = user_error(invoke(url, "simulate", str(dag_file), "--durations", str(durations)))
    assert "nobody" in result.stderr


def test_simulate_table_has_makespan_and_gantt(url: str, dag_file: Path) -> None:
    out = ok(invoke(url, "simulate", str(dag_file), "--start", "2026-03-02T06:00")).stdout
    assert "makespan 16m" in out
    gantt = {line.split()[0]: line for line in out.splitlines() if line.rstrip().endswith("|")}
    assert set(gantt) == {"extract", "load", "report"}
    assert "|#" in gantt["extract"]  # the first run starts at the left edge


def test_explain_says_why_and_shows_the_log(url: str, store: SqlStore) -> None:
    store.log_decisions(
        [LoggedDecision(at=T, process="load", decision="wait", reasons=(("ancestors", "extract"),))]
    )
    record_run(store, "load", 1, at=T - timedelta(hours=3), outcomes=(RunStatus.FAILED,))
    out = ok(invoke(url, "explain", "load", "--at", "2026-03-02T06:00")).stdout
    assert "load" in out and "wait" in out
    assert "ancestors" in out and "extract" in out
    assert "recent decisions" in out and "recent attempts" in out and "load-1" in out
    doc = json.loads(ok(invoke(url, "explain", "load", "--format", "json")).stdout)
    assert doc["process"] == "load" and doc["decision"] == "wait"
    assert [r["code"] for r in doc["reasons"]] == ["failed", "ancestors"]
    assert "planner reset" in doc["blocked_until"]
    assert doc["decisions"][0]["reasons"] == [{"code": "ancestors", "detail": "extract"}]
    assert doc["attempts"][0]["run_id"] == "load-1"


def test_unknown_process_is_a_clean_user_error(url: str, store: SqlStore) -> None:
    for args in (
        ("explain", "nope"),
        ("trigger", "nope"),
        ("hold", "nope"),
        ("release", "nope"),
        ("reset", "nope"),
        ("set", "nope", "priority=1"),
        ("history", "nope"),
    ):
        result = user_error(invoke(url, *args))
        assert "no process named 'nope'" in result.stderr, args


# -- status / history ---------------------------------------------------------------------------


def test_history_json_one_entry_per_attempt(url: str, store: SqlStore) -> None:
    record_run(store, "extract", 1, at=T, outcomes=(RunStatus.FAILED, RunStatus.SUCCEEDED))
    doc = json.loads(ok(invoke(url, "history", "--format", "json")).stdout)
    assert set(doc) == {"runs", "more"} and doc["more"] is False
    keys = {"process", "run_id", "attempt", "status", "scheduled", "start", "end"}
    keys |= {"duration_s", "worker", "error", "params", "result"}
    assert all(set(run) == keys for run in doc["runs"])
    by_attempt = {r["attempt"]: r for r in doc["runs"]}
    assert by_attempt[1]["status"] == "failed"
    assert by_attempt[1]["error"] == {"type": "RuntimeError", "message": "boom", "traceback": "tb"}
    assert by_attempt[1]["start"] == "2026-03-02T06:00:00+01:00"
    assert by_attempt[1]["duration_s"] == 30.0
    assert by_attempt[1]["worker"] == "tcp://w:1"
    assert by_attempt[2]["status"] == "succeeded" and by_attempt[2]["error"] is None
    assert {r["run_id"] for r in doc["runs"]} == {"extract-1"}


def test_history_filters(url: str, store: SqlStore) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=5)
    record_run(store, "extract", 1, at=T)
    record_run(store, "load", 1, at=recent)
    record_run(store, "extract", 2, at=recent)

    def runs(*args: str) -> list[str]:
        doc = json.loads(ok(invoke(url, "history", *args, "--format", "json")).stdout)
        return [r["run_id"] for r in doc["runs"]]

    assert sorted(runs()) == ["extract-1", "extract-2", "load-1"]
    assert sorted(runs("extract")) == ["extract-1", "extract-2"]
    assert sorted(runs("--since", "1h")) == ["extract-2", "load-1"]
    assert sorted(runs("--since", "2026-03-02T05:59")) == ["extract-1", "extract-2", "load-1"]
    assert len(runs("--limit", "1")) == 1
    assert "extract-1" in ok(invoke(url, "history", "extract")).stdout
    user_error(invoke(url, "history", "--since", "last tuesday"))


def test_status(url: str, store: SqlStore) -> None:
    now = datetime.now(UTC)
    store.create_run(run_id="load-1", process="load", scheduled=now, queued=now, params={})
    record_run(store, "extract", 1, at=now - timedelta(minutes=10), outcomes=(RunStatus.FAILED,))
    ok(invoke(url, "hold", "report"))
    doc = json.loads(ok(invoke(url, "status", "--format", "json")).stdout)
    assert doc["processes"] == 3
    assert doc["held"] == ["report"] and doc["disabled"] == []
    assert [(r["run_id"], r["status"]) for r in doc["active"]] == [("load-1", "queued")]
    assert [(f["run_id"], f["status"]) for f in doc["failures"]] == [("extract-1", "failed")]
    out = ok(invoke(url, "status")).stdout
    assert "load-1" in out and "extract-1" in out and "held: report" in out


# -- operating ----------------------------------------------------------------------------------


def test_trigger_writes_a_request(url: str, store: SqlStore) -> None:
    result = ok(invoke(url, "trigger", "load", "--params", '{"day": "2026-03-01"}', "--force"))
    [request] = store.pending_requests()
    assert f"request {request.id}" in result.stdout
    assert request.kind is RequestKind.TRIGGER
    assert (request.process, dict(request.params), request.force) == (
        "load",
        {"day": "2026-03-01"},
        True,
    )
    ok(invoke(url, "trigger", "extract"))
    assert [(r.process, r.force) for r in store.pending_requests()][1] == ("extract", False)
    assert "JSON object" in user_error(invoke(url, "trigger", "load", "--params", "[1]")).stderr
    assert "invalid JSON" in user_error(invoke(url, "trigger", "load", "--params", "{")).stderr
    assert len(store.pending_requests()) == 2


def test_hold_and_release(url: str, store: SqlStore) -> None:
    ok(invoke(url, "hold", "load"))
    assert store.load_registry()[0].processes["load"].hold
    ok(invoke(url, "release", "load"))
    assert not store.load_registry()[0].processes["load"].hold


def test_set_changes_fields_validated(url: str, store: SqlStore) -> None:
    result = ok(invoke(url, "set", "load", "priority=200", "retry_delay=90s", "enabled=false"))
    assert result.stdout.splitlines() == [
        "load.priority: 200",
        "load.retry_delay: 1m30s",
        "load.enabled: false",
    ]
    definition = store.load_registry()[0].processes["load"]
    assert (definition.priority, definition.retry_delay, definition.enabled) == (
        200,
        timedelta(seconds=90),
        False,
    )
    assert "unknown key 'prio'" in user_error(invoke(url, "set", "load", "prio=1")).stderr
    assert "retries" in user_error(invoke(url, "set", "load", "retries=many")).stderr
    user_error(invoke(url, "set", "load", "priority"))
    assert store.load_registry()[0].processes["load"].priority == 200


def test_reset_forgets_and_tells_a_running_planner(url: str, store: SqlStore) -> None:
    record_run(store, "extract", 1, at=T)
    assert store.load_histories()["extract"].successes == 1
    ok(invoke(url, "reset", "extract"))
    assert store.load_histories()["extract"].successes == 0
    [request] = store.pending_requests()
    assert (request.kind, request.process) == (RequestKind.RESET, "extract")


def test_cancel(url: str, store: SqlStore) -> None:
    now = datetime.now(UTC)
    store.create_run(run_id="load-1", process="load", scheduled=now, queued=now, params={})
    record_run(store, "extract", 1, at=T)
    ok(invoke(url, "cancel", "load-1"))
    [request] = store.pending_requests()
    assert (request.kind, request.run_id, request.process) == (
        RequestKind.CANCEL,
        "load-1",
        "load",
    )
    # moot, not an error: the run is already where a cancel would take it
    moot = ok(invoke(url, "cancel", "extract-1")).stdout
    assert (
        moot.strip()
        == "run 'extract-1' of 'extract' has already ended (succeeded): nothing to cancel"
    )
    assert "already pending" in ok(invoke(url, "cancel", "load-1")).stdout
    assert "no run with id 'nope-9'" in user_error(invoke(url, "cancel", "nope-9")).stderr
    assert len(store.pending_requests()) == 1


# -- exit codes ---------------------------------------------------------------------------------


def test_internal_error_exits_2_with_traceback_only_when_verbose(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_url: str | None = None, *, create: bool = True) -> SqlStore:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(planner.interfaces.cli.app, "open_store", broken)
    result = invoke(url, "status")
    assert result.exit_code == 2
    assert "internal error: RuntimeError: disk on fire" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = CliRunner().invoke(cli, ["-v", "--db", url, "status"])
    assert verbose.exit_code == 2
    assert "Traceback" in verbose.stderr and "disk on fire" in verbose.stderr


def test_usage_errors_exit_1(url: str) -> None:
    user_error(invoke(url, "no-such-command"))
    user_error(invoke(url, "validate"))  # FILES is required
    user_error(CliRunner().invoke(cli, ["--db"]))


def test_database_that_cannot_be_opened_is_a_user_error(tmp_path: Path, dag_file: Path) -> None:
    result = user_error(invoke("nosuchdialect://x", "status"))
    assert "unsupported database URL 'nosuchdialect://x'" in result.stderr
    missing = f"sqlite:///{tmp_path}/no/such/dir/p.db"
    assert "no database at" in user_error(invoke(missing, "status")).stderr
    assert "cannot open the database" in user_error(invoke(missing, "apply", str(dag_file))).stderr


# -- the real console script --------------------------------------------------------------------


def _planner_command() -> list[str]:
    script = shutil.which("planner", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "planner.interfaces.cli"]


def run_planner(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLANNER_DB": url, "COLUMNS": "200"}
    return subprocess.run(
        [*_planner_command(), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.integration
def test_subprocess_validate_apply_plan(url: str, dag_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    invalid = run_planner(url, "validate", str(bad))
    assert invalid.returncode == 1
    assert f"{bad}:4" in invalid.stderr and "Traceback" not in invalid.stderr
    assert run_planner(url, "apply", str(dag_file)).stdout.startswith("added: ")
    planned = run_planner(url, "plan", "--at", "2026-03-02T06:00", "--format", "json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["at"] == "2026-03-02T06:00:00+01:00"
    unknown = run_planner(url, "explain", "nope")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no process named 'nope' in the registry"


@pytest.mark.integration
def test_subprocess_simulate_json(url: str, dag_file: Path) -> None:
    args = ("simulate", str(dag_file), "--start", "2026-03-02T06:00", "--format", "json")
    first, second = run_planner(url, *args), run_planner(url, *args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert [r["process"] for r in json.loads(first.stdout)["runs"]] == ["extract", "load", "report"]


@pytest.mark.integration
def test_subprocess_run_until_idle(url: str, tmp_path: Path) -> None:
    registry = tmp_path / "small.yaml"
    registry.write_text(
        "slots: 2\n"
        "processes:\n"
        "  a: {run: 'workflows.jobs.demo:noop'}\n"
        "  b: {run: 'workflows.jobs.demo:fail', ancestors: [a]}\n"
    )
    done = run_planner(
        url,
        "run",
        str(registry),
        "--until-idle",
        "--workers",
        "1",
        "--dashboard-address",
        ":0",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # a failing job is not a CLI error
    assert "dashboard: http" in done.stdout
    assert "1 failed, 1 succeeded" in done.stdout
    assert "b-1 attempt 1 failed: RuntimeError: this job always fails" in done.stdout
    with SqlStore(url) as s:
        assert {(a.run_id, a.status) for a in s.history()} == {
            ("a-1", RunStatus.SUCCEEDED),
            ("b-1", RunStatus.FAILED),
        }
