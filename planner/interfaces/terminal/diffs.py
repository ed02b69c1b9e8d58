"""``planner apply --dry-run``: what applying would add, change (field by field) and remove.

Pure rendering of a ``registry.definitions.diff.RegistryDiff``. Long lists are cut: at most
``SHOWN`` processes of each kind are named, then a count of the others. Values read as the YAML
would write them; a setting made of parts (``retention``) is compared part by part
(``retention.runs: 90d → 30d``). ``changes_text`` is also what ``planner apply`` prints of
the settings it changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from planner.interfaces.terminal.style import value_text
from registry.definitions.diff import Change, RegistryDiff

__all__ = ["SHOWN", "changes_text", "diff_lines"]

SHOWN = 20


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", … and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _count(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _text(value: Any) -> str:
    if is_dataclass(value) and not isinstance(value, type):
        return value_text({f.name: getattr(value, f.name) for f in fields(value)})
    return value_text(value)


def _parts(c: Change) -> list[Change]:
    """A change of a value made of parts (two of one dataclass) as the changes of its parts."""
    before, after = c.before, c.after
    if not (is_dataclass(before) and not isinstance(before, type) and type(after) is type(before)):
        return [c]
    return [
        Change(f"{c.field}.{f.name}", getattr(before, f.name), getattr(after, f.name))
        for f in fields(before)
        if getattr(before, f.name) != getattr(after, f.name)
    ]


def changes_text(changes: Iterable[Change]) -> str:
    """``slots: 2 → 3; retention.runs: 90d → 30d``."""
    return "; ".join(
        f"{part.field}: {_text(part.before)} → {_text(part.after)}"
        for c in changes
        for part in _parts(c)
    )


def diff_lines(d: RegistryDiff) -> list[str]:
    if d.empty:
        return ["no change (dry run: nothing written)"]
    lines = []
    if d.settings:
        lines.append("would change settings: " + changes_text(d.settings))
    if d.added:
        lines.append(f"would add {_count(len(d.added))}: {_names(d.added)}")
    for n, name in enumerate(d.changed):
        if n == SHOWN:
            lines.append(f"… and {len(d.changed) - SHOWN} more processes would change")
            break
        lines.append(f"would change {name!r}: " + changes_text(d.changed[name]))
    for name, why in d.repaired.items():
        lines.append(f"would replace the invalid row of {name!r} ({why})")
    if d.removed:
        lines.append(f"would remove {_count(len(d.removed))}: {_names(d.removed)}")
    lines.append("(dry run: nothing written)")
    return lines
