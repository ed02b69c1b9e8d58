"""YAML → RegistryDef: every error kind names file, line, process and key path; revise."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.definitions.loader import load_files, revise
from registry.definitions.schema import PROCESS_ONLY, DefaultsSpec, ProcessSpec, json_schema
from registry.errors import DefinitionError, Problem, ProcessNotFound
from registry.model import Missed, ProcessDef, Ranking, RegistryDef, Source

Write = Callable[[str, str], str]

SPEC_EXAMPLE = """\
timezone: Europe/Madrid
slots: 5
pools: {warehouse: 2}
defaults: {retries: 2, retry_delay: 30s, timeout: 2h}

processes:
  extract_orders:
    run: os.path:join
    params: {table: orders}
    cron: "0 3 * * *"
    priority: 100
    reserve: true
  extract_customers:
    command: ["python", "-m", "etl", "customers"]
    every: 15m
  build_report:
    run: os.path:join
    ancestors: [extract_orders, extract_customers]
    not_before: "03:00"
    refresh_window: 6h
    pool: warehouse
    max_active: 1
    resources: {memory: 4e9}
    expected_duration: 20m
    retries: 3
    retry_delay: 1m
    retry_backoff: 2.0
    timeout: 1h
    hold: false
    enabled: true
    start_at: 2026-01-01T00:00:00
    end_at: null
    max_runs: null
    missed: latest
    on_failure: os.path:basename
"""


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """Write a YAML file in a fresh working directory; returns its (relative) name."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> str:
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    return write


def problems_of(*paths: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        load_files(paths)
    return list(info.value.problems)


def only_problem(*paths: str) -> Problem:
    problems = problems_of(*paths)
    assert len(problems) == 1, problems
    return problems[0]


def process_yaml(body: str, name: str = "job", extra: str = "") -> str:
    """A registry with one process ``name`` whose fields are ``body`` (4-space indented)."""
    lines = textwrap.indent(textwrap.dedent(body), "    ")
    return f"{extra}processes:\n  {name}:\n{lines}"


# -- a valid registry ----------------------------------------------------------------------------


def test_spec_example_loads_with_defaults_merged(write: Write) -> None:
    registry = load_files([write("etl.yaml", SPEC_EXAMPLE)])
    madrid = ZoneInfo("Europe/Madrid")
    assert (registry.timezone, registry.slots, dict(registry.pools)) == (
        "Europe/Madrid",
        5,
        {"warehouse": 2},
    )
    assert registry.ranking is Ranking.ADP
    assert list(registry.processes) == ["extract_orders", "extract_customers", "build_report"]
    orders = registry.processes["extract_orders"]
    assert orders == ProcessDef(
        name="extract_orders",
        run="os.path:join",
        params={"table": "orders"},
        cron="0 3 * * *",
        priority=100,
        reserve=True,
        retries=2,
        retry_delay=timedelta(seconds=30),
        timeout=timedelta(hours=2),
    )
    assert orders.source == Source(file="etl.yaml", line=7)
    customers = registry.processes["extract_customers"]
    assert customers.command == ("python", "-m", "etl", "customers")
    assert customers.every == timedelta(minutes=15)
    report = registry.processes["build_report"]
    assert report.ancestors == ("extract_orders", "extract_customers")
    assert report.not_before == time(3, 0)
    assert report.resources == {"memory": 4e9}
    assert report.retries == 3  # the process's own value beats the default
    assert report.retry_backoff == 2.0
    assert report.timeout == timedelta(hours=1)
    assert report.start_at == datetime(2026, 1, 1, tzinfo=madrid)
    assert report.end_at is None and report.max_runs is None
    assert report.missed is Missed.LATEST
    assert report.on_failure == "os.path:basename"


def test_schema_covers_every_process_field() -> None:
    model = {f.name for f in dataclasses.fields(ProcessDef)} - {"name", "source"}
    assert set(ProcessSpec.model_fields) == model
    assert set(DefaultsSpec.model_fields) == model - PROCESS_ONLY


def test_empty_file_is_an_empty_registry(write: Write) -> None:
    assert load_files([write("empty.yaml", "# nothing yet\n")]) == RegistryDef()


def test_yaml_12_scalars(write: Write) -> None:
    text = """\
    ranking: priority
    processes:
      on:
        run: os.path:join
        not_before: 13:00
        priority: 010
        resources: {memory: 4e9, gpu: "1.5e0", cpu: 2}
    """
    registry = load_files([write("r.yaml", text)])
    process = registry.processes["on"]  # YAML 1.1 would make this key True
    assert process.not_before == time(13, 0)  # YAML 1.1 would read 780
    assert process.priority == 10  # YAML 1.1 would read octal 8
    assert process.resources == {"memory": 4e9, "gpu": 1.5, "cpu": 2.0}
    assert registry.ranking is Ranking.PRIORITY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"03:00"', time(3)),
        ('"3:05:30"', time(3, 5, 30)),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=ZoneInfo("Asia/Tokyo"))),
        ('"2026-03-01T10:00"', datetime(2026, 3, 1, 10, tzinfo=ZoneInfo("Asia/Tokyo"))),
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ('"2026-03-01T10:00:00+02:00"', datetime(2026, 3, 1, 8, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=ZoneInfo("Asia/Tokyo"))),
    ],
)
def test_not_before_time_of_day_or_datetime_in_registry_timezone(
    write: Write, value: str, expected: time | datetime
) -> None:
    text = process_yaml(f"run: os.path:join\nnot_before: {value}\n", extra="timezone: Asia/Tokyo\n")
    not_before = load_files([write("r.yaml", text)]).processes["job"].not_before
    assert not_before == expected
    assert isinstance(not_before, type(expected))
    if isinstance(not_before, datetime):
        assert not_before.tzinfo is not None


