"""Long lists said short: what ``apply`` changed, and the problems ``validate`` found.

An apply of a 10,000-process registry adds 10,000 names, and 700 processes naming a module that
does not import are 700 problems: these say them as counts and the first few names
(``registry.errors.name_list``), the problems grouped as ``registry.errors.group_problems``
groups them. Pure: values in, lines out. Settings that changed are said field by field, as
``apply --dry-run`` says them (``planner.interfaces.terminal.diffs``).
"""

from __future__ import annotations

from collections.abc import Iterable

from planner.interfaces.terminal.diffs import changes_text
from registry.errors import Problem, group_problems, name_list
from registry.records import ApplyResult

__all__ = ["LISTED", "apply_lines", "problem_lines"]

#: up to this many names of one kind of change are listed in full; more are counted
LISTED = 10


def apply_lines(result: ApplyResult) -> list[str]:
    """``changed settings: slots: 2 → 3``, then ``added: a, b`` per kind of change; past
    ``LISTED`` names, ``added 2000 processes: a, b, c, d, e, … and 1995 more``."""
    if result.unchanged:
        return ["no changes"]
    lines = []
    if result.settings:
        lines.append("changed settings: " + changes_text(result.settings))
    for label, names in (
        ("added", result.added),
        ("changed", result.changed),
        ("removed", result.removed),
    ):
        if len(names) > LISTED:
            lines.append(f"{label} {len(names)} processes: {name_list(names)}")
        elif names:
            lines.append(f"{label}: {', '.join(names)}")
    return lines


def problem_lines(problems: Iterable[Problem]) -> list[str]:
    """One line per problem, or per group of alike problems of many processes."""
    return [str(entry) for entry in group_problems(problems)]
