"""``planner apply --dry-run``: what would be added, changed field by field and removed, with
the database left byte for byte as it was (and none created where there is none)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from planner.interfaces.cli import cli

V1 = """
slots: 2
processes:
  extract: {run: workflows.jobs.demo:noop, cron: "0 3 * * *", priority: 10}
  load: {run: workflows.jobs.demo:noop, ancestors: [extract]}
  old: {command: "true"}
"""
V2 = """
slots: 4
processes:
  extract: {run: workflows.jobs.demo:noop, cron: "0 4 * * *", priority: 100}
  load: {run: workflows.jobs.demo:noop, ancestors: [extract]}
  fresh: {command: "true"}
"""


def _files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.iterdir() if p.name.startswith("planner.db"))


def _bytes(tmp_path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(tmp_path)}


def test_dry_run_prints_the_diff_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    (tmp_path / "v1.yaml").write_text(V1)
    (tmp_path / "v2.yaml").write_text(V2)
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", url, "apply", str(tmp_path / "v1.yaml")]).exit_code == 0
    with sqlite3.connect(tmp_path / "planner.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _bytes(tmp_path)

    out = runner.invoke(cli, ["--db", url, "apply", "--dry-run", str(tmp_path / "v2.yaml")])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines == [
        "would change settings: slots: 2 → 4",
        "would add 1 process: fresh",
        "would change 'extract': cron: 0 3 * * * → 0 4 * * *; priority: 10 → 100",
        "would remove 1 process: old",
        "(dry run: nothing written)",
    ]
    assert _bytes(tmp_path) == before  # byte for byte

    same = runner.invoke(cli, ["--db", url, "apply", "--dry-run", str(tmp_path / "v1.yaml")])
    assert same.output.strip() == "no change (dry run: nothing written)"


def test_dry_run_on_no_database_creates_none(tmp_path: Path) -> None:
    (tmp_path / "v1.yaml").write_text(V1)
    url = f"sqlite:///{tmp_path}/planner.db"
    out = CliRunner().invoke(cli, ["--db", url, "apply", "--dry-run", str(tmp_path / "v1.yaml")])
    assert out.exit_code == 0, out.output
    assert "would add 3 processes: extract, load, old" in out.output
    assert _files(tmp_path) == []


def test_dry_run_of_invalid_files_is_the_validation_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "processes:\n  x: {run: workflows.jobs.demo:noop, every: soon}\n"
    )
    url = f"sqlite:///{tmp_path}/planner.db"
    out = CliRunner().invoke(cli, ["--db", url, "apply", "--dry-run", str(tmp_path / "bad.yaml")])
    assert out.exit_code == 1 and "bad.yaml:2" in out.output and "every" in out.output


def test_apply_reports_a_change_of_settings_alone(tmp_path: Path) -> None:
    """A file that changes only settings is a change: apply says which, as the dry run does."""
    url = f"sqlite:///{tmp_path}/planner.db"
    process = "processes:\n  x: {run: workflows.jobs.demo:noop}\n"
    (tmp_path / "v1.yaml").write_text("slots: 2\n" + process)
    (tmp_path / "v2.yaml").write_text("slots: 3\n" + process)
    runner = CliRunner()
    first = runner.invoke(cli, ["--db", url, "apply", str(tmp_path / "v1.yaml")])
    assert first.output.splitlines() == ["added: x"]  # the first apply sets the settings
    dry = runner.invoke(cli, ["--db", url, "apply", "--dry-run", str(tmp_path / "v2.yaml")])
    assert dry.output.splitlines()[0] == "would change settings: slots: 2 → 3"
    out = runner.invoke(cli, ["--db", url, "apply", str(tmp_path / "v2.yaml")])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == ["changed settings: slots: 2 → 3"]
    status = runner.invoke(cli, ["--db", url, "status"])
    assert "slots: 3" in status.output, status.output
    again = runner.invoke(cli, ["--db", url, "apply", str(tmp_path / "v2.yaml")])
    assert again.output.splitlines() == ["no changes"]


def test_a_change_of_retention_is_shown_as_the_yaml_would_say_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/planner.db"
    process = "processes:\n  x: {run: workflows.jobs.demo:noop}\n"
    (tmp_path / "v1.yaml").write_text("retention: {runs: 90d}\n" + process)
    (tmp_path / "v2.yaml").write_text(
        "retention: {runs: 30d, logs: 12h, decisions: null}\n" + process
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", url, "apply", str(tmp_path / "v1.yaml")]).exit_code == 0
    dry = runner.invoke(cli, ["--db", url, "apply", "--dry-run", str(tmp_path / "v2.yaml")])
    expected = (
        "retention.runs: 90d → 30d; retention.logs: 30d → 12h; retention.decisions: 7d → null"
    )
    assert dry.output.splitlines()[0] == f"would change settings: {expected}", dry.output
    out = runner.invoke(cli, ["--db", url, "apply", str(tmp_path / "v2.yaml")])
    assert out.output.splitlines() == [f"changed settings: {expected}"], out.output