def test_merge_keys_and_x_keys_for_anchors(write: Write) -> None:
    text = """\
    x-common: &common
      run: os.path:join
      retries: 2
    processes:
      a:
        <<: *common
        retries: 5
      b:
        <<: *common
        priority: x
    """
    problem = only_problem(write("r.yaml", text))
    assert (problem.line, problem.path) == (10, "processes.b.priority")
    text = text.replace("priority: x", "priority: 1")
    processes = load_files([write("r.yaml", text)]).processes
    assert (processes["a"].retries, processes["b"].retries) == (5, 2)
    assert processes["b"].run == "os.path:join"


def test_files_share_settings_and_keep_their_own_defaults(write: Write) -> None:
    a = write(
        "a.yaml",
        """\
        timezone: Europe/Madrid
        pools: {warehouse: 2}
        defaults: {retries: 5, pool: warehouse}
        processes:
          extract: {run: os.path:join}
        """,
    )
    b = write(
        "b.yaml",
        """\
        timezone: Europe/Madrid
        processes:
          report: {run: os.path:join, ancestors: [extract], pool: warehouse}
        """,
    )
    registry = load_files([a, b])
    assert registry.timezone == "Europe/Madrid"
    assert registry.processes["extract"].retries == 5
    assert registry.processes["extract"].pool == "warehouse"
    assert registry.processes["report"].retries == 0  # a.yaml's defaults stay in a.yaml
    assert registry.processes["report"].source == Source(file="b.yaml", line=3)


# -- one test per error kind ----------------------------------------------------------------------


def test_yaml_syntax_error_names_the_line(write: Write) -> None:
    path = write("bad.yaml", "processes:\n  job:\n    run: [os.path:join\n    retries: 1\n")
    problem = only_problem(path)
    assert (problem.file, problem.line, problem.process) == ("bad.yaml", 4, None)
    assert problem.message.startswith("invalid YAML: while parsing a flow sequence")


def test_character_yaml_does_not_allow(write: Write) -> None:
    problem = only_problem(write("bad.yaml", 'processes:\n  job: {command: "a\x07"}\n'))
    assert str(problem) == "bad.yaml:2: invalid YAML: character #x0007 is not allowed"


def test_unreadable_file(write: Write) -> None:
    problem = only_problem("missing.yaml")
    assert str(problem) == "missing.yaml: cannot read: No such file or directory"


def test_top_level_must_be_a_mapping(write: Write) -> None:
    assert "must be a mapping" in only_problem(write("list.yaml", "- a\n- b\n")).message


def test_processes_must_be_a_mapping(write: Write) -> None:
    problem = only_problem(write("r.yaml", "processes: [a, b]\n"))
    assert (problem.line, problem.path) == (1, "processes")


