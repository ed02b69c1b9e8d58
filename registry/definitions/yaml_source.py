"""Reading one registry file: YAML text → constructed data plus the line of every key path.

The file is composed into a PyYAML node tree, never loaded blind, so that walking the nodes can
record where each key and item is (errors name their line) and catch duplicate keys, which a plain
loader silently overwrites. Composition is libyaml's (``yaml.CSafeLoader``: scanner, parser and
composer in C, nodes with their line and column) whenever PyYAML was built with it, else PyYAML's
pure-Python loader (``PyYamlLoader``); both give the same data, lines and problems, only the
wording of a syntax error is each parser's own. One walk over the nodes (``_Reader``) builds the
data — plain strings, integers, null, lists and mappings itself, any other tag through the
loader's constructor — and records the lines at once. The dialect is YAML 1.2's core schema: only
``true``/``false`` are booleans, and a leading zero does not make an octal number.

Aliases are bounded: each ``*ref`` stands for a copy of what it refers to, so a few hundred bytes
of nested aliases (a "billion laughs" document) would expand to billions of nodes. Composing does
not expand them — an alias is one more reference to its anchor's node — so the node graph stays as
small as the text. When the text has an anchor (``&``, without which there is no alias), the nodes
that aliases add once expanded are counted over that graph before anything is built, each node's
expanded size computed once; a document past ``MAX_ALIAS_NODES``, or with an alias inside the node
it refers to (a recursive alias), is refused, and only then are its events read again to name the
alias that crossed the limit and its line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from registry.errors import Problem

__all__ = [
    "LOADERS",
    "MAX_ALIAS_NODES",
    "AnyLoader",
    "KeyPath",
    "PyYamlLoader",
    "Where",
    "YamlLoader",
    "parse_file",
    "render_path",
]

KeyPath = tuple[str | int, ...]
_TAG = "tag:yaml.org,2002:"
#: how many nodes the aliases of one document may add once expanded: plenty for anchors shared by
#: thousands of processes (``<<: *common``), far below a "billion laughs" document's 10^9
MAX_ALIAS_NODES = 100_000


# -- YAML dialect ----------------------------------------------------------------------------------


class PyYamlLoader(yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with YAML 1.2 (core schema) booleans and numbers."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return _int(str(loader.construct_scalar(node)))


def _use_yaml12(loader: Any) -> None:
    """Give a safe loader class YAML 1.2's booleans and numbers."""
    loader.yaml_implicit_resolvers = {
        first: [
            (tag, rx) for tag, rx in resolvers if tag[len(_TAG) :] not in ("bool", "int", "float")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    loader.add_implicit_resolver(
        _TAG + "int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    )
    loader.add_implicit_resolver(
        _TAG + "float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9]+[eE][-+]?[0-9]+
            |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
            re.VERBOSE,
        ),
        list("-+0123456789."),
    )
    loader.add_constructor(_TAG + "int", _construct_int)


_use_yaml12(PyYamlLoader)
AnyLoader: TypeAlias = "yaml.SafeLoader | yaml.CSafeLoader"

if yaml.__with_libyaml__:

    class CYamlLoader(yaml.CSafeLoader):
        """libyaml's safe loader (``yaml.CSafeLoader``) with the same YAML 1.2 dialect."""

    _use_yaml12(CYamlLoader)
    #: the loaders this PyYAML offers, the one ``parse_file`` uses first
    LOADERS: tuple[type[AnyLoader], ...] = (CYamlLoader, PyYamlLoader)
else:  # pragma: no cover - PyYAML built without libyaml
    LOADERS = (PyYamlLoader,)
#: the loader ``parse_file`` (and ``revise``'s command-line values) use: libyaml's when present
YamlLoader: type[AnyLoader] = LOADERS[0]


# -- locations -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Where:
    """One file, and the 1-based line of each key path in it."""

    file: str
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    fallback: int | None = None  # the line of anything not indexed (``revise``: the process)

    def line(self, path: KeyPath) -> int | None:
        key = tuple(map(str, path))
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


class _Reader:
    """One pass over the composed nodes: the data, the line of every key path, duplicate keys.

    The data is what the loader's constructor would build — plain strings, integers, null,
    sequences and mappings (merge keys included) here, every other tag by the constructor
    itself — in one walk that also records each key's line, instead of two. A collection reached
    again through an alias is the same object, and is not walked again (its problems were
    reported the first time): paths inside it take the line of the alias's key. Merged keys are
    not indexed: they keep the line of the mapping they are merged into."""

    __slots__ = ("constructor", "lines", "memo", "problems", "where")

    def __init__(self, where: Where, constructor: AnyLoader) -> None:
        self.where = where
        self.lines = where.lines
        self.constructor = constructor
        self.problems: list[Problem] = []
        self.memo: dict[int, Any] = {}  # id(collection node) -> its data

    def read(self, node: Node, spath: tuple[str, ...] | None, kpath: KeyPath) -> Any:
        """``node``'s data; ``spath`` is its key path as text (``None``: not indexed)."""
        tag = node.tag
        if isinstance(node, ScalarNode):
            if tag == _STR:
                return node.value
            if tag == _INT:
                return _int(node.value)
            if tag == _NULL:
                return None
            return self.constructor.construct_object(node, deep=True)
        known = self.memo.get(id(node), _NOT_READ)
        if known is not _NOT_READ:
            return known
        if isinstance(node, SequenceNode):
            data = self._sequence(node, spath, kpath)
        elif isinstance(node, MappingNode):
            data = self._mapping(node, spath, kpath)
        else:  # pragma: no cover - a composer makes scalars, sequences and mappings only
            raise TypeError(f"unexpected node {node!r}")
        if tag not in (_SEQ, _MAP):  # !!set, !!omap, ...: indexed as written, built as tagged
            data = self.memo[id(node)] = self.constructor.construct_object(node, deep=True)
        return data

    def _sequence(self, node: Node, spath: tuple[str, ...] | None, kpath: KeyPath) -> list[Any]:
        items: list[Any] = []
        self.memo[id(node)] = items
        for i, item in enumerate(node.value):
            here = None
            if spath is not None:
                here = (*spath, str(i))
                self.lines[here] = item.start_mark.line + 1
            items.append(self.read(item, here, (*kpath, i)))
        return items

    def _mapping(self, node: MappingNode, spath: tuple[str, ...] | None, kpath: KeyPath) -> Any:
        data: dict[Any, Any] = {}
        self.memo[id(node)] = data
        first: dict[str, int] = {}
        merge = False
        for key_node, value_node in node.value:
            here = None
            if isinstance(key_node, ScalarNode):
                if key_node.tag == _MERGE:
                    merge = True
                    continue
                name = key_node.value
                key = self._key(key_node)
                if spath is not None:
                    here, line = (*spath, name), key_node.start_mark.line + 1
                    self.lines[here] = line  # the last one wins, as in the data
                    if name in first:
                        self._duplicate((*kpath, name), name, first[name], spath == _PROCESSES)
                    else:
                        first[name] = line
            else:  # a complex key: constructed, not indexed
                key = self._key(key_node)
                name = ""
            data[key] = self.read(value_node, here, (*kpath, name))
        if merge:  # the merged pairs come first, then the mapping's own (which win)
            own = dict(data)
            data.clear()
            self.constructor.flatten_mapping(node)
            for key_node, value_node in node.value:
                key = self._key(key_node)
                data[key] = own[key] if key in own else self.read(value_node, None, kpath)
        return data

    def _key(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return node.value if node.tag in (_STR, _VALUE) else self.read(node, None, ())
        key = self.read(node, None, ())
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", None, "found unhashable key", node.start_mark
            )
        return key

    def _duplicate(self, path: KeyPath, key: str, first: int, is_process: bool) -> None:
        what = f"process {key!r}" if is_process else f"key {key!r}"
        self.problems.append(self.where.problem(path, f"duplicate {what} (first at line {first})"))


def _int(text: str) -> int:
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)  # YAML 1.1 would read a leading 0 as octal


_STR, _INT, _NULL = _TAG + "str", _TAG + "int", _TAG + "null"
_SEQ, _MAP, _MERGE, _VALUE = _TAG + "seq", _TAG + "map", _TAG + "merge", _TAG + "value"
_PROCESSES = ("processes",)
_NOT_READ = object()


# -- aliases ---------------------------------------------------------------------------------------


class _TooManyAliases(Exception):
    """The document's aliases, expanded, pass ``MAX_ALIAS_NODES`` (or one is recursive)."""


def _check_aliases(root: Node) -> None:
    """Raise ``_TooManyAliases`` if the aliases under ``root`` add more than ``MAX_ALIAS_NODES``
    nodes once expanded, or if one refers to a node it is inside of.

    Each reference to a node after the first is an alias; it adds the node's expanded size,
    computed once per node, so a billion laughs costs as many steps as it has nodes."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    added = 0

    def size(node: Node) -> int:
        nonlocal added
        known = sizes.get(id(node))
        if known is not None:  # an alias: a copy of a node already composed
            added += known
            if added > MAX_ALIAS_NODES:
                raise _TooManyAliases
            return known
        if id(node) in open_:
            raise _TooManyAliases  # recursive
        open_.add(id(node))
        if isinstance(node, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        open_.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def _alias_error(text: str, loader_class: type[AnyLoader]) -> yaml.composer.ComposerError:
    """The error naming the alias (and its line) that takes the document past the limit.

    Read from the events, in document order, as a composer expanding the aliases would meet
    them; only called for a document ``_check_aliases`` refused."""
    loader = loader_class(text)
    try:
        sizes: dict[str, int] = {}
        stack: list[tuple[str | None, list[int]]] = [(None, [0])]  # open collections, sizes
        added = 0
        while not loader.check_event(yaml.StreamEndEvent):
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                anchor = str(event.anchor)
                if any(open_anchor == anchor for open_anchor, _ in stack):
                    return _error(f"alias *{anchor} refers to itself", event.start_mark)
                added += sizes[anchor]
                stack[-1][1][0] += sizes[anchor]
                if added > MAX_ALIAS_NODES:
                    message = (
                        f"aliases expand the document past {MAX_ALIAS_NODES} nodes "
                        f"(at alias *{anchor}); is it a 'billion laughs' document?"
                    )
                    return _error(message, event.start_mark)
            elif isinstance(event, yaml.ScalarEvent):
                stack[-1][1][0] += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                stack.append((event.anchor, [1]))
            elif isinstance(event, yaml.CollectionEndEvent):
                opened, (count,) = stack.pop()
                stack[-1][1][0] += count
                if opened is not None:
                    sizes[opened] = count
    finally:
        loader.dispose()
    raise AssertionError("_check_aliases refused a document whose events are within the limit")


def _error(problem: str, mark: Any) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, problem, mark)


def _name_anchor(exc: yaml.MarkedYAMLError, text: str) -> tuple[str | None, str | None]:
    """The error's context and problem, naming the anchor as PyYAML does where libyaml does
    not (``found undefined alias 'x'``, ``found duplicate anchor 'x'``): the name is in the
    text, at the problem's line and column."""
    context, problem = exc.context, exc.problem
    mark = exc.problem_mark
    named = context == "found duplicate anchor; first occurrence" or problem == (
        "found undefined alias"
    )
    if not named or mark is None:
        return context, problem
    lines = text.splitlines()
    found = _ANCHOR.match(lines[mark.line], mark.column) if mark.line < len(lines) else None
    if found is None:
        return context, problem
    if problem == "found undefined alias":
        return context, f"{problem} {found.group(1)!r}"
    return f"found duplicate anchor {found.group(1)!r}; first occurrence", problem


_ANCHOR = re.compile(r"[*&]([^\s,\[\]{}]+)")


def _line_of(text: str, position: int, loader_class: type[AnyLoader]) -> int:
    """The line of a ``ReaderError``'s position: libyaml counts bytes of UTF-8, PyYAML
    characters."""
    if loader_class is PyYamlLoader:
        return text.count("\n", 0, position) + 1
    return text.encode().count(b"\n", 0, position) + 1


# -- reading a file --------------------------------------------------------------------------------


def parse_file(
    path: str | os.PathLike[str],
    problems: list[Problem],
    *,
    loader: type[AnyLoader] | None = None,
) -> tuple[Where, Any]:
    """The file's location index and constructed data (``None`` if unreadable).

    ``loader``: a class of ``LOADERS`` (default ``YamlLoader``, libyaml's when PyYAML has it)."""
    loader_class = loader or YamlLoader
    where = Where(os.fspath(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        problems.append(
            Problem(file=where.file, line=None, process=None, message=f"cannot read: {reason}")
        )
        return where, None
    composer: AnyLoader | None = None
    try:
        composer = loader_class(text)
        node = composer.get_single_node()
        if node is None:
            return where, {}
        if "&" in text:  # anchors, so perhaps aliases: count what they add before reading
            try:
                _check_aliases(node)
            except _TooManyAliases:
                raise _alias_error(text, loader_class) from None
        where.lines[()] = node.start_mark.line + 1
        reader = _Reader(where, composer)
        data = reader.read(node, (), ())
        problems.extend(reader.problems)
        return where, data
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = ", ".join(str(p) for p in _name_anchor(exc, text) if p)
        line = mark.line + 1 if mark else None
        problems.append(
            Problem(file=where.file, line=line, process=None, message=f"invalid YAML: {what}")
        )
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = _line_of(text, exc.position, loader_class)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"invalid YAML: character {char} is not allowed"
        problems.append(Problem(file=where.file, line=line, process=None, message=message))
    except (yaml.YAMLError, RecursionError) as exc:
        problems.append(
            Problem(file=where.file, line=None, process=None, message=f"invalid YAML: {exc}")
        )
    finally:
        if composer is not None:
            composer.dispose()
    return where, None
