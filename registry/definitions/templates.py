"""Templates: a process entry with ``foreach`` stands for one process per item, ``TEMPLATE.ITEM``.

Theory of operation. The loader (``registry.definitions.loader``) hands each entry that has a
``foreach`` key to ``read_items``, which checks the items — a list of strings or integers, or a
mapping item → mapping of values (``null`` for none) — and that each makes a valid process name.
For each item, ``fill`` gives the entry's body without ``foreach``, every placeholder replaced,
and the loader validates it as an ordinary process named ``TEMPLATE.ITEM``; ``ItemWhere`` makes
its problems point at the template's lines and name the template and the item. Once every file
is read, ``resolve_ancestors`` replaces a template's name in ``ancestors`` by every process of the
template and checks item-by-item pairings. Downstream (store, core) the processes are ordinary
ones; their ``Source`` records the template and the item, which ``members`` reads back.

Placeholders, in every string of the entry (values at any depth — params, command, run,
not_before…; not mapping keys, and not numbers or booleans, which have no text to fill):

- ``{item}`` is the item — for a mapping, its name (the key);
- ``{item.KEY}`` is the value of KEY in a mapping item (an error if the item has no KEY, or if
  ``foreach`` is a list);
- a string that is exactly one placeholder becomes the value itself, type kept
  (``priority: "{item.priority}"`` gives an integer, ``params: {rows: "{item.rows}"}`` a number);
  inside a longer string a value is written as text (strings as they are, other values as JSON);
- ``{{item}}`` and ``{{item.KEY}}`` are the literal text ``{item}`` and ``{item.KEY}``; any other
  brace is text as it is (``awk '{print $1}'``, JSON in a string), so only these need escaping.

In ``ancestors``, after the placeholders are filled, a template's name stands for all of its
processes (in item order), so ``ancestors: [extract]`` waits for every ``extract.*``; and
``"extract.{item}"`` in template ``publish`` pairs ``publish.orders`` with ``extract.orders``: an
item that the other template lacks is an error naming both templates.

Said alike. Texts about a template's processes often differ by the item alone (``extract.orders
(never succeeded)``, ``unknown pool 'pool_orders'``). ``unfill`` puts the filled-in texts back
as their placeholders, so they read the same for every item: ``ItemWhere`` gives each problem of
an item that ``pattern`` (``registry.errors`` groups the items' problems by it), and ``alike``
groups a template's processes whose decisions or statuses and texts agree that way, for the
views (``planner plan``, the notebooks) that show a template as one row.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from registry.definitions.schema import ITEM_PATTERN, PLACEHOLDER_PATTERN, process_name_problem
from registry.definitions.yaml_source import KeyPath, Where
from registry.errors import Problem
from registry.model import RegistryDef

__all__ = [
    "Alike",
    "Item",
    "ItemWhere",
    "Template",
    "alike",
    "fill",
    "members",
    "read_items",
    "resolve_ancestors",
    "templates_of",
    "unfill",
]

_ITEM = re.compile(ITEM_PATTERN)
#: ``{{item…}}`` (an escape, group 1) or ``{item…}`` (a placeholder, group 2)
_PLACEHOLDERS = re.compile(r"\{(" + PLACEHOLDER_PATTERN + r")\}|(" + PLACEHOLDER_PATTERN + ")")
_PLACEHOLDER = re.compile(PLACEHOLDER_PATTERN)
Report = Callable[[KeyPath, str], None]


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a template: its name (the end of ``TEMPLATE.ITEM``) and its value — the item
    as written for a list, its mapping of values for a mapping (``keyed`` is then true)."""

    name: str
    value: Any
    keyed: bool


@dataclass(slots=True)
class Template:
    """A template of a file: its name, where it is, its items and its processes' names."""

    name: str
    where: Where
    line: int | None
    items: tuple[Item, ...]
    ancestors: tuple[Any, ...]  # its ``ancestors`` as written, placeholders and all

    @classmethod
    def read(
        cls, name: str, body: Mapping[str, Any], where: Where, problems: list[Problem]
    ) -> Template:
        """Template ``name`` as its entry ``body`` says (invalid items reported, left out)."""
        written = body.get("ancestors")
        return cls(
            name=name,
            where=where,
            line=where.line(("processes", name)),
            items=read_items(name, body["foreach"], where, problems),
            ancestors=tuple(written) if isinstance(written, list) else (),
        )

    @property
    def members(self) -> list[str]:
        return [f"{self.name}.{item.name}" for item in self.items]


