"""Bad input gets a clear one-line error, not a crash, a runaway or a silent default (issue 8).

Limits (``max_active``, ``slots``, ``every``, 32-bit integers, name length, finite params) are
refused the same way from YAML, ``planner set`` and the trigger's ``--params``, on SQLite and on
PostgreSQL; alias bombs are refused fast; read-only commands never create a database; database
URLs we cannot use are named as such; a moot request says so and exits 0, a conflict exits 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from planner.interfaces.cli import cli
from registry.definitions.loader import load_files
from registry.definitions.yaml_source import MAX_ALIAS_NODES
from registry.errors import DefinitionError
from registry.storage.sqlstore import SqlStore
from registry.storage.tables import processes

T = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
SMALL = "processes:\n  a: {command: 'true'}\n  b: {command: 'true', ancestors: [a]}\n"


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], prog_name="planner")


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def user_error(result: Result) -> str:
    """The one-line message of a user error (exit 1)."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result.stderr.strip()


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    return [str(p) for p in info.value.problems]


@pytest.fixture
def applied(store_url: str, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    with SqlStore(store_url) as store:
        store.apply(load_files([path]), now=T)
    yield store_url


# -- limits, wherever they come from ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_active", "0", "greater than or equal to 1"),
        ("max_active", "-1", "greater than or equal to 1"),
        ("every", "-5", "must be a finite number >= 0"),
        ("priority", "3000000000", "less than or equal to 2147483647"),
        ("priority", "-3000000000", "greater than or equal to -2147483648"),
        ("priority", str(2**64), "less than or equal to 2147483647"),
        ("retries", "3000000000", "less than or equal to 2147483647"),
        ("max_runs", "0", "greater than or equal to 1"),
        ("params", "{x: .nan}", "finite numbers"),
        ("params", "{x: [1, -.inf]}", "finite numbers"),
    ],
)
def test_limits_are_refused_by_yaml_and_by_set(
    applied: str, tmp_path: Path, field: str, value: str, message: str
) -> None:
    [problem] = problems(tmp_path, f"processes:\n  a:\n    command: 'true'\n    {field}: {value}\n")
    assert problem.startswith(f"{tmp_path / 'r.yaml'}:4: process 'a': ") and message in problem
    error = user_error(invoke(applied, "set", "a", f"{field}={value}"))
    assert message in error and f"(processes.a.{field}" in error


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("slots: -1", "greater than or equal to 1"),
        ("slots: 0", "greater than or equal to 1"),
        ("slots: 3000000000", "less than or equal to 2147483647"),
        ("pools: {w: 3000000000}", "less than or equal to 2147483647"),
    ],
)
def test_settings_limits_are_refused(tmp_path: Path, settings: str, message: str) -> None:
    [problem] = problems(tmp_path, f"{settings}\nprocesses:\n  a: {{command: 'true'}}\n")
    assert f"{tmp_path / 'r.yaml'}:1:" in problem and message in problem


def test_a_long_name_is_refused_the_same_on_every_backend(applied: str, tmp_path: Path) -> None:
    name = "p" * 300
    path = tmp_path / "long.yaml"
    path.write_text(f"processes:\n  {name}: {{command: 'true'}}\n")
    error = user_error(invoke(applied, "apply", str(path)))
    assert "process name of 300 characters is too long (at most 200)" in error
    assert processes.c.name.type.length == 200  # the column the limit protects
    ok_name = "p" * 200
    path.write_text(f"processes:\n  {ok_name}: {{command: 'true'}}\n")
    ok(invoke(applied, "apply", str(path)))
    ancestor = tmp_path / "anc.yaml"
    ancestor.write_text(f"processes:\n  a: {{command: 'true', ancestors: [{name}]}}\n")
    assert "at most 200 characters" in user_error(invoke(applied, "validate", str(ancestor)))


@pytest.mark.parametrize("params", ['{"x": NaN}', '{"x": Infinity}', '{"x": [-Infinity]}'])
def test_trigger_refuses_non_finite_params(applied: str, params: str) -> None:
    error = user_error(invoke(applied, "trigger", "a", "--params", params))
    assert "is not allowed (JSON numbers are finite)" in error
    with SqlStore(applied) as store:
        assert store.pending_requests() == []


# -- bounds -------------------------------------------------------------------------------------

LAUGHS = 'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"x-{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_a_billion_laughs_is_refused_fast_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(LAUGHS + "processes:\n  p: {command: 'true', params: {x: *i}}\n")
    assert len(path.read_bytes()) < 500
    began = time.monotonic()
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert time.monotonic() - began < 5
    assert result.exit_code == 1
    assert f"{path}:6: invalid YAML: aliases expand the document past {MAX_ALIAS_NODES}" in (
        result.stderr
    )


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "x-a: &a [1, *a]\nprocesses: {}\n")
    assert problem == f"{tmp_path / 'r.yaml'}:1: invalid YAML: alias *a refers to itself"


