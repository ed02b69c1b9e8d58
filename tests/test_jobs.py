"""planner.live.worker: one attempt on a worker — callables, commands, timeouts, hooks, Dask."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from planner.live.worker import (
    JobContext,
    JobHooks,
    JobOutcome,
    JobSpec,
    command_environment,
    execute,
    import_target,
    run_hook,
)
from planner.live.worker.outcome import RESULT_MAX_CHARS
from registry.lifecycle import RunStatus
from registry.model import ProcessDef
from registry.records import ErrorInfo

ME = __name__  # targets below are "tests.test_jobs:<name>"
SCHEDULED = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def spec(**overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "process": "p",
        "run_id": "p-1",
        "attempt": 1,
        "scheduled": SCHEDULED,
    }
    fields.update(overrides)
    return JobSpec(**fields)


# --- job and hook callables used as targets --------------------------------------------------

calls: list[dict[str, Any]] = []
RELEASE = threading.Event()
STARTED = threading.Event()


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    calls.clear()
    STARTED.clear()
    yield
    RELEASE.set()  # let any abandoned job thread finish
    RELEASE.clear()


def add(a: int, b: int = 0) -> int:
    return a + b


def with_ctx(x: int, ctx: JobContext) -> dict[str, Any]:
    calls.append({"ctx": ctx})
    return {"x": x, "attempt": ctx.attempt}


def with_kwargs(**kwargs: Any) -> list[str]:
    return sorted(kwargs)


def count_runs(ctx: JobContext) -> dict[str, Any]:
    runs = (ctx.state or {}).get("runs", 0) + 1
    return {"state": {"runs": runs}, "note": "counted"}


def only_state() -> dict[str, Any]:
    return {"state": [1, 2, 3]}


def bad_state() -> dict[str, Any]:
    return {"state": {"when": object()}}


def boom(message: str = "kaboom") -> None:
    def inner() -> None:
        raise KeyError(message)

    inner()


def exits() -> None:
    sys.exit(3)


def big() -> str:
    return "x" * 10_000


def blocks_until_released() -> None:
    RELEASE.wait(30)


def blocks_until_cancelled(ctx: JobContext) -> str:
    STARTED.set()
    ctx.cancelled.wait(30)
    calls.append({"cancelled_at": time.monotonic()})
    RELEASE.wait(30)  # and carries on for a while: the attempt must wait for it
    return "late"


def hook_all(process: str, run_id: str, attempt: int, status: str, error: Any, event: str) -> None:
    calls.append(
        {
            "process": process,
            "run_id": run_id,
            "attempt": attempt,
            "status": status,
            "error": error,
            "event": event,
        }
    )


def hook_some(run_id: str, status: str) -> None:
    calls.append({"run_id": run_id, "status": status})


def hook_var(**kwargs: Any) -> None:
    calls.append(kwargs)


def hook_fails(run_id: str) -> None:
    raise RuntimeError(f"hook broke for {run_id}")


# --- callables --------------------------------------------------------------------------------


def test_callable_success_with_params() -> None:
    outcome = execute(spec(run=f"{ME}:add", params={"a": 2, "b": 3}))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.result == "5"
    assert outcome.error is None
    assert not outcome.state_changed
    assert outcome.start.tzinfo is not None and outcome.start <= outcome.end
    assert outcome.worker  # hostname:pid outside a worker
    assert outcome.duration_s >= 0


def test_ctx_is_passed_when_declared() -> None:
    outcome = execute(
        spec(run=f"{ME}:with_ctx", params={"x": 7}, attempt=2, state={"k": 1}, run_id="p-9")
    )
    assert outcome.status is RunStatus.SUCCEEDED
    ctx = calls[0]["ctx"]
    assert ctx == JobContext(
        run_id="p-9",
        attempt=2,
        scheduled=SCHEDULED,
        process="p",
        state={"k": 1},
        params={"x": 7},
    )
    assert outcome.result == "{'x': 7, 'attempt': 2}"


def test_ctx_not_passed_when_not_declared() -> None:
    # **kwargs does not count as declaring ctx: the callable only gets its params
    outcome = execute(spec(run=f"{ME}:with_kwargs", params={"a": 1}))
    assert outcome.result == "['a']"
    assert execute(spec(run=f"{ME}:add", params={"a": 1})).status is RunStatus.SUCCEEDED


def test_returned_state_replaces_saved_state() -> None:
    outcome = execute(spec(run=f"{ME}:count_runs", state={"runs": 4}))
    assert outcome.state_changed
    assert outcome.new_state == {"runs": 5}
    assert outcome.result == "{'note': 'counted'}"
    only = execute(spec(run=f"{ME}:only_state"))
    assert only.new_state == [1, 2, 3] and only.result is None


def test_state_that_is_not_json_fails_the_attempt() -> None:
    outcome = execute(spec(run=f"{ME}:bad_state"))
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None and outcome.error.type == "InvalidState"
    assert not outcome.state_changed


def test_exception_becomes_failed_with_error_info() -> None:
    outcome = execute(spec(run=f"{ME}:boom", params={"message": "no such key"}))
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "KeyError"
    assert "no such key" in outcome.error.message
    lines = outcome.error.traceback.splitlines()
    assert len(lines) <= 20
    assert "in inner" in outcome.error.traceback
    assert lines[-1].startswith("KeyError")
    assert not outcome.state_changed


def test_sys_exit_and_import_errors_are_failures() -> None:
    exited = execute(spec(run=f"{ME}:exits"))
    assert exited.status is RunStatus.FAILED
    assert exited.error is not None and exited.error.type == "SystemExit"
    missing = execute(spec(run="no_such_module_xyz:f"))
    assert missing.error is not None and missing.error.type == "ModuleNotFoundError"
    no_attr = execute(spec(run=f"{ME}:no_such_function"))
    assert no_attr.error is not None and no_attr.error.type == "AttributeError"
    malformed = execute(spec(run="just_a_module"))
    assert malformed.error is not None and malformed.error.type == "ValueError"


def test_result_is_clipped() -> None:
    outcome = execute(spec(run=f"{ME}:big"))
    assert outcome.result is not None and len(outcome.result) == RESULT_MAX_CHARS


def test_callable_with_timeout_that_finishes() -> None:
    outcome = execute(spec(run=f"{ME}:add", params={"a": 1}, timeout_s=30))
    assert outcome.status is RunStatus.SUCCEEDED and outcome.result == "1"
    failed = execute(spec(run=f"{ME}:boom", timeout_s=30))
    assert failed.error is not None and failed.error.type == "KeyError"


def test_callable_timeout_sets_ctx_cancelled_and_waits_for_the_thread() -> None:
    overdue = threading.Event()
    released_at: list[float] = []

    def release_once_overdue() -> None:
        assert overdue.wait(30)
        released_at.append(time.monotonic())
        RELEASE.set()

    releaser = threading.Thread(target=release_once_overdue)
    releaser.start()
    outcome = execute(
        spec(run=f"{ME}:blocks_until_cancelled", timeout_s=0.2), on_overdue=overdue.set
    )
    releaser.join()
    ended = time.monotonic()
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.error is not None and outcome.error.type == "Timeout"
    assert "blocks_until_cancelled" in outcome.error.traceback  # the stack it was stuck in
    assert "returned" in outcome.error.message
    assert calls and ended >= released_at[0]  # execute returned only after the thread did
    assert outcome.duration_s >= 0.2


def test_import_target() -> None:
    assert import_target(f"{ME}:add") is add
    assert import_target("os.path:join") is os.path.join
    with pytest.raises(ValueError, match="module:callable"):
        import_target("os.path")
    with pytest.raises(TypeError, match="not callable"):
        import_target(f"{ME}:ME")


# --- commands ---------------------------------------------------------------------------------


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_command_list_success_captures_stdout_tail() -> None:
    outcome = execute(spec(command=py("print('hello'); print('world')")))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.result == "hello\nworld"
    assert outcome.error is None


def test_shell_command_string(tmp_path: Path) -> None:
    outcome = execute(spec(command="echo one && echo two >&2 && pwd", cwd=str(tmp_path)))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.result is not None
    assert outcome.result.splitlines() == ["one", str(tmp_path)]


def test_nonzero_exit_is_failed_with_stderr_tail() -> None:
    code = "import sys\nfor i in range(100): print('line', i, file=sys.stderr)\nsys.exit(4)"
    outcome = execute(spec(command=py(code)))
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "CommandFailed"
    assert "4" in outcome.error.message
    lines = outcome.error.traceback.splitlines()
    assert len(lines) == 20 and lines[-1] == "line 99"


def test_missing_executable_is_failed() -> None:
    outcome = execute(spec(command=["/nonexistent/tool-xyz"]))
    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None and outcome.error.type == "FileNotFoundError"


def test_output_memory_is_bounded() -> None:
    # 4 MB on stdout: only the tail is kept, the result ends with the last line
    code = "import sys\nfor i in range(40000): sys.stdout.write(f'{i:099d}\\n')"
    outcome = execute(spec(command=py(code)))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.result is not None and len(outcome.result) <= RESULT_MAX_CHARS
    assert outcome.result.endswith(f"{39999:099d}")


def wait_gone(pid: int, deadline_s: float = 10.0) -> bool:
    """Poll until ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.integration
