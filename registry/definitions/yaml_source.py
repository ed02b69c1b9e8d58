"""Reading one registry file: YAML text → constructed data plus the line of every key path.

The file is composed into a PyYAML node tree, never loaded blind, so that walking the nodes can
record where each key and item is (errors name their line) and catch duplicate keys, which a plain
loader silently overwrites. The dialect is YAML 1.2's core schema: only ``true``/``false`` are
booleans, and a leading zero does not make an octal number.

Aliases are bounded: each ``*ref`` stands for a copy of what it refers to, so a few hundred bytes
of nested aliases (a "billion laughs" document) would expand to billions of nodes. The loader
counts, while composing, the nodes that aliases add, and refuses the document as soon as they
pass ``MAX_ALIAS_NODES``, naming the line of the alias that crossed the limit; an alias that
refers to the node it is inside of (a recursive alias) is refused too.
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
#: how many nodes the aliases of one document may add once expanded: plenty for anchors shared by
#: thousands of processes (``<<: *common``), far below a "billion laughs" document's 10^9
MAX_ALIAS_NODES = 100_000


# -- YAML dialect ----------------------------------------------------------------------------------


class YamlLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 (core schema) booleans and numbers, and bounded aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes in it, aliases expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is PyYAML's to report
                if target.end_mark is None:  # still being composed: the alias is inside it
                    raise yaml.composer.ComposerError(
                        None, None, f"alias *{event.anchor} refers to itself", event.start_mark
                    )
                self._alias_nodes += self._size(target)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"aliases expand the document past {MAX_ALIAS_NODES} nodes "
                        f"(at alias *{event.anchor}); is it a 'billion laughs' document?",
                        event.start_mark,
                    )
        return super().compose_node(parent, index)

    def _size(self, node: Node) -> int:
        """Nodes in ``node`` with its aliases expanded (memoised: shared nodes count once here)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            size = 1 + sum(self._size(item) for item in node.value)
        else:
            size = 1
        self._sizes[id(node)] = size
        return size


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
        if not path:  # the document itself: where its top node starts
            return self.lines.get((), self.fallback)
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


def _index(
    node: Node, path: KeyPath, where: Where, problems: list[Problem], seen: set[int]
) -> None:
    """Record the line of every key and item under ``node``; report duplicate keys.

    A node reached again through an alias is not walked again (its problems were reported the
    first time): paths inside it take the line of the alias's key."""
    if id(node) in seen:
        return
    seen.add(id(node))
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
            _index(value_node, here, where, problems, seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            where.lines[tuple(str(p) for p in (*path, i))] = item.start_mark.line + 1
            _index(item, (*path, i), where, problems, seen)


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
        where.lines[()] = node.start_mark.line + 1
        _index(node, (), where, problems, set())
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