@dataclass(slots=True)
class ItemWhere(Where):
    """A file's locations seen from one process of a template: the paths of ``TEMPLATE.ITEM``
    are the template's, and its problems name the process, the template and the item. Given
    the template's entry as written (``body``) and the item (``filled_by``), a problem also
    gets its ``pattern``: the message with the texts this item filled in at the problem's key
    put back as their placeholders, so that the same mistake of many items is said once."""

    template: str = ""
    item: str = ""
    process: str = ""
    body: Mapping[str, Any] = field(default_factory=dict)
    filled_by: Item | None = None

    @classmethod
    def of(cls, where: Where, template: str, item: Item, body: Mapping[str, Any]) -> ItemWhere:
        return cls(
            file=where.file,
            lines=where.lines,
            fallback=where.fallback,
            template=template,
            item=item.name,
            process=f"{template}.{item.name}",
            body=body,
            filled_by=item,
        )

    def _in_template(self, path: KeyPath) -> KeyPath:
        if len(path) >= 2 and path[0] == "processes" and path[1] == self.process:
            return ("processes", self.template, *path[2:])
        return path

    def line(self, path: KeyPath) -> int | None:
        return Where.line(self, self._in_template(path))

    def problem(self, path: KeyPath, message: str) -> Problem:
        found = Where.problem(self, self._in_template(path), message)
        return replace(
            found,
            process=self.process,
            template=self.template,
            item=self.item,
            pattern=self._pattern(path, message),
        )

    def _pattern(self, path: KeyPath, message: str) -> str | None:
        if self.filled_by is None or len(path) < 3 or path[:2] != ("processes", self.process):
            return None
        written = self.body.get(str(path[2]))  # the field as the template has it
        texts = placeholder_texts(written, self.filled_by)
        if written is None or not texts:
            return None
        pattern = unfill(message, texts)
        return pattern if pattern != message else None


# -- items --------------------------------------------------------------------------------------


def read_items(name: str, foreach: Any, where: Where, problems: list[Problem]) -> tuple[Item, ...]:
    """The valid items of template ``name``; a problem for each invalid one (or for a
    ``foreach`` that is neither a list nor a mapping)."""
    base: KeyPath = ("processes", name, "foreach")

    def report(path: KeyPath, message: str, item: str | None = None) -> None:
        found = where.problem(path, message)
        process = f"{name}.{item}" if item is not None else None
        problems.append(replace(found, process=process, template=name, item=item))

    if isinstance(foreach, list):
        pairs: list[tuple[Any, Any, KeyPath]] = [(v, v, (*base, i)) for i, v in enumerate(foreach)]
        keyed = False
    elif isinstance(foreach, dict):
        pairs = [(k, v, (*base, str(k))) for k, v in foreach.items()]
        keyed = True
    else:
        report(base, f"foreach must be a list of items or a mapping item → values, got {foreach!r}")
        return ()
    items: list[Item] = []
    seen: dict[str, KeyPath] = {}
    for key, value, path in pairs:
        if isinstance(key, bool) or not isinstance(key, str | int):
            kind = "mapping keys" if keyed else "items"
            report(path, f"foreach {kind} must be strings or integers (quote them), got {key!r}")
            continue
        text = str(key)
        problem = _item_problem(name, text)
        if problem:
            report(path, problem)
            continue
        if text in seen:
            report(path, f"item {text!r} is listed twice (first at line {where.line(seen[text])})")
            continue
        seen[text] = path
        if keyed:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                report(path, f"an item's values must be a mapping key → value, got {value!r}", text)
                continue
        items.append(Item(name=text, value=value, keyed=keyed))
    return tuple(items)


def _item_problem(template: str, item: str) -> str | None:
    if not _ITEM.match(item):
        return f"invalid item {item!r}: an item must match {ITEM_PATTERN}"
    return process_name_problem(f"{template}.{item}")


# -- placeholders -------------------------------------------------------------------------------


class _Unfilled(Exception):
    """A placeholder this item cannot fill (the message says why)."""


def fill(
    body: Mapping[str, Any], item: Item, base: KeyPath, report: Report
) -> tuple[dict[str, Any], set[str]]:
    """``body`` without ``foreach``, its placeholders filled from ``item``, and the fields that
    could not be filled: a problem is reported (with the path of the string) for each string
    that cannot be, which stays as it is — not to be validated again."""
    unfilled: set[str] = set()
    filled: dict[str, Any] = {}
    for key, value in body.items():
        if key == "foreach":
            continue

        def said(path: KeyPath, message: str, key: str = key) -> None:
            unfilled.add(key)
            report(path, message)

        filled[key] = _fill(value, item, (*base, key), said)
    return filled, unfilled


