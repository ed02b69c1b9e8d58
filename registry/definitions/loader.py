"""YAML files → one validated, frozen ``RegistryDef``; ``revise`` changes one process the same way.

Theory of operation. Each file is composed into a PyYAML node tree, never loaded blind: walking the
nodes records the line of every key path and catches duplicate keys, which a plain loader silently
overwrites. The data constructed from the nodes is then validated piece by piece with the models of
``registry.definitions.schema`` — each file's settings, its ``defaults``, each process — so one bad
process does not hide the problems of the next; pydantic's error locations are mapped back to lines
through the recorded key paths. Rules across fields and processes follow (``run`` xor ``command``,
ancestors, pools, cycles, importable targets — each distinct module imported once,
``registry.definitions.targets``). Every problem of every file is collected, and if there is any,
one ``DefinitionError`` carries them all and nothing is returned.

An entry with ``foreach`` is a template (``registry.definitions.templates``): it becomes one
process per item, ``TEMPLATE.ITEM``, each validated as any process is, its problems naming the
template's line, the template and the item; a template's name in ``ancestors`` is replaced by
its processes once every file is read.

Several files make one registry: process names are unique across them; a setting (``timezone``,
``slots``, ``pools``, ``ranking``) may appear in several files only with equal values; a file's
``defaults`` apply to that file's processes only. Top-level keys starting with ``x-`` are
ignored, as in Docker Compose: a place for YAML anchors (``x-common: &common {...}``).

YAML dialect (``yaml_source``): a safe loader — libyaml's (``yaml.CSafeLoader``) when PyYAML has
it, else PyYAML's pure-Python one, with the same results — with YAML 1.2 booleans and numbers: only
``true``/``false`` are booleans (a process called ``on`` or ``no`` stays a string), ``4e9`` is a
float, ``010`` is ten and ``13:00`` is a string (YAML 1.1 reads it as 780, a base-60 integer).
Timestamps follow YAML 1.1 (unquoted ``2026-01-01T00:00:00`` is a datetime); naive datetimes are
in the registry's timezone and become aware.
"""

from __future__ import annotations

import enum
import os
import reprlib
import zoneinfo
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import ScalarNode

from registry.definitions.graph import check_graph as _check_graph
from registry.definitions.graph import did_you_mean as _did_you_mean
from registry.definitions.schema import (
    PROCESS_ONLY,
    TARGET_FIELDS,
    DefaultsSpec,
    ProcessFields,
    ProcessSpec,
    Settings,
    process_name_problem,
)
from registry.definitions.targets import Targets
from registry.definitions.templates import ItemWhere, Template, fill, resolve_ancestors
from registry.definitions.yaml_source import AnyLoader, KeyPath, Where, YamlLoader, parse_file
from registry.errors import DefinitionError, Problem, ProcessNotFound
from registry.model import Missed, ProcessDef, Ranking, RegistryDef, Retention, Source

__all__ = ["load_documents", "load_files", "process_name_problem", "revise"]

_M = TypeVar("_M", bound=BaseModel)
_TAG = "tag:yaml.org,2002:"
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_short = _repr.repr


# -- validation with pydantic ----------------------------------------------------------------------


def _validate(
    model: type[_M],
    data: Mapping[str, Any],
    base: KeyPath,
    where: Where,
    problems: list[Problem],
    *,
    also_known: Sequence[str] = (),
) -> tuple[_M, set[str]]:
    """The model of ``data`` without its invalid keys, and those keys (their problems reported)."""
    try:
        return model.model_validate(data), set()
    except ValidationError as exc:
        bad: set[str] = set()
        for err in exc.errors():
            path = (*base, *_real_path(data, err["loc"]))
            problems.append(where.problem(path, _message(model, err, also_known)))
            if err["loc"]:
                bad.add(str(err["loc"][0]))
        try:
            return model.model_validate({k: v for k, v in data.items() if k not in bad}), bad
        except ValidationError:  # no model has cross-field validators; belt and braces
            return model(), set(data)


def _real_path(data: Any, loc: Sequence[str | int]) -> KeyPath:
    """``loc`` without pydantic's union tags: only the steps that exist in ``data``."""
    path: list[str | int] = []
    for step in loc:
        in_mapping = isinstance(data, Mapping) and step in data
        in_list = isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data)
        if in_mapping or in_list:
            data = data[step]
            path.append(step)
    return tuple(path)


