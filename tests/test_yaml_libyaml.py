"""Registry files are composed by libyaml when PyYAML has it, with the pure-Python loader's results.

The default loader is libyaml's (``yaml.CSafeLoader``); without libyaml the pure-Python loader is
the only one. Each behaviour of ``parse_file`` — data, lines, duplicate keys, alias limits,
errors naming file and line — is checked on every loader this PyYAML offers, and the two are
compared on the example registries.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from planner.interfaces.cli import cli
from registry.definitions import yaml_source
from registry.definitions.loader import load_files
from registry.definitions.yaml_source import (
    LOADERS,
    MAX_ALIAS_NODES,
    AnyLoader,
    PyYamlLoader,
    YamlLoader,
    parse_file,
)
from registry.errors import DefinitionError, Problem

ROOT = Path(__file__).resolve().parents[1]
needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")
by_loader = pytest.mark.parametrize("loader", LOADERS, ids=[c.__name__ for c in LOADERS])

#: 482 bytes that expand to 9^9 "lol"s: each line's anchor is nine aliases of the one above
LAUGHS = "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"x-{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def parse(tmp_path: Path, text: str, loader: type[AnyLoader]) -> tuple[Any, list[Problem], Any]:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    problems: list[Problem] = []
    where, data = parse_file(path, problems, loader=loader)
    return data, problems, where


def messages(problems: list[Problem], tmp_path: Path) -> list[str]:
    return [str(p).replace(str(tmp_path / "r.yaml"), "r.yaml") for p in problems]


# -- which loader --------------------------------------------------------------------------------


@needs_libyaml
def test_libyaml_composes_registry_files_by_default(tmp_path: Path) -> None:
    assert YamlLoader is LOADERS[0] and issubclass(YamlLoader, yaml.CSafeLoader)
    assert LOADERS[-1] is PyYamlLoader and not issubclass(PyYamlLoader, yaml.CSafeLoader)
    # libyaml words a syntax error in its own way: its wording is what validation reports
    path = tmp_path / "bad.yaml"
    path.write_text("processes:\n  job:\n    run: [os.path:join\n    retries: 1\n")
    with pytest.raises(DefinitionError) as caught:
        load_files([path])
    [problem] = caught.value.problems
    assert problem.line == 4
    assert problem.message == (
        "invalid YAML: while parsing a flow sequence, did not find expected ',' or ']'"
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:4: invalid YAML: while parsing a flow sequence, did not find" in result.stderr


def _without_libyaml(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of ``yaml_source`` as imported by a PyYAML built without libyaml."""
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    spec = importlib.util.spec_from_file_location("yaml_source_copy", yaml_source.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_without_libyaml_the_pure_python_loader_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _without_libyaml(monkeypatch)
    assert [c.__name__ for c in module.LOADERS] == ["PyYamlLoader"]
    assert module.YamlLoader is module.PyYamlLoader
    assert not issubclass(module.YamlLoader, yaml.CSafeLoader)
    path = tmp_path / "r.yaml"
    path.write_text("processes:\n  job: {run: m:f, retries: 010}\n  job: {}\n")
    problems: list[Problem] = []
    _, data = module.parse_file(path, problems)
    assert data == {"processes": {"job": {}}}
    assert [(p.line, p.message) for p in problems] == [
        (3, "duplicate process 'job' (first at line 2)")
    ]


# -- the same behaviour on every loader ----------------------------------------------------------


@by_loader
def test_duplicate_keys_are_reported_with_their_lines(
    tmp_path: Path, loader: type[AnyLoader]
) -> None:
    text = "processes:\n  job:\n    run: m:f\n    retries: 1\n    retries: 2\n  job: {}\n"
    data, problems, where = parse(tmp_path, text, loader)
    assert data == {"processes": {"job": {}}}  # the last one wins, as in PyYAML
    assert messages(problems, tmp_path) == [
        "r.yaml:5: process 'job': duplicate key 'retries' (first at line 4)"
        " (processes.job.retries)",
        "r.yaml:6: process 'job': duplicate process 'job' (first at line 2) (processes.job)",
    ]
    assert where.line(("processes", "job")) == 6 and where.line(()) == 1


@by_loader
def test_lines_of_keys_and_items(tmp_path: Path, loader: type[AnyLoader]) -> None:
    text = "processes:\n  a:\n    command:\n      - echo\n      - hi\n    params: {x: [1, 2]}\n"
    _, problems, where = parse(tmp_path, text, loader)
    assert problems == []
    assert where.line(("processes", "a", "command", 1)) == 5
    assert where.line(("processes", "a", "params", "x", 0)) == 6
    assert where.line(("processes", "a", "unknown")) == 2  # the nearest key that is written


@by_loader
def test_a_billion_laughs_is_refused_fast_at_the_alias_that_passes_the_limit(
    tmp_path: Path, loader: type[AnyLoader]
) -> None:
    text = LAUGHS + "processes:\n  p: {command: 'true', params: {x: *i}}\n"
    assert len(text.encode()) < 500
    began = time.monotonic()
    data, problems, _ = parse(tmp_path, text, loader)
    assert time.monotonic() - began < 2  # milliseconds: nothing is expanded
    assert data is None
    # aliases add 90, 819, 7,380 and 66,429 nodes on lines 2-5; the first *e of line 6, 66,430
    assert messages(problems, tmp_path) == [
        f"r.yaml:6: invalid YAML: aliases expand the document past {MAX_ALIAS_NODES} nodes "
        "(at alias *e); is it a 'billion laughs' document?"
    ]


@by_loader
def test_the_alias_named_is_the_one_that_crosses_the_limit(
    tmp_path: Path, loader: type[AnyLoader]
) -> None:
    # 74,718 nodes added by lines 2-5; each *d adds 7,381 more: the limit falls on the fourth
    text = "".join(LAUGHS.splitlines(keepends=True)[:5]) + "one: *d\ntwo: {deep: [*d, *d, *d]}\n"
    _, problems, _ = parse(tmp_path, text, loader)
    assert [(p.line, p.message.split("(")[1]) for p in problems] == [
        (7, "at alias *d); is it a 'billion laughs' document?")
    ]
    _, problems, _ = parse(tmp_path, text.replace(", *d]", "]"), loader)
    assert problems == []  # 96,861: below the limit, it loads


@by_loader
def test_a_recursive_alias_is_refused(tmp_path: Path, loader: type[AnyLoader]) -> None:
    data, problems, _ = parse(tmp_path, "x-a: &a [1, *a]\nprocesses: {}\n", loader)
    assert data is None
    assert messages(problems, tmp_path) == ["r.yaml:1: invalid YAML: alias *a refers to itself"]


@by_loader
def test_shared_anchors_and_merge_keys_below_the_limit(
    tmp_path: Path, loader: type[AnyLoader]
) -> None:
    body = "".join(
        f"  p{i}: {{<<: *common, command: 'true', retries: {i % 3}}}\n" for i in range(3000)
    )
    text = "x-common: &common {retries: 2, priority: 5}\nprocesses:\n" + body
    data, problems, where = parse(tmp_path, text, loader)
    assert problems == []
    assert data["processes"]["p7"] == {"retries": 1, "priority": 5, "command": "true"}
    assert list(data["processes"]["p7"]) == ["retries", "priority", "command"]  # merged first
    assert where.line(("processes", "p7", "priority")) == 10  # merged: the line of the process


@by_loader
def test_yaml_1_2_scalars_and_explicit_tags(tmp_path: Path, loader: type[AnyLoader]) -> None:
    text = (
        "on: no\nten: 010\nhex: 0x1f\nfloat: 4e9\nclock: 13:00\nnull: ~\nyes: true\n"
        "at: 2026-01-01T03:00:00\nstr: !!str 5\nset: !!set {a, b}\ninf: .inf\n'=': x\n"
    )
    data, problems, _ = parse(tmp_path, text, loader)
    assert problems == []
    assert data == {
        "on": "no",
        "ten": 10,
        "hex": 31,
        "float": 4e9,
        "clock": "13:00",
        None: None,
        "yes": True,
        "at": datetime(2026, 1, 1, 3),
        "str": "5",
        "set": {"a", "b"},
        "inf": math.inf,
        "=": "x",
    }


@by_loader
def test_errors_name_the_line(tmp_path: Path, loader: type[AnyLoader]) -> None:
    # a character YAML refuses, after multi-byte text: libyaml counts bytes, the line does not move
    text = "é" * 200 + ": 1\n\x07: 2\n" + "x: 1\n" * 50
    _, problems, _ = parse(tmp_path, text, loader)
    assert messages(problems, tmp_path) == [
        "r.yaml:2: invalid YAML: character #x0007 is not allowed"
    ]
    _, problems, _ = parse(tmp_path, "a: 1\nb: *nowhere\n", loader)
    assert messages(problems, tmp_path) == [
        "r.yaml:2: invalid YAML: found undefined alias 'nowhere'"
    ]
    _, problems, _ = parse(tmp_path, "a: &x 1\nb: &x 2\n", loader)
    assert messages(problems, tmp_path) == [
        "r.yaml:2: invalid YAML: found duplicate anchor 'x'; first occurrence, second occurrence"
    ]
    _, problems, _ = parse(tmp_path, "? [a, b]\n: 1\n", loader)
    assert messages(problems, tmp_path) == [
        "r.yaml:1: invalid YAML: while constructing a mapping, found unhashable key"
    ]


@by_loader
def test_validation_errors_name_file_line_and_process(
    tmp_path: Path, loader: type[AnyLoader], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yaml_source, "YamlLoader", loader)
    path = tmp_path / "r.yaml"
    path.write_text(
        "processes:\n  a: {command: 'true'}\n  b:\n    command: 'true'\n    retries: -1\n"
    )
    with pytest.raises(DefinitionError) as caught:
        load_files([path])
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.process) == (str(path), 5, "b")


@needs_libyaml
@pytest.mark.parametrize("name", ["adp.yaml", "nightly.yaml"])
def test_both_loaders_read_the_examples_alike(name: str) -> None:
    results = []
    for loader in LOADERS:
        problems: list[Problem] = []
        where, data = parse_file(ROOT / "workflows" / name, problems, loader=loader)
        results.append((data, where.lines, problems))
    assert results[0] == results[1]
    assert results[0][0]["processes"] and not results[0][2]