def test_unknown_keys_everywhere_with_suggestions(write: Write) -> None:
    text = """\
    timezon: UTC
    defaults: {retrys: 1, run: os.path:join}
    processes:
      job:
        run: os.path:join
        priorty: 3
    """
    problems = problems_of(write("r.yaml", text))
    assert [str(p) for p in problems] == [
        "r.yaml:1: unknown key 'timezon' (did you mean 'timezone'?) (timezon)",
        "r.yaml:2: unknown key 'retrys' (did you mean 'retries'?) (defaults.retrys)",
        "r.yaml:2: 'run' cannot be a default; set it in each process (defaults.run)",
        "r.yaml:6: process 'job': unknown key 'priorty' (did you mean 'priority'?)"
        " (processes.job.priorty)",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("priority", '"high"', "valid integer, got 'high'"),
        ("priority", "1.5", "valid integer, got 1.5"),
        ("retries", '"3"', "valid integer, got '3'"),
        ("reserve", "yes", "valid boolean, got 'yes'"),
        ("hold", "1", "valid boolean, got 1"),
        ("params", "[1, 2]", "params must be a mapping"),
        ("params", "{when: 2026-01-01}", "quote dates"),
        ("ancestors", "extract", "valid list, got 'extract'"),
        ("command", '["sleep", 5]', "must be strings (quote them), got 5"),
        ("missed", "sometimes", "'latest', 'all' or 'skip'"),
        ("max_active", "0", "greater than or equal to 1, got 0"),
        ("retries", "-1", "greater than or equal to 0, got -1"),
        ("retry_backoff", "0.5", "greater than or equal to 1, got 0.5"),
        ("max_runs", "0", "greater than or equal to 1, got 0"),
        ("timeout", "0", "greater than zero"),
        ("retry_delay", "soon", "invalid duration 'soon'"),
        ("refresh_window", "-1", "invalid duration -1"),
        ("every", "1x", "invalid duration '1x'"),
        ("cron", '"61 * * * *"', "invalid cron expression '61 * * * *'"),
        ("on_failure", "notify", "expected 'module:callable', got 'notify'"),
        ("not_before", '"25:00"', "expected a time of day HH:MM[:SS] or an ISO-8601 datetime"),
        ("start_at", '"03:00"', "expected an ISO-8601 datetime"),
    ],
)
def test_wrong_types_and_values(write: Write, field: str, value: str, message: str) -> None:
    run = "" if field == "command" else "run: os.path:join\n"
    text = process_yaml(f"enabled: true\n{run}{field}: {value}\n", name="build_report")
    problem = only_problem(write("etl.yaml", text))
    assert message in problem.message
    assert (problem.file, problem.process, problem.path) == (
        "etl.yaml",
        "build_report",
        f"processes.build_report.{field}",
    )
    assert problem.line == (4 if field == "command" else 5)


def test_nested_error_points_at_the_inner_key(write: Write) -> None:
    text = process_yaml("run: os.path:join\nresources:\n  memory: 4e9\n  cpu: lots\n")
    problem = only_problem(write("r.yaml", text))
    assert str(problem) == (
        "r.yaml:6: process 'job': resource amount must be a number >= 0, got 'lots'"
        " (processes.job.resources.cpu)"
    )


@pytest.mark.parametrize(
    ("text", "line", "message", "path"),
    [
        ("timezone: Mars/Olympus\n", 1, "unknown timezone 'Mars/Olympus'", "timezone"),
        ("slots: 0\n", 1, "greater than or equal to 1, got 0", "slots"),
        ("slots: many\n", 1, "valid integer, got 'many'", "slots"),
        ("pools:\n  a: 1\n  b: 0\n", 3, "greater than or equal to 1, got 0", "pools.b"),
        ("ranking: fifo\n", 1, "'adp' or 'priority'", "ranking"),
        ("defaults: 3\n", 1, "defaults must be a mapping", "defaults"),
    ],
)
def test_bad_settings(write: Write, text: str, line: int, message: str, path: str) -> None:
    problem = only_problem(write("r.yaml", text))
    assert (problem.line, problem.path, problem.process) == (line, path, None)
    assert message in problem.message