def test_hanging_command_and_its_child_are_killed_on_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # the shell and its child both ignore SIGTERM: only the SIGKILL escalation stops them
    command = f"trap '' TERM; sleep 60 & echo $! > {pidfile}; echo started; wait"
    started = time.monotonic()
    outcome = execute(spec(command=command, timeout_s=1.0, kill_grace_s=0.3))
    assert time.monotonic() - started < 10
    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.error is not None and outcome.error.type == "Timeout"
    assert outcome.result == "started"
    child = int(pidfile.read_text())
    assert wait_gone(child), f"child {child} survived the timeout"


@pytest.mark.integration
def test_timed_out_python_tree_is_killed_with_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    outcome = execute(spec(command=py(code), timeout_s=1.5, kill_grace_s=5))
    assert outcome.status is RunStatus.TIMED_OUT
    assert wait_gone(int(pidfile.read_text()))


@pytest.mark.integration
def test_processes_left_behind_by_a_finished_command_are_terminated(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # the background sleep would keep stdout open and outlive the job
    outcome = execute(spec(command=f"sleep 60 & echo $! > {pidfile}; echo done", timeout_s=30))
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.result == "done"
    assert wait_gone(int(pidfile.read_text()))


def test_command_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    code = (
        "import json, os\n"
        f"json.dump({{k: v for k, v in os.environ.items() if k.startswith(('PLANNER_', 'EXTRA'))}},"
        f" open({str(out)!r}, 'w'))"
    )
    params = {"table": "orders", "rows": 10, "opts": {"a": [1]}, "data-dir": "d", "flag": True}
    outcome = execute(
        spec(command=py(code), params=params, attempt=3, run_id="p-7", env={"EXTRA": "yes"})
    )
    assert outcome.status is RunStatus.SUCCEEDED, outcome.error
    # what the planner added: the child also inherits this process's environment
    env = {k: v for k, v in json.loads(out.read_text()).items() if k not in os.environ}
    assert env.pop("PLANNER_ATTEMPT_KEY").startswith("p-7/3/")  # unique to the attempt
    assert env == {
        "PLANNER_RUN_ID": "p-7",
        "PLANNER_ATTEMPT": "3",
        "PLANNER_PROCESS": "p",
        "PLANNER_SCHEDULED": "2026-03-01T03:00:00+00:00",
        "PLANNER_PARAM_TABLE": "orders",
        "PLANNER_PARAM_ROWS": "10",
        "PLANNER_PARAM_OPTS": '{"a": [1]}',
        "PLANNER_PARAM_DATA_DIR": "d",
        "PLANNER_PARAM_FLAG": "true",
        "EXTRA": "yes",
    }


def test_command_path_starts_with_the_workers_python() -> None:
    env = command_environment(spec(command="true"), base={"PATH": "/usr/bin"})
    assert env["PATH"] == f"{os.path.dirname(sys.executable)}{os.pathsep}/usr/bin"
    assert "HOME" not in env  # base replaces os.environ


# --- hooks ------------------------------------------------------------------------------------


def test_hook_gets_only_the_arguments_it_accepts() -> None:
    error = ErrorInfo(type="X", message="m")
    common: dict[str, Any] = {
        "event": "on_failure",
        "process": "p",
        "run_id": "p-1",
        "attempt": 2,
        "status": RunStatus.FAILED,
        "error": error,
    }
    assert run_hook(f"{ME}:hook_all", **common)
    assert run_hook(f"{ME}:hook_some", **common)
    assert run_hook(f"{ME}:hook_var", **common)
    assert calls == [common, {"run_id": "p-1", "status": "failed"}, common]


def test_failing_hook_is_logged_and_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="planner.live.worker"):
        ok = run_hook(
            f"{ME}:hook_fails",
            event="on_cancel",
            process="p",
            run_id="p-3",
            attempt=1,
            status=RunStatus.CANCELLED,
        )
    assert not ok
    assert "hook broke for p-3" in caplog.text
    missing: dict[str, Any] = {
        "event": "e",
        "process": "p",
        "run_id": "r",
        "attempt": 1,
        "status": "cancelled",
    }
    assert not run_hook("missing_mod_xyz:f", **missing)


