"""The files ``planner simulate`` reads besides the registry: ``--durations``, ``--conditions``.

Both are YAML (or JSON) mappings of process names:

- ``--durations``: process → a duration, or ``{duration, status}`` (status ``succeeded``,
  ``failed`` or ``timed_out``; duration optional: the process's ``expected_duration``);
- ``--conditions``: process → the time (ISO-8601, naive in the registry's timezone) from which
  its condition answers true; before it, false. Processes not listed have conditions that are
  always true.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import yaml

from registry.definitions.durations import parse_duration
from registry.errors import ProcessNotFound
from registry.lifecycle import RunStatus
from registry.model import ProcessDef, RegistryDef

if TYPE_CHECKING:
    from planner.simulation.simulate import Outcome

__all__ = ["read_conditions", "read_outcomes"]

_SIMULATED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT)


def _bad(option: str, message: str) -> NoReturn:
    raise click.BadParameter(message, param_hint=option)


def _entries(
    path: str, registry: RegistryDef, option: str, what: str
) -> Iterator[tuple[str, ProcessDef, Any]]:
    """Each ``process: value`` of the file, the process known to the registry."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        _bad(option, f"cannot read {path}: {exc}")
    if data is None:
        return
    if not isinstance(data, dict):
        _bad(option, f"{path} must map process names to {what}")
    for name, value in data.items():
        definition = registry.processes.get(str(name))
        if definition is None:
            _bad(option, f"{path}: {ProcessNotFound(str(name))}")
        yield str(name), definition, value


def read_outcomes(path: str, registry: RegistryDef) -> dict[str, Outcome]:
    from planner.simulation.simulate import DEFAULT_DURATION, Outcome

    outcomes: dict[str, Outcome] = {}
    for name, definition, spec in _entries(path, registry, "--durations", "durations"):
        fields = spec if isinstance(spec, dict) else {"duration": spec}
        if set(fields) - {"duration", "status"}:
            _bad("--durations", f"{path}: {name}: only 'duration' and 'status' are allowed")
        status = str(fields.get("status", "succeeded"))
        if status not in _SIMULATED_STATUSES:
            allowed = ", ".join(_SIMULATED_STATUSES)
            _bad("--durations", f"{path}: {name}: status must be one of {allowed}")
        try:
            duration = (
                parse_duration(fields["duration"])
                if "duration" in fields
                else definition.expected_duration or DEFAULT_DURATION
            )
        except ValueError as exc:
            _bad("--durations", f"{path}: {name}: {exc}")
        outcomes[name] = Outcome(duration=duration, status=RunStatus(status))
    return outcomes


def read_conditions(path: str, registry: RegistryDef, tz: tzinfo) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    what = "the time their condition becomes true"
    for name, definition, value in _entries(path, registry, "--conditions", what):
        if definition.condition is None:
            _bad("--conditions", f"{path}: {name!r} has no condition")
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            try:
                value = datetime.fromisoformat(str(value).strip())
            except ValueError:
                _bad("--conditions", f"{path}: {name}: {value!r} is not an ISO-8601 time")
        found[name] = value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return found