def test_duplicate_yaml_keys_are_errors(write: Write) -> None:
    text = """\
    processes:
      job:
        run: os.path:join
        retries: 1
        retries: 2
      job:
        run: os.path:join
    """
    problems = problems_of(write("r.yaml", text))
    assert [str(p) for p in problems] == [
        "r.yaml:5: process 'job': duplicate key 'retries' (first at line 4)"
        " (processes.job.retries)",
        "r.yaml:6: process 'job': duplicate process 'job' (first at line 2) (processes.job)",
    ]


def test_duplicate_process_across_files(write: Write) -> None:
    a = write("a.yaml", "processes:\n  job: {run: os.path:join}\n")
    b = write("b.yaml", "processes:\n  other: {run: os.path:join}\n  job: {command: 'true'}\n")
    assert str(only_problem(a, b)) == (
        "b.yaml:3: process 'job': duplicate process 'job' (first defined at a.yaml:2)"
        " (processes.job)"
    )


def test_settings_repeated_in_files_must_agree(write: Write) -> None:
    a = write("a.yaml", "timezone: Europe/Madrid\nslots: 4\npools: {w: 1}\n")
    b = write("b.yaml", "pools: {w: 1}\nslots: 4\ntimezone: UTC\n")  # equal pools, slots: fine
    assert str(only_problem(a, b)) == (
        "b.yaml:3: timezone 'UTC' differs from 'Europe/Madrid' at a.yaml:1; files must agree"
        " (timezone)"
    )


def test_unknown_ancestor(write: Write) -> None:
    text = """\
    processes:
      extract_orders: {run: os.path:join}
      build_report:
        run: os.path:join
        ancestors: [extract_order]
    """
    assert str(only_problem(write("workflows.yaml", text))) == (
        "workflows.yaml:5: process 'build_report': unknown ancestor 'extract_order'"
        " (did you mean 'extract_orders'?) (processes.build_report.ancestors[0])"
    )


def test_ancestor_in_another_file_is_known(write: Write) -> None:
    a = write("a.yaml", "processes:\n  report: {run: os.path:join, ancestors: [extract]}\n")
    b = write("b.yaml", "processes:\n  extract: {run: os.path:join}\n")
    assert set(load_files([a, b]).processes) == {"report", "extract"}


def test_self_dependency_and_repeated_ancestor(write: Write) -> None:
    text = process_yaml("run: os.path:join\nancestors:\n  - job\n  - other\n  - other\n")
    text += "  other: {run: os.path:join}\n"
    problems = problems_of(write("r.yaml", text))
    assert [(p.line, p.message, p.path) for p in problems] == [
        (5, "lists itself as an ancestor", "processes.job.ancestors[0]"),
        (7, "ancestor 'other' listed twice", "processes.job.ancestors[2]"),
    ]


def test_cycle_shows_its_path(write: Write) -> None:
    text = """\
    processes:
      a: {run: os.path:join, ancestors: [c]}
      b: {run: os.path:join, ancestors: [a]}
      c: {run: os.path:join, ancestors: [b]}
      d: {run: os.path:join, ancestors: [a]}
    """
    assert str(only_problem(write("r.yaml", text))) == (
        "r.yaml:2: process 'a': dependency cycle a -> b -> c -> a (each is an ancestor of the"
        " next) (processes.a.ancestors[0])"
    )


def test_cycle_across_files(write: Write) -> None:
    a = write("a.yaml", "processes:\n  x: {run: os.path:join, ancestors: [y]}\n")
    b = write("b.yaml", "processes:\n  y: {run: os.path:join, ancestors: [x]}\n")
    assert "dependency cycle x -> y -> x" in only_problem(a, b).message


def test_unknown_pool(write: Write) -> None:
    text = process_yaml("run: os.path:join\npool: warehose\n", extra="pools: {warehouse: 2}\n")
    assert str(only_problem(write("r.yaml", text))) == (
        "r.yaml:5: process 'job': unknown pool 'warehose' (pools: 'warehouse') (processes.job.pool)"
    )


