"""Rows of the store checked by the rules YAML files are checked by: one bad row, one process.

The registry tables are the runtime source of truth, and operators may edit them with SQL, so what
the store loads may be wrong in any way a file may be, and in a few more (a document that is not
JSON, a promoted column holding text). ``validate_stored`` takes the settings document and, per
process, its fields as YAML would have written them (``registry.storage.codec.stored_fields``
turns a stored document into those), validates them with the models and cross-field checks of
``registry.definitions.loader`` — the same rules, not a copy of them — and returns a
``RegistryDef`` of the valid processes. The others are listed in ``invalid`` (name → the
validation messages, naming the key), and a setting that fails falls back to its default with a
line in ``problems``, so the planner keeps planning the rest instead of stopping.

Differences from a YAML file, on purpose:

- targets (``run``, hooks) are checked for their form, not imported: the planner does not run user
  code to load its registry; an unimportable target fails the attempt that uses it;
- a process whose row is invalid is still a known ancestor: its descendants stay valid and wait on
  it (reason ``ancestors``) rather than becoming invalid in turn;
- every process on a dependency cycle is invalid (a file names the cycle once, on its first
  process), so that what remains is a DAG.
"""

from __future__ import annotations

import reprlib
import zoneinfo
from collections.abc import Mapping
from typing import Any

from registry.definitions.loader import (
    _check_graph,
    _check_process,
    _Checks,
    _definition,
    _Entry,
    _validate,
    process_name_problem,
    retention_of,
)
from registry.definitions.schema import ProcessSpec, Settings
from registry.definitions.yaml_source import Where
from registry.errors import Problem
from registry.model import ProcessDef, Ranking, RegistryDef, Source

__all__ = ["validate_stored"]

_WHERE = "the database"
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_short = _repr.repr


def validate_stored(
    settings: Mapping[str, Any] | str,
    processes: Mapping[str, Mapping[str, Any] | str],
    sources: Mapping[str, Source | None] | None = None,
) -> RegistryDef:
    """The registry the rows make. The settings and each process's value are their fields as YAML
    would give them, or a string saying why the row cannot be read.

    Never raises for bad data: every problem ends up in ``invalid`` or ``problems``."""
    sources = sources or {}
    settings_problems: list[Problem] = []
    if not isinstance(settings, Mapping):
        message = (
            settings
            if isinstance(settings, str)
            else f"the document must be a JSON object, got {_short(settings)}"
        )
        settings_problems.append(Problem(file=_WHERE, line=None, process=None, message=message))
        settings = {}
    base, _ = _validate(Settings, settings, (), Where(_WHERE), settings_problems)
    problems = tuple(
        f"settings: {p.message}"
        + (f" ({p.path}); using its default" if p.path else "; using the defaults")
        for p in settings_problems
    )
    tz = zoneinfo.ZoneInfo(base.timezone)
    found: dict[str, list[Problem]] = {name: [] for name in processes}
    entries: dict[str, _Entry] = {}
    for name, fields in processes.items():
        where = Where(_WHERE)
        path = ("processes", name)
        if isinstance(fields, str):  # the row cannot even be read
            found[name].append(where.problem(path, fields))
            entries[name] = _Entry(where=where, spec=ProcessSpec(), line=None)
            continue
        name_problem = process_name_problem(name)
        if name_problem:
            found[name].append(where.problem(path, name_problem))
        checks = _Checks(tz=tz, pools=base.pools, problems=found[name], check_imports=False)
        spec, _ = _validate(ProcessSpec, fields, path, where, found[name])
        _check_process(spec, fields, set(fields), path, where, checks)
        entries[name] = _Entry(where=where, spec=spec, line=None)
    graph_problems: list[Problem] = []
    cyclic = _check_graph(entries, graph_problems)
    for problem in graph_problems:
        if problem.process in found:
            found[problem.process].append(problem)
    for component in cyclic:
        cycle = next(p for p in graph_problems if p.process in component and "cycle" in p.message)
        for name in component - {cycle.process}:
            found[name].append(
                Problem(file=_WHERE, line=None, process=name, message=f"on a {cycle.message}")
            )
    valid: dict[str, ProcessDef] = {}
    invalid: dict[str, str] = {}
    for name, spec_problems in found.items():
        if spec_problems:
            invalid[name] = _describe(name, spec_problems)
        else:
            valid[name] = _definition(name, entries[name].spec, tz, sources.get(name))
    return RegistryDef(
        timezone=base.timezone,
        slots=base.slots,
        pools=dict(base.pools),
        ranking=Ranking(base.ranking),
        retention=retention_of(base),
        processes=valid,
        invalid=invalid,
        problems=problems,
    )


def _describe(name: str, problems: list[Problem]) -> str:
    """``process 'x': <message> (key cron); <message> ...`` — the key relative to the process."""
    prefix = f"processes.{name}"
    parts = []
    for p in problems:
        key = p.path[len(prefix) + 1 :] if p.path.startswith(prefix + ".") else ""
        parts.append(f"{p.message} (key {key})" if key else p.message)
    return f"process {name!r}: " + "; ".join(parts)