def test_execute_calls_on_success() -> None:
    hooks = JobHooks(on_success=f"{ME}:hook_all", on_failure=f"{ME}:hook_some")
    outcome = execute(spec(run=f"{ME}:add", params={"a": 1}, hooks=hooks))
    assert outcome.status is RunStatus.SUCCEEDED
    assert [c["event"] for c in calls] == ["on_success"]
    assert calls[0]["error"] is None


def test_execute_calls_on_failure_only_after_the_final_attempt() -> None:
    hooks = JobHooks(on_success=f"{ME}:hook_some", on_failure=f"{ME}:hook_all")
    execute(spec(run=f"{ME}:boom", hooks=hooks, final_attempt=False))
    assert calls == []
    outcome = execute(spec(run=f"{ME}:boom", hooks=hooks, attempt=2, final_attempt=True))
    assert len(calls) == 1
    assert calls[0]["event"] == "on_failure"
    assert calls[0]["attempt"] == 2
    assert calls[0]["error"] == outcome.error


def test_execute_calls_on_failure_after_a_final_timeout() -> None:
    hooks = JobHooks(on_failure=f"{ME}:hook_some")
    outcome = execute(spec(command=py("import time; time.sleep(30)"), timeout_s=0.3, hooks=hooks))
    assert outcome.status is RunStatus.TIMED_OUT
    assert calls == [{"run_id": "p-1", "status": "timed_out"}]


