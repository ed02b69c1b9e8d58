"""What applying a registry would change: processes added, changed (field by field), removed.

``planner apply --dry-run`` prints it and writes nothing. Fields are compared as the definitions
hold them (after defaults and templates), so a change of layout in the files — a key moved into
``defaults``, a process renamed into a template's item — shows only if it changes a value. A
stored row that does not validate counts as changed (it is replaced whole).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from registry.model import ProcessDef, RegistryDef

__all__ = ["Change", "RegistryDiff", "diff"]

_SETTINGS = ("timezone", "slots", "pools", "ranking", "retention")


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs: its name, the value now, the value after."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict[str, tuple[Change, ...]] = field(default_factory=dict)
    #: processes whose stored row is invalid, replaced whole: name → why it was invalid
    repaired: dict[str, str] = field(default_factory=dict)
    settings: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.repaired or self.settings)


def _changes(before: ProcessDef, after: ProcessDef) -> tuple[Change, ...]:
    return tuple(
        Change(f.name, getattr(before, f.name), getattr(after, f.name))
        for f in fields(ProcessDef)
        if f.name not in ("name", "source") and getattr(before, f.name) != getattr(after, f.name)
    )


def diff(current: RegistryDef, new: RegistryDef) -> RegistryDiff:
    """How ``new`` differs from ``current`` (the store's registry, invalid rows included)."""
    known = set(current.processes) | set(current.invalid)
    changed = {}
    for name in sorted(set(new.processes) & set(current.processes)):
        found = _changes(current.processes[name], new.processes[name])
        if found:
            changed[name] = found
    return RegistryDiff(
        added=tuple(sorted(set(new.processes) - known)),
        removed=tuple(sorted(known - set(new.processes))),
        changed=changed,
        repaired={n: current.invalid[n] for n in sorted(set(current.invalid) & set(new.processes))},
        settings=tuple(
            Change(key, getattr(current, key), getattr(new, key))
            for key in _SETTINGS
            if getattr(current, key) != getattr(new, key)
        ),
    )
