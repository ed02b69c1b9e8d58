"""``planner apply --dry-run``: what applying would add, change (field by field) and remove.

Pure rendering of a ``registry.definitions.diff.RegistryDiff``. Long lists are cut: at most
``SHOWN`` processes of each kind are named, then a count of the others.
"""

from __future__ import annotations

from planner.interfaces.terminal.style import value_text
from registry.definitions.diff import Change, RegistryDiff

__all__ = ["SHOWN", "diff_lines"]

SHOWN = 20


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f", … and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _count(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _change(c: Change) -> str:
    return f"{c.field}: {value_text(c.before)} → {value_text(c.after)}"


def diff_lines(d: RegistryDiff) -> list[str]:
    if d.empty:
        return ["no change (dry run: nothing written)"]
    lines = []
    if d.settings:
        lines.append("would change settings: " + "; ".join(_change(c) for c in d.settings))
    if d.added:
        lines.append(f"would add {_count(len(d.added))}: {_names(d.added)}")
    for n, name in enumerate(d.changed):
        if n == SHOWN:
            lines.append(f"… and {len(d.changed) - SHOWN} more processes would change")
            break
        lines.append(f"would change {name!r}: " + "; ".join(_change(c) for c in d.changed[name]))
    for name, why in d.repaired.items():
        lines.append(f"would replace the invalid row of {name!r} ({why})")
    if d.removed:
        lines.append(f"would remove {_count(len(d.removed))}: {_names(d.removed)}")
    lines.append("(dry run: nothing written)")
    return lines