def _fill(value: Any, item: Item, path: KeyPath, report: Report) -> Any:
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return _fill_text(value, item)
        except _Unfilled as exc:
            report(path, str(exc))
            return value
    if isinstance(value, list):
        return [_fill(v, item, (*path, i), report) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _fill(v, item, (*path, str(k)), report) for k, v in value.items()}
    return value


def _fill_text(text: str, item: Item) -> Any:
    whole = _PLACEHOLDERS.fullmatch(text)
    if whole is not None and whole.group(2) is not None:
        return _value(whole.group(2), item)  # the value itself, its type kept

    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:  # {{item}}: the text {item}
            return match.group(1)
        return _as_text(_value(match.group(2), item))

    return _PLACEHOLDERS.sub(one, text)


def _value(placeholder: str, item: Item) -> Any:
    ref = placeholder[1:-1]
    if ref == "item":
        return item.name if item.keyed else item.value
    key = ref[len("item.") :]
    if not item.keyed:
        raise _Unfilled(
            f"{placeholder}: foreach is a list, whose items have no keys; make it a mapping "
            "item → values"
        )
    if key not in item.value:
        raise _Unfilled(f"{placeholder}: the item has no key {key!r}")
    return item.value[key]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)  # true, null, 5000000.0, ["a", 1]
    except (TypeError, ValueError):
        return str(value)  # a YAML date: 2026-01-01


