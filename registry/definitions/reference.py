"""The YAML reference of the README, generated from the schema so the two cannot drift apart.

``python -m registry.definitions.reference`` prints it, ``--update`` rewrites README.md; a test
checks the README holds exactly this text between its ``yaml-reference`` markers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from registry.definitions.schema import (
    INT_MAX,
    INT_MIN,
    ITEM_PATTERN,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    Settings,
    TemplateSpec,
)
from registry.definitions.yaml_source import MAX_ALIAS_NODES

#: how each kind of value is written in YAML (the schema's Python types say less to a reader)
_KINDS = {
    "params": "mapping",
    "priority": "integer",
    "reserve": "boolean",
    "not_before": "time of day / datetime",
    "refresh_window": "duration",
    "pool": "pool name",
    "max_active": "integer ≥ 1",
    "resources": "mapping name → number",
    "expected_duration": "duration",
    "retries": "integer ≥ 0",
    "retry_delay": "duration",
    "retry_backoff": "number ≥ 1",
    "timeout": "duration",
    "hold": "boolean",
    "enabled": "boolean",
    "start_at": "datetime",
    "end_at": "datetime",
    "max_runs": "integer ≥ 1",
    "missed": "latest / all / skip",
    "on_success": "module:callable",
    "on_failure": "module:callable",
    "on_cancel": "module:callable",
    "on_error": "module:callable",
    "retry_on": "list of exception names",
    "condition": "module:callable / {sql, db}",
    "condition_interval": "duration",
    "retention": "{runs, logs, decisions}: durations",
    "run": "module:callable",
    "command": "string or list",
    "cron": "cron expression",
    "every": "duration",
    "ancestors": "list of names",
    "foreach": "list / mapping item → values",
    "timezone": "IANA name",
    "slots": "integer ≥ 1",
    "pools": "mapping name → size",
    "ranking": "adp / priority",
}
_FIRST = ("run", "command", "params", "cron", "every", "ancestors", "foreach")


def _default(field: Any) -> str:
    if field.default_factory is not None:
        if field.default_factory in (dict, list):
            return "{}" if field.default_factory is dict else "[]"
        made = field.default_factory()  # a settings model: its own defaults, key by key
        return ", ".join(
            f"{key}: {_default(sub)}" for key, sub in type(made).model_fields.items()
        ).replace("—", "for ever")
    value = field.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "total_seconds"):
        seconds = value.total_seconds()
        return (
            f"{seconds / 86400:g}d"
            if seconds >= 86400 and seconds % 86400 == 0
            else f"{seconds:g}s"
        )
    return str(value)


def _table(model: type[BaseModel], order: tuple[str, ...] = ()) -> list[str]:
    names = [n for n in order if n in model.model_fields]
    names += [n for n in model.model_fields if n not in names]
    rows = ["| key | value | default | meaning |", "|---|---|---|---|"]
    for name in names:
        field = model.model_fields[name]
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_KINDS.get(name, '')} | {_default(field)} | {meaning} |")
    return rows


def reference_markdown() -> str:
    lines = ["Top level:", "", *_table(Settings), ""]
    lines += [
        "`defaults:` may set any process key except `run`, `command`, `cron`, `every`, "
        "`ancestors` and `foreach`; it applies to the processes of its own file.",
        "",
        "Each entry under `processes:` (exactly one of `run` / `command`, at most one of "
        "`cron` / `every`):",
        "",
        *_table(TemplateSpec, _FIRST),
        "",
        "Templates: an entry with `foreach` — a list of items (strings or integers), or a "
        "mapping item → mapping of values — stands for one process per item, named "
        f"`NAME.ITEM` (an item matches `{ITEM_PATTERN}`). In every string of the entry "
        "`{item}` is the item (a mapping's key) and `{item.KEY}` a value of a mapping item; a "
        "string that is only a placeholder takes the value with its type (`priority: "
        '"{item.priority}"` is an integer), inside text a value is written as text (non-strings '
        "as JSON); `{{item}}` is the text `{item}`, other braces are text as they are. In "
        '`ancestors`, a template\'s name means all of its processes, and `"other.{item}"` '
        "pairs the items one to one (an item that `other` lacks is an error).",
        "",
        "Durations: `90` (seconds), `90s`, `15m`, `6h`, `1d`, `1h30m`. Naive datetimes are in the "
        "registry's timezone. Keys starting with `x-` at the top level are ignored (a place for "
        "YAML anchors).",
        "",
        f"Limits: a process name matches `{NAME_PATTERN}` and has at most {NAME_MAX_LENGTH} "
        "characters; integers (`priority`, `max_active`, `retries`, `max_runs`, `slots`, pool "
        f"sizes) are 32-bit, {INT_MIN} to {INT_MAX}; `params` hold finite numbers only (no NaN "
        f"or Infinity); aliases may add at most {MAX_ALIAS_NODES:,} nodes to a file once "
        'expanded (a larger expansion, such as a "billion laughs" document, is refused with the '
        "line of the alias that passed the limit). The same limits hold for `planner set` and "
        "for rows written into the database with SQL.",
    ]
    return "\n".join(lines) + "\n"


START = "<!-- yaml-reference:start"
END = "<!-- yaml-reference:end -->"


def embed(readme: str) -> str:
    """``readme`` with the generated reference between its markers."""
    head, _, rest = readme.partition(START)
    marker_line, _, rest = rest.partition("\n")
    _, _, tail = rest.partition(END)
    return f"{head}{START}{marker_line}\n{reference_markdown()}{END}{tail}"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:] == ["--update"]:  # rewrite README.md in place
        path = Path("README.md")
        path.write_text(embed(path.read_text()))
    else:
        print(reference_markdown(), end="")
