"""Templates (``foreach``): expansion, placeholders, ancestors (template names and pairs), errors
that name file, line, template and item, the store's record of membership, the JSON Schema, and
a 2,000-item template that validates, applies and runs on a real LocalCluster."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from planner.live.dispatch import Dispatcher
from planner.live.loop import LiveDriver
from planner.simulation.simulate import simulate
from registry.definitions.loader import load_files
from registry.definitions.schema import json_schema
from registry.definitions.templates import members, templates_of
from registry.errors import DefinitionError, Problem
from registry.lifecycle import RunStatus
from registry.model import Source
from registry.storage.sqlstore import SqlStore

Write = Callable[[str, str], str]
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

SPEC_EXAMPLE = """\
processes:
  extract:
    foreach: [orders, customers, products]
    run: workflows.jobs.demo:noop
    params: {table: "{item}"}
    expected_duration: 10m
  load:
    run: workflows.jobs.demo:noop
    ancestors: [extract]
    expected_duration: 1m
  publish:
    foreach: [orders, customers, products]
    run: workflows.jobs.demo:noop
    ancestors: ["extract.{item}"]
    expected_duration: 1m
"""


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """Write a YAML file in a fresh working directory; returns its (relative) name."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # workflows.jobs importable

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write


def problems_of(*paths: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        load_files(paths)
    return list(info.value.problems)


# -- expansion and placeholders -----------------------------------------------------------------


def test_the_spec_example_expands_to_one_process_per_item(write: Write) -> None:
    path = write("etl.yaml", SPEC_EXAMPLE)
    registry = load_files([path])
    assert sorted(registry.processes) == [
        "extract.customers",
        "extract.orders",
        "extract.products",
        "load",
        "publish.customers",
        "publish.orders",
        "publish.products",
    ]
    orders = registry.processes["extract.orders"]
    assert orders.params == {"table": "orders"}
    assert orders.source == Source(file=path, line=2, template="extract", item="orders")
    assert orders.template == "extract" and registry.processes["load"].template is None
    # a template's name means every process of it, in item order; "extract.{item}" pairs
    assert registry.processes["load"].ancestors == (
        "extract.orders",
        "extract.customers",
        "extract.products",
    )
    assert registry.processes["publish.customers"].ancestors == ("extract.customers",)
    assert members(registry, "extract") == [
        "extract.customers",
        "extract.orders",
        "extract.products",
    ]
    assert members(registry, "load") == [] and members(registry, "nothing") == []
    assert list(templates_of(registry)) == ["extract", "publish"]


def test_mapping_items_fill_keys_and_whole_placeholders_keep_their_type(write: Write) -> None:
    path = write(
        "m.yaml",
        """\
        processes:
          sync:
            foreach:
              eu: {rows: 5e6, prio: 7, cmd: [a, b], late: "04:30"}
              us: {rows: 12, prio: -1, cmd: [c], late: "05:00"}
            command: "sync --region {item} --rows {item.rows} --args {item.cmd} '{print $1}'"
            priority: "{item.prio}"
            not_before: "{item.late}"
            params: {rows: "{item.rows}", name: "{item}", literal: "{{item}} and {{item.rows}}"}
            retries: 2
        """,
    )
    registry = load_files([path])
    eu, us = registry.processes["sync.eu"], registry.processes["sync.us"]
    assert eu.command == 'sync --region eu --rows 5000000.0 --args ["a", "b"] \'{print $1}\''
    assert (eu.priority, us.priority) == (7, -1)  # an integer, not the text "7"
    assert str(eu.not_before) == "04:30:00"
    assert eu.params == {"rows": 5e6, "name": "eu", "literal": "{item} and {item.rows}"}
    assert us.params["rows"] == 12 and isinstance(us.params["rows"], int)
    assert eu.retries == us.retries == 2  # values without placeholders stay as written


def test_list_items_may_be_integers_and_defaults_apply(write: Write) -> None:
    path = write(
        "y.yaml",
        """\
        defaults: {retries: 3}
        processes:
          year:
            foreach: [2024, 2025, "q1_2026"]
            run: workflows.jobs.demo:noop
            params: {year: "{item}", label: "year {item}"}
        """,
    )
    registry = load_files([path])
    assert sorted(registry.processes) == ["year.2024", "year.2025", "year.q1_2026"]
    assert registry.processes["year.2024"].params == {"year": 2024, "label": "year 2024"}
    assert registry.processes["year.2025"].retries == 3


def test_an_empty_foreach_is_a_template_without_processes(write: Write) -> None:
    path = write(
        "e.yaml",
        """\
        processes:
          none: {foreach: [], run: workflows.jobs.demo:noop}
          after: {run: workflows.jobs.demo:noop, ancestors: [none]}
        """,
    )
    registry = load_files([path])
    assert list(registry.processes) == ["after"]
    assert registry.processes["after"].ancestors == ()


# -- errors: file, line, template, item ---------------------------------------------------------


def test_bad_items_name_file_line_and_template(write: Write) -> None:
    path = write(
        "bad.yaml",
        """\
        processes:
          t:
            foreach:
              - ok
              - "has space"
              - -lead
              - ok
              - true
              - x
            run: workflows.jobs.demo:noop
        """,
    )
    problems = problems_of(path)
    assert [(p.file, p.line, p.template, p.process) for p in problems] == [
        (path, 5, "t", None),
        (path, 6, "t", None),
        (path, 7, "t", None),
        (path, 8, "t", None),
    ]
    messages = [p.message for p in problems]
    assert "invalid item 'has space'" in messages[0] and "invalid item '-lead'" in messages[1]
    assert "item 'ok' is listed twice (first at line 4)" in messages[2]
    assert "must be strings or integers" in messages[3]
    assert str(problems[0]).startswith(f"{path}:5: template 't': invalid item 'has space'")


def test_an_item_making_too_long_a_name_is_refused(write: Write) -> None:
    path = write(
        "long.yaml", f"processes:\n  t:\n    foreach: [{'x' * 199}]\n    run: os.path:join\n"
    )
    [problem] = problems_of(path)
    assert problem.line == 3 and problem.template == "t"
    assert "201 characters is too long" in problem.message


@pytest.mark.parametrize("value", ["abc", "7", "null", "{a: 1}", "{b: [x]}"])
def test_foreach_must_be_a_list_or_a_mapping_of_mappings(write: Write, value: str) -> None:
    path = write("f.yaml", f"processes:\n  t:\n    run: os.path:join\n    foreach: {value}\n")
    [problem] = problems_of(path)
    assert (problem.file, problem.line, problem.template) == (path, 4, "t")
    assert "foreach must be a list" in problem.message or "values must be a mapping" in (
        problem.message
    )


def test_a_missing_key_names_template_item_and_the_line_of_the_string(write: Write) -> None:
    path = write(
        "k.yaml",
        """\
        processes:
          t:
            foreach: {a: {size: 1}, b: {}}
            run: workflows.jobs.demo:noop
            params:
              size: "{item.size}"
          l:
            foreach: [x]
            run: workflows.jobs.demo:noop
            params: {size: "{item.size}"}
        """,
    )
    problems = problems_of(path)
    assert [(p.line, p.process, p.template, p.item) for p in problems] == [
        (6, "t.b", "t", "b"),
        (10, "l.x", "l", "x"),
    ]
    assert problems[0].message == "{item.size}: the item has no key 'size'"
    assert problems[0].path == "processes.t.params.size"
    assert "foreach is a list" in problems[1].message
    assert str(problems[0]) == (
        f"{path}:6: process 't.b' (template 't', item 'b'): {{item.size}}: the item has no key "
        "'size' (processes.t.params.size)"
    )


def test_a_pairing_with_an_item_the_other_template_lacks_names_both(write: Write) -> None:
    path = write(
        "p.yaml",
        """\
        processes:
          extract:
            foreach: [orders, customers]
            run: workflows.jobs.demo:noop
          publish:
            foreach: [orders, products]
            run: workflows.jobs.demo:noop
            ancestors:
              - "extract.{item}"
        """,
    )
    [problem] = problems_of(path)
    assert (problem.line, problem.process, problem.template, problem.item) == (
        9,
        "publish.products",
        "publish",
        "products",
    )
    assert "'publish'" in problem.message and "'extract'" in problem.message
    assert "lacks this item" in problem.message


def test_field_errors_of_every_item_are_one_group_at_the_template_line(write: Write) -> None:
    items = ", ".join(f"i{n}" for n in range(50))
    path = write(
        "g.yaml",
        f"processes:\n  t:\n    foreach: [{items}]\n    run: os.path:join\n    retries: x\n",
    )
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    assert len(info.value.problems) == 50
    [group] = info.value.grouped()
    assert str(group).startswith(f"{path}:5: template 't', 50 items (i0, i1, i2, i3, i4, … and 45")
    assert str(info.value).count("\n") == 1  # the heading, then one line


def test_names_clash_between_templates_processes_and_files(write: Write) -> None:
    a = write("a.yaml", "processes:\n  t: {foreach: [x], run: os.path:join}\n")
    b = write(
        "b.yaml",
        "processes:\n  t: {run: os.path:join}\n  t.x: {run: os.path:join}\n  u: {foreach: [y],"
        " run: os.path:join, ancestors: [t, nope]}\n",
    )
    problems = problems_of(a, b)
    texts = [(p.file, p.line, p.message) for p in problems]
    assert (b, 2, f"duplicate process 't' (first defined at {a}:2)") in texts
    assert (b, 3, f"duplicate process 't.x' (first defined at {a}:2)") in texts
    assert any(p.process == "u.y" and "unknown ancestor 'nope'" in p.message for p in problems)


def test_foreach_is_not_a_default_and_a_typo_is_suggested(write: Write) -> None:
    path = write(
        "d.yaml",
        "defaults: {foreach: [a]}\nprocesses:\n  p: {run: os.path:join, for_each: [a]}\n",
    )
    messages = [p.message for p in problems_of(path)]
    assert "'foreach' cannot be a default; set it in each process" in messages
    assert "unknown key 'for_each' (did you mean 'foreach'?)" in messages


def test_a_cycle_through_a_template_names_the_line_of_the_ancestor(write: Write) -> None:
    path = write(
        "c.yaml",
        """\
        processes:
          a:
            run: os.path:join
            ancestors: [b]
          b:
            foreach: [x]
            run: os.path:join
            ancestors:
              - a
        """,
    )
    [problem] = problems_of(path)
    assert "dependency cycle a -> b.x -> a" in problem.message and problem.line == 4


# -- ordering, the store, the schema ------------------------------------------------------------


def test_paired_ancestors_order_the_right_processes(write: Write) -> None:
    """Two slots, three 10-minute extracts: each ``publish.ITEM`` starts after its own
    ``extract.ITEM`` — and only that one, so the first publish starts before the last extract
    ends — while ``load`` (ancestor: the template) waits for every extract."""
    registry = load_files([write("etl.yaml", SPEC_EXAMPLE)])
    sim = simulate(registry, start=NOW, until=NOW + timedelta(days=1), slots=2)
    runs = {r.process: r for r in sim.runs}
    assert len(runs) == 7 and all(r.status is RunStatus.SUCCEEDED for r in runs.values())
    items = ("orders", "customers", "products")
    for item in items:
        assert runs[f"publish.{item}"].start >= runs[f"extract.{item}"].end
    last_extract = max(runs[f"extract.{i}"].end for i in items)
    assert runs["load"].start >= last_extract
    assert min(runs[f"publish.{i}"].start for i in items) < last_extract


def test_the_fanout_workflow_expands_and_orders_as_drawn(write: Write) -> None:
    registry = load_files(["workflows/fanout.yaml"])  # from the repository root (``write``)
    assert members(registry, "fan_extract") == ["fan_extract.customers", "fan_extract.orders"]
    assert registry.processes["fan_extract.orders"].priority == 10
    assert registry.processes["fan_extract.customers"].params["rows"] == 500
    sim = simulate(registry, start=NOW, until=NOW + timedelta(hours=1))
    runs = {r.process: r for r in sim.runs}
    assert len(runs) == 6 and all(r.status is RunStatus.SUCCEEDED for r in runs.values())
    for table in ("orders", "customers"):
        assert runs[f"fan_check.{table}"].start >= runs[f"fan_extract.{table}"].end
        assert runs["fan_transform"].start >= runs[f"fan_extract.{table}"].end
    assert runs["fan_report"].start >= runs["fan_transform"].end


def test_the_store_keeps_the_template_and_item(write: Write, store_url: str) -> None:
    registry = load_files([write("etl.yaml", SPEC_EXAMPLE)])
    with SqlStore(store_url) as store:
        store.apply(registry, now=NOW)
        loaded, _ = store.load_registry()
        assert (
            loaded.processes["publish.orders"].source == registry.processes["publish.orders"].source
        )
        assert members(loaded, "publish") == members(registry, "publish")
        assert not loaded.invalid
        revision = store.registry_revision()
        assert store.apply(registry, now=NOW).unchanged
        assert store.registry_revision() == revision  # equal rows are not written again
        held = store.update_process("publish.orders", {"hold": True})
        assert held.template == "publish" and held.hold


def test_the_json_schema_takes_templates_and_their_placeholders() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    good = {
        "processes": {
            "extract": {
                "foreach": ["orders", 2024],
                "run": "workflows.jobs.etl:extract",
                "params": {"table": "{item}"},
            },
            "publish": {
                "foreach": {"orders": {"prio": 5}, "customers": None},
                "run": "workflows.jobs.{item}:publish",
                "priority": "{item.prio}",
                "ancestors": ["extract.{item}", "extract"],
            },
        }
    }
    jsonschema.validate(good, schema)
    for bad in (
        {"t": {"foreach": "abc", "run": "m:f"}},
        {"t": {"foreach": ["has space"], "run": "m:f"}},
        {"t": {"foreach": {"a": 1}, "run": "m:f"}},
        {"t": {"run": "m:f", "priority": "{item.prio}"}},  # a placeholder outside a template
        {"t": {"foreach": ["a"], "run": "m:f", "priority": "high"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"processes": bad}, schema)


# -- 2,000 items on a real cluster --------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.mark.integration
def test_a_template_of_2000_items_validates_applies_and_runs(
    write: Write, tmp_path: Path, client: Client
) -> None:
    items = ", ".join(f"n{i:04d}" for i in range(2000))
    path = write(
        "big.yaml",
        f"""\
        slots: 2
        processes:
          job:
            foreach: [{items}]
            run: workflows.jobs.demo:noop
          after:
            run: workflows.jobs.demo:noop
            ancestors: [job]
        """,
    )
    registry = load_files([path])
    assert len(members(registry, "job")) == 2000 and len(registry.processes) == 2001
    with SqlStore(f"sqlite:///{tmp_path}/planner.db") as store:
        result = store.apply(registry, now=datetime.now(UTC))
        assert len(result.added) == 2001
        driver = LiveDriver(store, Dispatcher(client, remote=False), poll_interval=0.05)
        summary = driver.run(until_idle=True)
        assert summary.statuses == {"succeeded": 2001}
        attempts = {a.process: a for a in store.history(limit=None)}
    ends = [attempts[name].end for name in members(registry, "job")]
    after = attempts["after"]
    assert after.start is not None and all(end is not None and end <= after.start for end in ends)
