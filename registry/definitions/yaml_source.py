"""Reading one registry file: YAML text → constructed data plus the line of every key path.

The file is composed into a PyYAML node tree, never loaded blind, so that walking the nodes can
record where each key and item is (errors name their line) and catch duplicate keys, which a plain
loader silently overwrites. The dialect is YAML 1.2's core schema: only ``true``/``false`` are
booleans, and a leading zero does not make an octal number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from registry.errors import Problem

KeyPath = tuple[str | int, ...]
_TAG = "tag:yaml.org,2002:"


# -- YAML dialect ----------------------------------------------------------------------------------


class YamlLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 (core schema) booleans and numbers."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag[len(_TAG) :] not in ("bool", "int", "float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
YamlLoader.add_implicit_resolver(
    _TAG + "int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
YamlLoader.add_implicit_resolver(
    _TAG + "float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)  # YAML 1.1 would read a leading 0 as octal


YamlLoader.add_constructor(_TAG + "int", _construct_int)


# -- locations -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Where:
    """One file, and the 1-based line of each key path in it."""

    file: str
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    fallback: int | None = None  # the line of anything not indexed (``revise``: the process)

    def line(self, path: KeyPath) -> int | None:
        key = tuple(str(p) for p in path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.fallback

    def problem(self, path: KeyPath, message: str) -> Problem:
        inside = len(path) >= 2 and path[0] == "processes"
        return Problem(
            file=self.file,
            line=self.line(path),
            process=str(path[1]) if inside else None,
            message=message,
            path=render_path(path),
        )


def render_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _index(node: Node, path: KeyPath, where: Where, problems: list[Problem]) -> None:
    """Record the line of every key and item under ``node``; report duplicate keys."""
    if isinstance(node, MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _TAG + "merge":
                continue  # merged keys keep the lines of the anchored mapping's parent
            key, line = key_node.value, key_node.start_mark.line + 1
            here = (*path, key)
            where.lines[tuple(str(p) for p in here)] = line  # the last one wins, as in the data
            if key in first:
                what = f"process {key!r}" if path == ("processes",) else f"key {key!r}"
                problems.append(
                    where.problem(here, f"duplicate {what} (first at line {first[key]})")
                )
            first.setdefault(key, line)
            _index(value_node, here, where, problems)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            where.lines[tuple(str(p) for p in (*path, i))] = item.start_mark.line + 1
            _index(item, (*path, i), where, problems)


def parse_file(path: str | os.PathLike[str], problems: list[Problem]) -> tuple[Where, Any]:
    """The file's location index and constructed data (``None`` if unreadable)."""
    where = Where(os.fspath(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        problems.append(
            Problem(file=where.file, line=None, process=None, message=f"cannot read: {reason}")
        )
        return where, None
    loader: YamlLoader | None = None
    try:
        loader = YamlLoader(text)
        node = loader.get_single_node()
        if node is None:
            return where, {}
        _index(node, (), where, problems)
        return where, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = ", ".join(str(p) for p in (exc.context, exc.problem) if p)
        line = mark.line + 1 if mark else None
        problems.append(
            Problem(file=where.file, line=line, process=None, message=f"invalid YAML: {what}")
        )
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"invalid YAML: character {char} is not allowed"
        problems.append(Problem(file=where.file, line=line, process=None, message=message))
    except (yaml.YAMLError, RecursionError) as exc:
        problems.append(
            Problem(file=where.file, line=None, process=None, message=f"invalid YAML: {exc}")
        )
    finally:
        if loader is not None:
            loader.dispose()
    return where, None