def test_failing_hook_does_not_change_the_status() -> None:
    hooks = JobHooks(on_success=f"{ME}:hook_fails")
    outcome = execute(spec(run=f"{ME}:add", params={"a": 1}, hooks=hooks))
    assert outcome.status is RunStatus.SUCCEEDED


# --- the spec ---------------------------------------------------------------------------------


def test_spec_needs_exactly_one_of_run_or_command() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        spec()
    with pytest.raises(ValueError, match="exactly one"):
        spec(run=f"{ME}:add", command="true")
    with pytest.raises(ValueError, match="positive"):
        spec(run=f"{ME}:add", timeout_s=0)


def test_spec_defaults_to_the_current_directory_and_pickles() -> None:
    from types import MappingProxyType

    s = spec(command=["echo", "x"], params=MappingProxyType({"a": 1}))
    assert s.cwd == os.getcwd()
    assert s.command == ("echo", "x")
    assert pickle.loads(pickle.dumps(s)) == s
    outcome = execute(s)
    assert pickle.loads(pickle.dumps(outcome)) == outcome


def test_spec_for_process_merges_params_and_maps_fields() -> None:
    process = ProcessDef(
        name="build",
        run=f"{ME}:add",
        params={"a": 1, "b": 2},
        timeout=timedelta(minutes=2),
        on_failure=f"{ME}:hook_all",
    )
    s = JobSpec.for_process(
        process,
        run_id="build-4",
        attempt=1,
        scheduled=SCHEDULED,
        params={"b": 5},
        final_attempt=False,
        cwd="/tmp",
    )
    assert (s.process, s.run_id, s.run, s.command) == ("build", "build-4", f"{ME}:add", None)
    assert s.params == {"a": 1, "b": 5}
    assert s.timeout_s == 120
    assert s.hooks == JobHooks(on_failure=f"{ME}:hook_all")
    assert (s.final_attempt, s.cwd) == (False, "/tmp")


# --- on a real Dask worker --------------------------------------------------------------------


@pytest.mark.integration
def test_execute_on_a_local_cluster_reports_the_worker_address() -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        hooks = JobHooks(on_success=f"{ME}:hook_some")
        future = client.submit(
            execute, spec(run=f"{ME}:count_runs", state={"runs": 1}, hooks=hooks), pure=False
        )
        outcome = future.result(timeout=60)
        assert isinstance(outcome, JobOutcome)
        assert outcome.status is RunStatus.SUCCEEDED
        assert outcome.worker in workers
        assert outcome.new_state == {"runs": 2}
        assert calls == [{"run_id": "p-1", "status": "succeeded"}]

        cmd = client.submit(execute, spec(command=py("print(42)")), pure=False).result(timeout=60)
        assert (cmd.status, cmd.result, cmd.worker in workers) == (RunStatus.SUCCEEDED, "42", True)