def _message(model: type[BaseModel], err: ErrorDetails, also_known: Sequence[str]) -> str:
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        if model is DefaultsSpec and key in PROCESS_ONLY:
            return f"{key!r} cannot be a default; set it in each process"
        return f"unknown key {key!r}" + _did_you_mean(key, [*model.model_fields, *also_known])
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])
    msg = err["msg"]
    return f"{msg[:1].lower()}{msg[1:]}, got {_short(err['input'])}"


# -- checks beyond one field -----------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """A process being validated: where it is and its spec (invalid fields left at defaults).

    A template's process has its template and item (``origin``); once a template's name in its
    ancestors is replaced by the template's processes, ``came_from`` is the index (in the list
    as written) of each ancestor, for the line of a problem."""

    where: Where
    spec: ProcessSpec
    line: int | None
    origin: tuple[Template, str] | None = None
    came_from: list[int] | None = None

    def written(self, index: int) -> int:
        return self.came_from[index] if self.came_from is not None else index


@dataclass(slots=True)
class _Checks:
    """What the per-process checks need to know about the registry."""

    tz: zoneinfo.ZoneInfo
    pools: Collection[str]  # also the names of pools declared with an invalid size
    problems: list[Problem]
    targets: Targets = field(default_factory=Targets)
    check_imports: bool = True  # False for rows of the store: their targets import at run time
    templates: dict[str, Template] = field(default_factory=dict)

    def report(self, where: Where, path: KeyPath, message: str) -> None:
        self.problems.append(where.problem(path, message))


def _check_process(
    spec: ProcessFields,
    raw: Mapping[str, Any],
    own: set[str],
    base: KeyPath,
    where: Where,
    c: _Checks,
) -> None:
    """Rules across the fields of one process (or of a file's defaults, ``base == ("defaults",)``).

    Pools, targets and the active period are checked where they are written: ``own`` are the
    keys written at ``base`` (values inherited from ``defaults`` were checked there)."""
    if isinstance(spec, ProcessSpec):
        given = {key for key, value in raw.items() if value is not None}
        if {"run", "command"} <= given:
            c.report(where, (*base, "command"), "has both 'run' and 'command'; give exactly one")
        elif not given & {"run", "command"}:
            c.report(where, base, "needs 'run' (module:callable) or 'command'")
        if {"cron", "every"} <= given:
            c.report(where, (*base, "every"), "has both 'cron' and 'every'; give at most one")
    start, end = _aware(spec.start_at, c.tz), _aware(spec.end_at, c.tz)
    if own & {"start_at", "end_at"} and start is not None and end is not None and end <= start:
        c.report(where, (*base, "end_at"), f"end_at {end} must be after start_at {start}")
    if "pool" in own and spec.pool is not None and spec.pool not in c.pools:
        known = ", ".join(map(repr, c.pools)) or "none are defined"
        c.report(where, (*base, "pool"), f"unknown pool {spec.pool!r} (pools: {known})")
    for key in TARGET_FIELDS:
        target = getattr(spec, key, None)
        if key in own and isinstance(target, str) and c.check_imports:
            problem = c.targets.problem(target)
            if problem:
                c.report(where, (*base, key), f"{key}: {problem}")


# -- building the definitions ----------------------------------------------------------------------


def _aware(value: Any, tz: zoneinfo.ZoneInfo) -> Any:
    """Naive datetimes are in the registry's timezone; times of day stay naive."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value


def _definition(
    name: str, spec: ProcessSpec, tz: zoneinfo.ZoneInfo, source: Source | None
) -> ProcessDef:
    values = dict(spec.__dict__)  # the model's fields, as ``getattr`` would give each one
    values.update(
        params=dict(spec.params),
        resources=dict(spec.resources),
        ancestors=tuple(spec.ancestors),
        retry_on=tuple(spec.retry_on),
        condition=(
            dict(spec.condition) if isinstance(spec.condition, BaseModel) else spec.condition
        ),
        missed=Missed(spec.missed),
        not_before=_aware(spec.not_before, tz),
        start_at=_aware(spec.start_at, tz),
        end_at=_aware(spec.end_at, tz),
    )
    return ProcessDef(name=name, source=source, **values)


def load_files(paths: Sequence[str | os.PathLike[str]]) -> RegistryDef:
    """Parse and validate YAML files into one registry; ``DefinitionError`` lists every problem."""
    problems: list[Problem] = []
    files = [parse_file(path, problems) for path in paths]
    return load_documents(files, problems)


def load_documents(
    files: Sequence[tuple[Where, Any]], problems: list[Problem] | None = None
) -> RegistryDef:
    """Validate documents as YAML files would give them — each a ``Where`` (its name, and the
    lines of its keys when known) and its data — into one registry, with the same rules as
    ``load_files`` (the Python API builds its documents in code). ``DefinitionError`` lists
    every problem, those in ``problems`` first."""
    problems = problems if problems is not None else []
    chosen: dict[str, tuple[Any, Where]] = {}
    for where, data in files:
        if data is not None and not isinstance(data, dict):
            problems.append(
                where.problem((), "the file must be a mapping of settings and processes")
            )
            continue
        settings = {
            k: v
            for k, v in (data or {}).items()
            if k not in ("defaults", "processes") and not str(k).startswith("x-")
        }
        valid, _ = _validate(
            Settings, settings, (), where, problems, also_known=("defaults", "processes")
        )
        for key in sorted(valid.model_fields_set):
            value = getattr(valid, key)
            first, first_where = chosen.setdefault(key, (value, where))
            if first != value:
                at = f"{first_where.file}:{first_where.line((key,))}"
                message = f"{key} {value!r} differs from {first!r} at {at}; files must agree"
                problems.append(where.problem((key,), message))
    base = Settings.model_validate({key: value for key, (value, _) in chosen.items()})
    declared = {str(k) for _, d in files if isinstance(d, dict) for k in _mapping(d.get("pools"))}
    checks = _Checks(tz=zoneinfo.ZoneInfo(base.timezone), pools=declared, problems=problems)
    entries: dict[str, _Entry] = {}
    for where, data in files:
        if isinstance(data, dict):
            _load_processes(data, where, entries, checks)
    _resolve_ancestors(entries, checks)
    _check_graph(entries, problems)
    if problems:
        order = {where.file: i for i, (where, _) in enumerate(files)}
        problems.sort(key=lambda p: (order.get(p.file, len(order)), p.line or 0))
        raise DefinitionError(problems)
    return RegistryDef(
        timezone=base.timezone,
        slots=base.slots,
        pools=dict(base.pools),
        ranking=Ranking(base.ranking),
        retention=retention_of(base),
        processes={
            name: _definition(name, e.spec, checks.tz, _source(e)) for name, e in entries.items()
        },
    )


def _source(entry: _Entry) -> Source:
    template, item = (entry.origin[0].name, entry.origin[1]) if entry.origin else (None, None)
    return Source(file=entry.where.file, line=entry.line or 0, template=template, item=item)


def _resolve_ancestors(entries: dict[str, _Entry], c: _Checks) -> None:
    """Templates' names in ancestors replaced by their processes; pairings checked."""
    if not c.templates:
        return
    for name, entry in entries.items():
        written = entry.spec.ancestors
        if not written or not (entry.origin or any(a in c.templates for a in written)):
            continue
        ancestors, came_from, problems = resolve_ancestors(
            written, entries, c.templates, entry.origin
        )
        for index, message in problems:
            c.report(entry.where, ("processes", name, "ancestors", index), message)
        entry.spec = entry.spec.model_copy(update={"ancestors": ancestors})
        entry.came_from = came_from


def retention_of(settings: Settings) -> Retention:
    kept = settings.retention
    return Retention(runs=kept.runs, logs=kept.logs, decisions=kept.decisions)


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _load_processes(
    data: Mapping[str, Any], where: Where, entries: dict[str, _Entry], c: _Checks
) -> None:
    defaults: Any = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        c.report(where, ("defaults",), f"defaults must be a mapping, got {_short(defaults)}")
        defaults = {}
    spec, bad = _validate(DefaultsSpec, defaults, ("defaults",), where, c.problems)
    defaults = {k: v for k, v in defaults.items() if k not in bad}
    _check_process(spec, defaults, set(defaults), ("defaults",), where, c)
    processes: Any = data.get("processes") or {}
    if not isinstance(processes, dict):
        c.report(where, ("processes",), f"processes must be a mapping, got {_short(processes)}")
        return
    for key, body in processes.items():
        name, base = str(key), ("processes", str(key))
        name_problem = process_name_problem(name)
        if name_problem:
            c.report(where, base, name_problem)
        if not (isinstance(body, dict) and "foreach" in body):
            _load_process(name, body, defaults, where, where.line(base), entries, c)
        elif not _taken(name, where, entries, c):  # a template: one process per item
            template = c.templates[name] = Template.read(name, body, where, c.problems)
            for item in template.items:
                item_where = ItemWhere.of(where, name, item, body)
                full = item_where.process
                filled, unfilled = fill(
                    body, item, ("processes", full), partial(c.report, item_where)
                )
                origin = (template, item.name)
                _load_process(
                    full, filled, defaults, item_where, template.line, entries, c, origin, unfilled
                )


def _load_process(
    name: str,
    body: Any,
    defaults: Mapping[str, Any],
    where: Where,
    line: int | None,
    entries: dict[str, _Entry],
    c: _Checks,
    origin: tuple[Template, str] | None = None,
    unfilled: Collection[str] = (),
) -> None:
    """Validate one process (``unfilled``: fields of a template whose placeholders this item
    could not fill, reported already) and add it to ``entries``."""
    base = ("processes", name)
    if body is None or isinstance(body, dict):
        raw = {**defaults, **(body or {})}
        valid = {k: v for k, v in raw.items() if k not in unfilled} if unfilled else raw
        process, _ = _validate(ProcessSpec, valid, base, where, c.problems, also_known=("foreach",))
        _check_process(process, raw, set(body or {}), base, where, c)
    else:
        c.report(where, base, f"a process must be a mapping of fields, got {_short(body)}")
        process = ProcessSpec()
    if not _taken(name, where, entries, c):
        entries[name] = _Entry(where=where, spec=process, line=line, origin=origin)


def _taken(name: str, where: Where, entries: Mapping[str, _Entry], c: _Checks) -> bool:
    """Whether a process or a template has ``name`` already (a problem)."""
    first = entries.get(name) or c.templates.get(name)
    if first is not None:
        at = f"{first.where.file}:{first.line}"
        c.report(where, ("processes", name), f"duplicate process {name!r} (first defined at {at})")
    return first is not None


# -- revise ----------------------------------------------------------------------------------------


def revise(
    registry: RegistryDef, name: str, changes: Mapping[str, Any], *, as_text: bool = True
) -> RegistryDef:
    """``registry`` with fields of process ``name`` changed and re-validated like YAML.

    Values may be Python values or text as typed on a command line, read as YAML (``"200"`` is
    200, ``"true"`` is True, ``"15m"`` stays a duration, ``"[a, b]"`` is a list); with
    ``as_text=False`` (JSON bodies, Python calls) a string is a string. ``None`` (or
    ``null``) puts a field back to its built-in default; the file's ``defaults`` are not known
    here. Setting ``run`` drops ``command`` (and the reverse), likewise ``cron`` and ``every``,
    unless both are in ``changes``. Targets (``run``, hooks) are import-checked only when
    changed, so ``hold`` works from any directory.

    Raises ``ProcessNotFound`` or ``DefinitionError``.
    """
    try:
        process = registry.processes[name]
    except KeyError:
        raise ProcessNotFound(name) from None
    source = process.source
    where = Where(source.file if source else "<set>", fallback=source.line if source else None)
    raw = {
        key: _plain(getattr(process, key))
        for key in ProcessSpec.model_fields
        if getattr(process, key) is not None
    }
    for key, value in changes.items():
        value = _plain(_from_text(value) if as_text and isinstance(value, str) else value)
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
            other = _EXCLUSIVE.get(key)
            if other is not None and other not in changes:
                raw.pop(other, None)  # ``set P run=m:f`` replaces the command
    problems: list[Problem] = []
    checks = _Checks(
        tz=zoneinfo.ZoneInfo(registry.timezone), pools=registry.pools, problems=problems
    )
    base = ("processes", name)
    spec, _ = _validate(ProcessSpec, raw, base, where, problems)
    _check_process(spec, raw, set(changes), base, where, checks)
    entries = {n: _entry_of(p) for n, p in registry.processes.items()}
    entries[name] = _Entry(where=where, spec=spec, line=where.fallback)
    _check_graph(entries, problems)
    if problems:
        raise DefinitionError(problems)
    revised = _definition(name, spec, checks.tz, source)
    return replace(registry, processes={**registry.processes, name: revised})


_EXCLUSIVE = {"run": "command", "command": "run", "cron": "every", "every": "cron"}


def _entry_of(process: ProcessDef) -> _Entry:
    """Enough of an existing process for the graph checks."""
    src = process.source
    where = Where(src.file if src else "<set>", fallback=src.line if src else None)
    spec = ProcessSpec.model_construct(ancestors=list(process.ancestors))
    return _Entry(where=where, spec=spec, line=where.fallback)


def _from_text(text: str) -> Any:
    """A command-line value read as a YAML scalar or flow collection; otherwise the text itself."""
    loader: AnyLoader | None = None
    try:
        loader = YamlLoader(text)
        node = loader.get_single_node()
        if node is None or (
            not isinstance(node, ScalarNode) and not text.lstrip().startswith(("[", "{"))
        ):
            return text
        return loader.construct_document(node)
    except yaml.YAMLError:
        return text
    finally:
        if loader is not None:
            loader.dispose()


def _plain(value: Any) -> Any:
    """Python values as YAML would give them: enums as text, tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value
