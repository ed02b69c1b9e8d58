"""A template's problems are said once for all of its items when they are the same mistake: the
same key of the template, and the same message once each item's filled-in text is put back as
its placeholder — ``run: "nosuch_{item}:go"`` over 700 items is one line, not 700."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from planner.interfaces.cli import cli
from registry.definitions.loader import load_files
from registry.errors import DefinitionError, ProblemGroup

ITEMS = [f"i{n:03d}" for n in range(700)]


def validate(path: Path) -> Result:
    return CliRunner().invoke(cli, ["validate", str(path)], prog_name="planner")


def template(tmp_path: Path, *fields: str) -> Path:
    path = tmp_path / "t.yaml"
    body = "".join(f"    {field}\n" for field in fields)
    path.write_text(f"processes:\n  t:\n    foreach: [{', '.join(ITEMS)}]\n{body}")
    return path


def test_700_items_naming_700_missing_modules_are_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = template(tmp_path, 'run: "nosuch_{item}:go"')
    result = validate(path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:4: template 't', 700 items (i000, i001, i002, i003, i004, … and 695 more): run: "
        "cannot import module 'nosuch_{item}': ModuleNotFoundError: No module named "
        "'nosuch_{item}' (processes.t.run)",
        "error: 700 problems found",
    ]
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    problems = info.value.problems
    assert len(problems) == 700
    assert problems[1].message == (  # each problem keeps its own message
        "run: cannot import module 'nosuch_i001': ModuleNotFoundError: No module named "
        "'nosuch_i001'"
    )


def test_700_items_naming_700_unknown_pools_are_one_error(tmp_path: Path) -> None:
    path = template(tmp_path, "run: os.path:join", 'pool: "pool_{item}"')
    result = validate(path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:5: template 't', 700 items (i000, i001, i002, i003, i004, … and 695 more): "
        "unknown pool 'pool_{item}' (pools: none are defined) (processes.t.pool)",
        "error: 700 problems found",
    ]


def test_a_mapping_items_values_are_put_back_too(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    items = "".join(f"      m{n}: {{pool: p{n}}}\n" for n in range(6))
    path.write_text(
        "processes:\n  t:\n    foreach:\n" + items + "    run: os.path:join\n"
        '    pool: "{item.pool}"\n'
    )
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    [group] = info.value.grouped()
    assert isinstance(group, ProblemGroup)
    assert str(group).endswith(
        "template 't', 6 items (m0, m1, m2, m3, m4, m5): unknown pool '{item.pool}' "
        "(pools: none are defined) (processes.t.pool)"
    )


def test_different_mistakes_at_one_key_stay_apart(tmp_path: Path) -> None:
    """``retries: "{item.retries}"`` with a negative number for some items and a word for
    others: two groups, each with what is wrong with its items."""
    path = tmp_path / "r.yaml"
    negative = "".join(f"      n{n}: {{retries: -{n + 1}}}\n" for n in range(4))
    words = "".join(f"      w{n}: {{retries: many{n}}}\n" for n in range(4))
    path.write_text(
        "processes:\n  t:\n    foreach:\n" + negative + words + "    run: os.path:join\n"
        '    retries: "{item.retries}"\n'
    )
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    groups = info.value.grouped()
    assert [len(g.problems) for g in groups if isinstance(g, ProblemGroup)] == [4, 4]
    said = [str(g) for g in groups]
    assert "(n0, n1, n2, n3)" in said[0] and "{item.retries}" in said[0]
    assert "(w0, w1, w2, w3)" in said[1] and "'{item.retries}'" in said[1]


def test_items_alike_but_for_a_word_that_is_also_an_item_are_not_merged(tmp_path: Path) -> None:
    """Putting an item back never makes two different messages read the same: an item that
    also appears elsewhere in its message (``none``) is said on its own."""
    path = template(tmp_path, "run: os.path:join", 'pool: "pool_{item}"')
    path.write_text(path.read_text().replace("i000", "none"))
    with pytest.raises(DefinitionError) as info:
        load_files([path])
    said = [str(g) for g in info.value.grouped()]
    assert len(said) == 2
    assert said[0].endswith(
        "process 't.none' (template 't', item 'none'): unknown pool 'pool_none' "
        "(pools: none are defined) (processes.t.pool)"
    )
    assert "699 items (i001, i002" in said[1]


def test_unfill_puts_back_whole_words_only() -> None:
    from registry.definitions.templates import unfill

    item = {"{item}": "a"}
    assert unfill("cannot import module 'nosuch_a'", item) == "cannot import module 'nosuch_{item}'"
    assert unfill("a.b-a aa 1a", item) == "{item}.b-{item} aa 1a"
    assert unfill("extract.orders (running)", {"{item}": "orders"}) == "extract.{item} (running)"
    both = {"{item}": "1", "{item.rows}": "10"}  # the longer text first, each where it stands
    assert unfill("1 of 10", both) == "{item} of {item.rows}"
    assert unfill("unchanged", {"{item}": ""}) == "unchanged"