# --- cancel, escaped descendants, bounds ------------------------------------------------------


def escaping_command(tmp_path: Path, then: str = "sleep 30") -> str:
    """A shell whose grandchild starts a session of its own (setsid) and records its pid."""
    return f"setsid sh -c 'echo $$ > {tmp_path}/escaped.pid; exec sleep 30' & {then}"


def escaped_pid(tmp_path: Path) -> int:
    pidfile = tmp_path / "escaped.pid"
    deadline = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.01)
    return int(pidfile.read_text())


@pytest.mark.integration
def test_escaped_grandchild_is_killed_on_timeout_and_after_exit(tmp_path: Path) -> None:
    timed = execute(spec(command=escaping_command(tmp_path), timeout_s=0.5, kill_grace_s=0.3))
    assert timed.status is RunStatus.TIMED_OUT
    assert wait_gone(escaped_pid(tmp_path))
    (tmp_path / "escaped.pid").unlink()
    # exits at once, leaving the grandchild behind: it is the attempt's, so it goes too
    done = execute(spec(command=escaping_command(tmp_path, "sleep 0.3; echo done"), timeout_s=30))
    assert done.status is RunStatus.SUCCEEDED and done.result == "done"
    assert wait_gone(escaped_pid(tmp_path))


@pytest.mark.integration
def test_cancel_attempt_kills_a_running_command(tmp_path: Path) -> None:
    from planner.live.worker import cancel_attempt

    box: dict[str, JobOutcome] = {}
    command = escaping_command(tmp_path, "trap '' TERM; sleep 30")  # the leader ignores SIGTERM
    job = threading.Thread(
        target=lambda: box.update(o=execute(spec(command=command, kill_grace_s=0.3), key="k-1"))
    )
    job.start()
    grandchild = escaped_pid(tmp_path)
    assert cancel_attempt("k-1", "cancelled by a test")
    job.join(20)
    assert not job.is_alive()
    outcome = box["o"]
    assert outcome.status is RunStatus.CANCELLED
    assert outcome.error is not None and outcome.error.message.startswith("cancelled by a test")
    assert wait_gone(grandchild)


def test_a_cancel_that_comes_first_ends_the_attempt_at_once() -> None:
    from planner.live.worker import cancel_attempt

    assert not cancel_attempt("k-early")  # not running here yet: remembered
    outcome = execute(spec(run=f"{ME}:blocks_until_released"), key="k-early")
    assert outcome.status is RunStatus.CANCELLED
    assert outcome.error is not None and "before it started" in outcome.error.message
    assert execute(spec(run=f"{ME}:add", params={"a": 1}), key="k-early").result == "1"


def test_a_cancelled_callable_sees_ctx_cancelled() -> None:
    from planner.live.worker import cancel_attempt

    box: dict[str, JobOutcome] = {}
    job = threading.Thread(
        target=lambda: box.update(o=execute(spec(run=f"{ME}:blocks_until_cancelled"), key="k-2"))
    )
    job.start()
    assert STARTED.wait(10)
    assert cancel_attempt("k-2")
    RELEASE.set()
    job.join(20)
    assert box["o"].status is RunStatus.CANCELLED
    assert calls and "cancelled_at" in calls[0]


def raises_huge(size: int) -> None:
    raise ValueError("m" * size)


def test_error_parts_are_bounded_on_the_worker() -> None:
    from planner.live.worker.outcome import (
        MESSAGE_MAX_CHARS,
        TRACEBACK_LINES,
        TRACEBACK_MAX_CHARS,
    )

    outcome = execute(spec(run=f"{ME}:raises_huge", params={"size": 50_000_000}))
    assert outcome.error is not None and outcome.error.type == "ValueError"
    assert len(outcome.error.message) == MESSAGE_MAX_CHARS
    assert len(outcome.error.traceback) <= TRACEBACK_MAX_CHARS
    assert "in raises_huge" in outcome.error.traceback  # frames survive the huge last line
    # one 1 MB line of stderr
    command = py("import sys; sys.stderr.write('e' * 1_000_000); sys.exit(1)")
    failed = execute(spec(command=command))
    assert failed.error is not None and failed.error.type == "CommandFailed"
    assert len(failed.error.traceback) <= TRACEBACK_MAX_CHARS
    short = execute(spec(run=f"{ME}:boom"))
    assert short.error is not None and len(short.error.traceback.splitlines()) <= TRACEBACK_LINES