def test_unknown_pool_in_defaults_is_reported_once(write: Write) -> None:
    text = "defaults: {pool: w}\nprocesses:\n  a: {run: os.path:join}\n  b: {command: x}\n"
    problem = only_problem(write("r.yaml", text))
    assert (problem.line, problem.path, problem.process) == (1, "defaults.pool", None)
    assert "none are defined" in problem.message


def test_pool_with_bad_size_does_not_also_make_it_unknown(write: Write) -> None:
    text = process_yaml("run: os.path:join\npool: w\n", extra="pools: {w: 0}\n")
    assert only_problem(write("r.yaml", text)).path == "pools.w"


@pytest.mark.parametrize(
    ("body", "line", "message", "path"),
    [
        ("run: os.path:join\ncommand: ls\n", 4, "has both 'run' and 'command'", "command"),
        ("retries: 1\n", 2, "needs 'run' (module:callable) or 'command'", ""),
        ("command: ls\ncron: '* * * * *'\nevery: 1m\n", 5, "has both 'cron' and 'every'", "every"),
        (
            "command: ls\nstart_at: 2026-02-01\nend_at: 2026-01-01\n",
            5,
            "end_at 2026-01-01 00:00:00+00:00 must be after start_at 2026-02-01",
            "end_at",
        ),
    ],
)
def test_cross_field_rules(write: Write, body: str, line: int, message: str, path: str) -> None:
    problem = only_problem(write("r.yaml", process_yaml(body)))
    assert (problem.line, problem.process) == (line, "job")
    assert problem.path == "processes.job" + (f".{path}" if path else "")
    assert message in problem.message


def test_empty_process_needs_run_or_command(write: Write) -> None:
    problem = only_problem(write("r.yaml", "processes:\n  job:\n"))
    assert (problem.line, problem.message) == (2, "needs 'run' (module:callable) or 'command'")


def test_process_must_be_a_mapping(write: Write) -> None:
    text = "processes:\n  job: os.path:join\n  report: {run: os.path:join, ancestors: [job]}\n"
    assert "must be a mapping of fields" in only_problem(write("r.yaml", text)).message


@pytest.mark.parametrize("name", ["9lives", "bad name", "-x", "a/b"])
def test_invalid_process_names(write: Write, name: str) -> None:
    problem = only_problem(write("r.yaml", f"processes:\n  '{name}': {{command: ls}}\n"))
    assert (problem.line, problem.process) == (2, name)
    assert f"invalid process name {name!r}" in problem.message


@pytest.mark.parametrize(
    ("field", "target", "message"),
    [
        ("run", "no_such_module_xyz:main", "ModuleNotFoundError: No module named"),
        ("run", "os.path:no_such_function", "AttributeError:"),
        ("run", "os:sep", "'os:sep' is not callable (it is a str)"),
        ("on_success", "no_such_module_xyz:f", "on_success: cannot import"),
        ("on_failure", "os.path:nope", "on_failure: cannot import 'os.path:nope'"),
        ("on_cancel", "os:sep", "on_cancel: 'os:sep' is not callable"),
    ],
)
def test_unusable_targets(write: Write, field: str, target: str, message: str) -> None:
    body = f"{field}: {target}\n" + ("" if field == "run" else "command: ls\n")
    problem = only_problem(write("r.yaml", process_yaml(body)))
    assert (problem.line, problem.path) == (3, f"processes.job.{field}")
    assert message in problem.message