def unfill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with the placeholders put back: each occurrence of a placeholder's text
    (``values``: placeholder → the text it was filled with) that is not part of a longer word
    or number becomes the placeholder. ``unfill("extract.orders (running)", {"{item}":
    "orders"})`` is ``"extract.{item} (running)"``, so the texts of many processes of a template
    that differ only by their items read alike (``nosuch_{item}``; ``cannot`` keeps its ``a``).
    A longer text wins over a shorter one it contains; an empty text is never put back."""
    back = {filled: placeholder for placeholder, filled in values.items() if filled}
    if not back:
        return text
    if len(back) == 1:  # the common case (``{item}``), without compiling a pattern per item
        [(filled, placeholder)] = back.items()
        return _put_back(text, filled, placeholder)
    texts = sorted(back, key=len, reverse=True)
    found = re.compile("(?<![A-Za-z0-9])(" + "|".join(map(re.escape, texts)) + ")(?![A-Za-z0-9])")
    return found.sub(lambda m: back[m.group(1)], text)


_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _put_back(text: str, filled: str, placeholder: str) -> str:
    """``unfill`` for one placeholder."""
    out: list[str] = []
    done, at = 0, text.find(filled)
    while at >= 0:
        end = at + len(filled)
        if (at == 0 or text[at - 1] not in _WORD) and (end == len(text) or text[end] not in _WORD):
            out += [text[done:at], placeholder]
            done = end
        at = text.find(filled, end if done == end else at + 1)
    return "".join(out) + text[done:] if out else text


def placeholder_texts(value: Any, item: Item) -> dict[str, str]:
    """The placeholders in the strings of ``value`` (at any depth) → the text ``item`` fills
    each with; those it cannot fill are left out (their problem is said already)."""
    out: dict[str, str] = {}
    for text in _strings(value):
        for match in _PLACEHOLDERS.finditer(text):
            placeholder = match.group(2)
            if placeholder is None or placeholder in out:
                continue
            with contextlib.suppress(_Unfilled):
                out[placeholder] = _as_text(_value(placeholder, item))
    return out


def _strings(value: Any) -> list[str]:
    values = value.values() if isinstance(value, dict) else value
    if isinstance(value, list | dict):
        return [s for v in values for s in _strings(v)]
    return [value] if isinstance(value, str) and "{" in value else []


# -- processes said alike -------------------------------------------------------------------------

#: groups ``alike`` makes of a template's processes alike but for their texts, then just one
VARIANTS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class Alike:
    """Processes said as one (``alike``): their names, in order, and the texts they share —
    with ``{item}`` for each one's own item, or summed up where they differ. ``template`` is
    ``None`` for a process said on its own (with its own texts)."""

    template: str | None
    names: tuple[str, ...]
    texts: tuple[str, ...]

    @property
    def label(self) -> str:  # ``TEMPLATE.* ×N``, or the process's own name
        return self.names[0] if self.template is None else f"{self.template}.* ×{len(self.names)}"


def alike(
    rows: Sequence[tuple[str, Hashable, Sequence[str]]],
    templates: Mapping[str, str],
    *,
    variants: int = VARIANTS_SHOWN,
) -> list[Alike]:
    """``rows`` (process, what it is — its decision and reason codes —, its texts — the
    details) with the processes of a template (``templates``: process → template) that are the
    same, and whose texts agree once each one's item is put back as ``{item}``, said as one where
    the first was. Up to ``variants`` variants of the texts are a group each; more, one group
    whose differing texts read as the first and a count (``up0 (…), … (10 different)``)."""
    groups: dict[tuple[Any, ...], list[tuple[str, Sequence[str]]]] = {}
    for name, kind, texts in rows:
        template = templates.get(name)
        key = (template, kind) if template is not None else (None, name, len(groups))
        groups.setdefault(key, []).append((name, texts))
    out: list[Alike] = []
    for (template, *_), members in groups.items():
        if template is None or len(members) == 1:
            out += [Alike(None, (name,), tuple(texts)) for name, texts in members]
            continue
        found: dict[tuple[str, ...], list[str]] = {}
        for name, texts in members:
            item = {"{item}": name[len(template) + 1 :]}
            found.setdefault(tuple(unfill(t, item) for t in texts), []).append(name)
        if len(found) > variants:
            found = {_summed_up(list(found)): [name for name, _ in members]}
        for texts, names in found.items():
            if len(names) == 1:
                out.append(Alike(None, (names[0],), tuple(dict(members)[names[0]])))
            else:
                out.append(Alike(template, tuple(names), texts))
    return out


def _summed_up(variants: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """One set of texts for several: a text they share as it is, one that differs as the
    first and the number of different ones."""
    out = []
    for i in range(len(variants[0])):
        texts = list(dict.fromkeys(v[i] for v in variants))
        out.append(texts[0] if len(texts) == 1 else f"{texts[0]}, … ({len(texts)} different)")
    return tuple(out)


# -- ancestors ----------------------------------------------------------------------------------


def resolve_ancestors(
    ancestors: Sequence[str],
    processes: Collection[str],
    templates: Mapping[str, Template],
    origin: tuple[Template, str] | None = None,
) -> tuple[list[str], list[int], list[tuple[int, str]]]:
    """``ancestors`` with each template's name replaced by its processes.

    Returns the ancestors, the index in the list as written that each came from, and problems
    as (index, message): ``origin`` (the template and item of the process whose ancestors these
    are) tells a pairing ``"other.{item}"`` whose item ``other`` lacks."""
    out: list[str] = []
    came_from: list[int] = []
    problems: list[tuple[int, str]] = []
    for i, name in enumerate(ancestors):
        if name in templates and name not in processes:
            members = templates[name].members
            out += members
            came_from += [i] * len(members)
            continue
        if name not in processes and origin is not None:
            other = _paired(origin[0], i, templates)
            if other is not None:
                written = origin[0].ancestors[i]
                problems.append(
                    (
                        i,
                        f"ancestor {written!r} pairs the items of template {origin[0].name!r} "
                        f"with those of template {other!r}, which lacks this item",
                    )
                )
                continue
        out.append(name)
        came_from.append(i)
    return out, came_from, problems


def _paired(template: Template, index: int, templates: Mapping[str, Template]) -> str | None:
    """The template that ancestor ``index`` of ``template`` pairs with (``"other.{item}"``)."""
    if index >= len(template.ancestors) or not isinstance(template.ancestors[index], str):
        return None
    written: str = template.ancestors[index]
    found = _PLACEHOLDER.search(written)
    if found is None:
        return None
    other = written[: found.start()].removesuffix(".")
    return other if other in templates else None


# -- membership ---------------------------------------------------------------------------------


def members(registry: RegistryDef, name: str) -> list[str]:
    """The processes of template ``name`` in ``registry``, by name; ``[]`` if it has none (or is
    no template). From the processes' ``Source``, so it holds for a registry loaded from the
    store as for one loaded from files."""
    return sorted(
        process.name
        for process in registry.processes.values()
        if process.source is not None and process.source.template == name
    )


def templates_of(registry: RegistryDef) -> dict[str, list[str]]:
    """Every template of ``registry`` → its processes, by name (for views that group them)."""
    found: dict[str, list[str]] = {}
    for process in registry.processes.values():
        if process.source is not None and process.source.template is not None:
            found.setdefault(process.source.template, []).append(process.name)
    return {name: sorted(names) for name, names in sorted(found.items())}
