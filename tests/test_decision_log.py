"""The decision log (``planner -v run``): a line per start, and why the best waiting process waits
while slots are free — logged when that changes, not on every step. And ``-v``'s logging setup:
the planner's records through rich without a doubled prefix, Dask's in Dask's own format."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from planner.core.planner import Planner
from planner.live.decision_log import DecisionLog, best_waiting
from tests.factories import T0, at, finish, proc, registry

REPO = Path(__file__).resolve().parent.parent
LOGGER = "planner.live.decision_log"


@dataclass
class FakeDriver:
    """What the decision log reads of the driver: its core."""

    core: Planner


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_line_per_start_and_one_per_change_of_why_the_best_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = Planner(
        registry(
            proc("extract", priority=100),
            proc("load", ancestors=["extract"], priority=5),
            proc("report", ancestors=["load"]),
            slots=2,
        ),
        now=T0,
    )
    driver = FakeDriver(core)
    log = DecisionLog()
    caplog.set_level(logging.INFO, logger=LOGGER)

    log.on_step(driver, core.handle(T0))  # type: ignore[arg-type]
    assert lines(caplog) == [
        "start extract-1 (single, priority 100, slot 1/2)",
        "1 of 2 slots free; load waits — ancestors: extract (never succeeded)",
    ]
    for minute in range(1, 50):  # nothing changes: nothing more is said
        log.on_step(driver, core.handle(at(0, minute)))  # type: ignore[arg-type]
    assert len(lines(caplog)) == 2

    log.on_step(driver, finish(core, "extract", at(1)))  # type: ignore[arg-type]
    assert lines(caplog)[2:] == [
        "start load-1 (single, priority 5, slot 1/2, handed to Dask ahead)",
        "1 of 2 slots free; report waits — ancestors: load (never succeeded)",
    ]


def test_the_best_waiting_is_a_candidate_capacity_holds_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = Planner(
        registry(
            proc("a", pool="db"),
            proc("b", pool="db", priority=10),
            proc("c", ancestors=["a"], priority=1000),
            slots=3,
            pools={"db": 1},
        ),
        now=T0,
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    DecisionLog().on_step(FakeDriver(core), core.handle(T0))  # type: ignore[arg-type]
    found = best_waiting(core)
    assert found is not None and found[0] == "a"  # ready, held by its pool (before c: not ready)
    said = lines(caplog)
    assert said[0] == "start b-1 (single, priority 10, slot 1/3)"
    assert said[1].startswith("2 of 3 slots free; a waits — pool: ")


def test_nothing_is_logged_when_the_logger_is_off(caplog: pytest.LogCaptureFixture) -> None:
    core = Planner(registry(proc("a"), slots=1), now=T0)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    DecisionLog().on_step(FakeDriver(core), core.handle(T0))  # type: ignore[arg-type]
    assert lines(caplog) == []


# -- -v, in a process of its own (logging is per process) -----------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verbose_logging_prints_dask_records_in_dask_format_and_ours_once() -> None:
    done = _python(
        """
        import logging
        from planner.interfaces.cli.app import configure_logging
        configure_logging(1)
        import distributed  # Dask sets up its loggers on import: after ours, as in `planner -v`
        logging.getLogger("distributed.scheduler").warning("from dask")
        logging.getLogger("planner.live.decision_log").info("start a-1 (single)")
        logging.getLogger("planner.live.loop").debug("not at -v")
        """
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert " - distributed.scheduler - WARNING - from dask" in err  # Dask's own format
    dask_lines = [line for line in err.splitlines() if "from dask" in line]
    assert len(dask_lines) == 1  # said once, one way
    ours = [line for line in err.splitlines() if "start a-1 (single)" in line]
    assert len(ours) == 1 and "INFO" in ours[0]
    assert "INFO:" not in err and "WARNING:" not in err  # no doubled prefix
    assert "not at -v" not in err


@pytest.mark.integration
def test_planner_v_run_logs_its_decisions(tmp_path: Path) -> None:
    registry_file = tmp_path / "small.yaml"
    registry_file.write_text(
        "slots: 2\n"
        "processes:\n"
        "  a: {run: 'workflows.jobs.demo:noop', priority: 7}\n"
        "  b: {run: 'workflows.jobs.demo:noop', ancestors: [a]}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "planner.interfaces.cli",
            "--db",
            f"sqlite:///{tmp_path}/p.db",
            "-v",
            "run",
            str(registry_file),
            "--until-idle",
            "--local-threads",
            "--dashboard-address",
            ":0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    err = " ".join(done.stderr.split())
    assert "start a-1 (single, priority 7, slot 1/2)" in err
    assert "1 of 2 slots free; b waits — ancestors: a (never succeeded)" in err
    assert "start b-1 (single, priority 0" in err
    assert "INFO:" not in err  # no doubled prefix
    assert "2 attempts started" in done.stdout


#: a plain decision-log line: ISO-8601 time in UTC, the level padded to 5, the message
PLAIN_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) +(?P<message>\S.*)$"
)


@pytest.mark.integration
def test_planner_v_run_logs_plain_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    registry_file = tmp_path / "small.yaml"
    registry_file.write_text(
        "slots: 2\n"
        "timezone: Asia/Tokyo\n"
        "processes:\n"
        "  a: {run: 'workflows.jobs.demo:noop', priority: 7}\n"
        "  b: {run: 'workflows.jobs.demo:noop', ancestors: [a]}\n"
    )
    before = datetime.now(UTC).replace(microsecond=0)
    done = subprocess.run(  # stderr is a pipe, as under systemd, cron or `2> file`
        [
            sys.executable,
            "-m",
            "planner.interfaces.cli",
            "--db",
            f"sqlite:///{tmp_path}/p.db",
            "-v",
            "run",
            str(registry_file),
            "--until-idle",
            "--local-threads",
            "--dashboard-address",
            ":0",
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # a width for tables: not for log lines
    )
    assert done.returncode == 0, done.stderr
    ours = [line for line in done.stderr.splitlines() if "start a-1" in line or "waits" in line]
    assert len(ours) == 2, done.stderr
    for line in ours:
        assert line == line.rstrip(), repr(line)  # no padding to the console's width
        match = PLAIN_LINE.match(line)
        assert match is not None, repr(line)
        at = datetime.fromisoformat(match["at"])  # ISO-8601, in UTC
        assert before <= at <= datetime.now(UTC) and match["level"] == "INFO"
    assert [PLAIN_LINE.match(line)["message"] for line in ours] == [  # type: ignore[index]
        "start a-1 (single, priority 7, slot 1/2)",
        "1 of 2 slots free; b waits — ancestors: a (never succeeded)",
    ]
    assert ours[0].split(" ", 1)[1] == "INFO  start a-1 (single, priority 7, slot 1/2)"


def test_on_a_terminal_the_records_are_shown_by_rich() -> None:
    import pty

    main, tty = pty.openpty()  # stderr is a terminal here
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import logging\n"
            "from planner.interfaces.cli.app import configure_logging\n"
            "configure_logging(1)\n"
            "logging.getLogger('planner.live.decision_log').info('start a-1 (single)')\n",
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=tty,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(tty)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert child.wait(60) == 0
    shown = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", b"".join(chunks).decode())  # colours off
    [line] = [x for x in shown.splitlines() if "start a-1 (single)" in x]
    assert "INFO" in line and PLAIN_LINE.match(line.strip()) is None  # rich's columns