def test_shared_anchors_below_the_limit_still_load(tmp_path: Path) -> None:
    body = "".join(f"  p{i}: {{<<: *common, command: 'true'}}\n" for i in range(2000))
    path = tmp_path / "many.yaml"
    path.write_text("x-common: &common {retries: 2, retry_delay: 30s, priority: 5}\n")
    path.write_text(path.read_text() + "processes:\n" + body)
    reg = load_files([path])
    assert len(reg.processes) == 2000 and reg.processes["p7"].retries == 2


@pytest.mark.parametrize(("text", "line"), [("- a\n- b\n", 1), ("# a comment\n\nhello\n", 3)])
def test_a_file_that_is_not_a_mapping_names_its_line(tmp_path: Path, text: str, line: int) -> None:
    [problem] = problems(tmp_path, text)
    assert problem == (
        f"{tmp_path / 'r.yaml'}:{line}: the file must be a mapping of settings and processes"
    )


# -- misconfiguration ---------------------------------------------------------------------------

READ_ONLY = [
    ("status",),
    ("history",),
    ("plan",),
    ("explain", "a"),
    ("graph",),
    ("trigger", "a"),
    ("cancel", "a-1"),
    ("hold", "a"),
    ("reset", "a"),
    ("set", "a", "priority=1"),
    ("db", "current"),
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: a[0])
def test_commands_on_a_missing_database_say_so_and_create_none(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = tmp_path / "missing.db"
    url = f"sqlite:///{db}"
    assert user_error(invoke(url, *args)) == (
        f"error: no database at {url}: `planner apply FILES…` creates one"
    )
    assert list(tmp_path.iterdir()) == []


def test_apply_still_creates_the_database(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    ok(invoke(url, "apply", str(path)))
    assert ok(invoke(url, "status")).stdout.startswith("2 processes")


@pytest.mark.postgres
def test_an_empty_postgresql_database_is_not_created_by_a_read_only_command(pg_url: str) -> None:
    assert "error: no database at postgresql+psycopg://" in user_error(invoke(pg_url, "status"))
    with SqlStore(pg_url) as store:  # still empty: a store that may create does it now
        assert store.load_registry()[0].processes == {}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secret@h/db", "unsupported database URL 'mysql://u:***@h/db'"),
        ("postgresql+psycopg2://h/db", "unsupported database URL 'postgresql+psycopg2://h/db'"),
        ("", "the database URL is empty"),
        ("   ", "the database URL is empty"),
        ("not a url", "'not a url' is not a database URL"),
    ],
)
def test_database_urls_we_cannot_use_name_the_supported_ones(url: str, message: str) -> None:
    error = user_error(invoke(url, "status"))
    assert error == (
        f"error: {message}: use sqlite:///PATH, postgresql+psycopg://USER@HOST/DB "
        "(postgresql:// and postgres:// mean the same)"
    )
    assert len(error.splitlines()) == 1


def test_an_empty_db_option_does_not_fall_back_to_planner_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text(SMALL)
    assert "the database URL is empty" in user_error(invoke("", "apply", "small.yaml"))
    assert not (tmp_path / "planner.db").exists()


@pytest.mark.postgres
def test_postgres_scheme_is_an_alias_of_postgresql(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    with SqlStore(pg_url) as store:
        store.apply(load_files([path]), now=T)
    alias = "postgres" + pg_url[len("postgresql+psycopg") :]
    assert ok(invoke(alias, "status")).stdout.startswith("2 processes")


# -- moot requests and conflicts ----------------------------------------------------------------


def test_reset_of_a_running_process_is_a_conflict(applied: str) -> None:
    with SqlStore(applied) as store:
        store.create_run(run_id="a-1", process="a", scheduled=T, queued=T, params={})
    error = user_error(invoke(applied, "reset", "a"))
    assert error == (
        "error: cannot reset 'a' while its run 'a-1' is in flight: let it end, or "
        "`planner cancel a-1`, then reset"
    )
    with SqlStore(applied) as store:
        assert store.pending_requests() == []


def test_trigger_of_a_held_process_says_what_it_waits_for(applied: str) -> None:
    ok(invoke(applied, "hold", "a"))
    assert ok(invoke(applied, "hold", "a")).stdout.strip() == "'a' is already held"
    out = ok(invoke(applied, "trigger", "a")).stdout.strip()
    assert out.endswith("trigger 'a'; waits: 'a' is held (`planner release a`)")
    ok(invoke(applied, "release", "a"))
    assert ok(invoke(applied, "release", "a")).stdout.strip() == "'a' is not held"