def test_targets_import_from_the_working_directory(write: Write, tmp_path: Path) -> None:
    package = f"jobs_{uuid.uuid4().hex}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "etl.py").write_text("def extract(table):\n    return table\n")
    (tmp_path / package / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    assert str(tmp_path) not in sys.path
    try:
        good = write("good.yaml", process_yaml(f"run: {package}.etl:extract\n"))
        assert load_files([good]).processes["job"].run == f"{package}.etl:extract"
        bad = write("bad.yaml", process_yaml(f"run: {package}.broken:f\n"))
        assert "RuntimeError: boom at import" in only_problem(bad).message
        assert str(tmp_path) not in sys.path
    finally:
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_a_file_with_many_errors_reports_all_of_them(write: Write) -> None:
    good = write("good.yaml", "processes:\n  extract: {run: os.path:join}\n")
    text = """\
    timezone: Nowhere/City
    slots: 0
    processes:
      a:
        run: os.path:join
        priority: high
        every: soon
        ancestors: [extract, ghost]
        pool: none
      b:
        command: [ls]
        retries: -2
        retries: 3
        timeout: forever
      "bad name":
        run: os.path:join
        on_failure: os:sep
    """
    bad = write("bad.yaml", text)
    problems = problems_of(good, bad)
    assert all(p.file == "bad.yaml" for p in problems)
    assert [(p.line, p.process, p.path) for p in problems] == [
        (1, None, "timezone"),
        (2, None, "slots"),
        (6, "a", "processes.a.priority"),
        (7, "a", "processes.a.every"),
        (8, "a", "processes.a.ancestors[1]"),
        (9, "a", "processes.a.pool"),
        (13, "b", "processes.b.retries"),
        (14, "b", "processes.b.timeout"),
        (15, "bad name", "processes.bad name"),
        (17, "bad name", "processes.bad name.on_failure"),
    ]
    with pytest.raises(DefinitionError, match=r"^10 problems in the registry:\n  bad.yaml:1: "):
        load_files([good, bad])


def test_defaults_problems_are_reported_once_at_the_defaults(write: Write) -> None:
    text = """\
    defaults: {start_at: 2026-02-01, end_at: 2026-01-01, on_failure: os:sep}
    processes:
      a: {command: ls}
      b: {command: ls}
    """
    problems = problems_of(write("r.yaml", text))
    assert [(p.line, p.path) for p in problems] == [
        (1, "defaults.end_at"),
        (1, "defaults.on_failure"),
    ]


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["15m", "os.path:join", "0 3 * * *", "03:00", "2026-01-01T00:00:00", "a"]),
)
_keys = st.sampled_from([*ProcessSpec.model_fields, "timezone", "pools", "processes", "zzz"])
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)
_documents = st.fixed_dictionaries(
    {"processes": st.dictionaries(st.sampled_from(["a", "b", "c d"]), _values, max_size=3)},
    optional={"defaults": _values, "pools": _values, "slots": _values},
)


# the file is rewritten for every example, so sharing tmp_path is safe
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=_documents)
def test_any_document_gives_a_registry_or_a_definition_error(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        registry = load_files([path])
    except DefinitionError as exc:
        assert exc.problems and all(p.file == str(path) for p in exc.problems)
    else:
        assert set(registry.processes) <= set(document["processes"])


def test_errors_in_several_files_come_in_file_order(write: Write) -> None:
    a = write("a.yaml", process_yaml("command: ls\nretries: x\n"))
    b = write("b.yaml", process_yaml("command: ls\npriority: x\n", name="other"))
    assert [(p.file, p.line) for p in problems_of(b, a)] == [("b.yaml", 4), ("a.yaml", 4)]


# -- JSON Schema ----------------------------------------------------------------------------------


def test_json_schema_accepts_the_example_and_rejects_bad_values(write: Write) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    document = yaml.safe_load(SPEC_EXAMPLE)
    document["processes"]["build_report"]["start_at"] = "2026-01-01T00:00:00"
    document["x-anchors"] = {"anything": 1}
    jsonschema.validate(document, schema)
    for bad in ({"priority": "high"}, {"every": "soon"}, {"unknown": 1}, {"max_active": 0}):
        broken = {"processes": {"job": {"run": "os.path:join", **bad}}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"processes": {"bad name": {"command": "ls"}}}, schema)


# -- revise ---------------------------------------------------------------------------------------


@pytest.fixture
def registry(write: Write) -> RegistryDef:
    return load_files([write("etl.yaml", SPEC_EXAMPLE)])


def revised(registry: RegistryDef, changes: Mapping[str, Any], name: str = "build_report") -> Any:
    return revise(registry, name, changes).processes[name]


def test_revise_reads_command_line_text_as_yaml(registry: RegistryDef) -> None:
    process = revised(
        registry,
        {
            "priority": "200",
            "hold": "true",
            "timeout": "15m",
            "ancestors": "[extract_orders]",
            "params": "{day: today}",
            "start_at": "2026-06-01T00:00:00",
            "not_before": "04:30",
            "missed": "all",
        },
    )
    assert process.priority == 200 and process.hold is True
    assert process.timeout == timedelta(minutes=15)
    assert process.ancestors == ("extract_orders",)
    assert process.params == {"day": "today"}
    assert process.start_at == datetime(2026, 6, 1, tzinfo=ZoneInfo("Europe/Madrid"))
    assert process.not_before == time(4, 30)
    assert process.missed is Missed.ALL
    assert process.source == Source(file="etl.yaml", line=16)


def test_revise_accepts_python_values_and_keeps_the_rest(registry: RegistryDef) -> None:
    before = registry.processes["build_report"]
    after = revised(registry, {"retries": 7, "retry_delay": timedelta(seconds=5), "hold": True})
    assert after == dataclasses.replace(
        before, retries=7, retry_delay=timedelta(seconds=5), hold=True
    )
    assert registry.processes["build_report"] is before  # the input is not modified


def test_revise_none_restores_the_builtin_default(registry: RegistryDef) -> None:
    process = revised(registry, {"timeout": None, "retries": "null", "pool": None})
    assert (process.timeout, process.retries, process.pool) == (None, 0, None)


def test_revise_run_replaces_command_and_cron_replaces_every(registry: RegistryDef) -> None:
    process = revised(registry, {"run": "os.path:join", "cron": "*/5 * * * *"}, "extract_customers")
    assert (process.run, process.command, process.cron, process.every) == (
        "os.path:join",
        None,
        "*/5 * * * *",
        None,
    )


def test_revise_unknown_process(registry: RegistryDef) -> None:
    with pytest.raises(ProcessNotFound, match="no process named 'nope'"):
        revise(registry, "nope", {"hold": True})


@pytest.mark.parametrize(
    ("changes", "message", "path"),
    [
        ({"priority": "high"}, "valid integer, got 'high'", "priority"),
        ({"retries": -1}, "greater than or equal to 0", "retries"),
        ({"timeout": "soon"}, "invalid duration 'soon'", "timeout"),
        ({"color": "red"}, "unknown key 'color'", "color"),
        ({"pool": "nowhere"}, "unknown pool 'nowhere'", "pool"),
        ({"ancestors": ["ghost"]}, "unknown ancestor 'ghost'", "ancestors[0]"),
        ({"ancestors": ["build_report"]}, "lists itself as an ancestor", "ancestors[0]"),
        ({"run": "no_such_module_xyz:f"}, "No module named 'no_such_module_xyz'", "run"),
        ({"run": None}, "needs 'run' (module:callable) or 'command'", ""),
        ({"end_at": "2025-01-01T00:00:00"}, "must be after start_at", "end_at"),
    ],
)
def test_revise_rejects_bad_values_naming_the_source(
    registry: RegistryDef, changes: Mapping[str, Any], message: str, path: str
) -> None:
    with pytest.raises(DefinitionError) as info:
        revise(registry, "build_report", changes)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.process) == ("etl.yaml", 16, "build_report")
    assert problem.path == "processes.build_report" + (f".{path}" if path else "")
    assert message in problem.message


def test_revise_detects_a_cycle_it_would_create(registry: RegistryDef) -> None:
    with pytest.raises(DefinitionError) as info:
        revise(registry, "extract_orders", {"ancestors": "[build_report]"})
    assert "dependency cycle build_report -> extract_orders -> build_report" in str(info.value)


def test_revise_without_source_names_set(registry: RegistryDef) -> None:
    process = dataclasses.replace(registry.processes["extract_orders"], source=None)
    bare = dataclasses.replace(registry, processes={"extract_orders": process})
    with pytest.raises(DefinitionError) as info:
        revise(bare, "extract_orders", {"priority": "high"})
    assert str(info.value.problems[0]).startswith("<set>: process 'extract_orders': ")


def test_revise_checks_only_changed_targets(registry: RegistryDef) -> None:
    # a target that does not import here (e.g. `planner hold` run from another directory)
    process = dataclasses.replace(registry.processes["extract_orders"], run="elsewhere_xyz:job")
    moved = dataclasses.replace(
        registry, processes={**registry.processes, "extract_orders": process}
    )
    assert revised(moved, {"hold": "true"}, "extract_orders").hold is True


def test_revise_round_trips_every_field(registry: RegistryDef) -> None:
    for name, process in registry.processes.items():
        assert revise(registry, name, {}).processes[name] == process
